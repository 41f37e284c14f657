"""The quality summary of a trusted build: rows in and out, rejected rows per source
and rule, and the check that stops publication when too many rows were rejected."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from covidlake.errors import QualityError
from covidlake.trusted.rules import fact_rules


@dataclass
class QualitySummary:
    rows_in: dict[str, int]
    rows_out: dict[str, int]
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)
    missing_columns: dict[str, list[str]] = field(default_factory=dict)

    def rejected_share(self, source: str) -> float:
        total = self.rows_in.get(source, 0)
        return sum(self.rejected.get(source, {}).values()) / total if total else 0.0

    def to_dict(self) -> dict:
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rejected": self.rejected,
            "missing_columns": self.missing_columns,
        }


def check_rejected_share(summary: QualitySummary, rejected: DataFrame, max_share: float) -> None:
    """Fail (so nothing is published) on empty inputs or too many rejected rows."""
    for source, rows in summary.rows_in.items():
        if rows == 0:
            raise QualityError(f"{source}: no data rows (header only?)")
    if summary.rows_out.get("snapshot", 1) == 0:
        raise QualityError("no country rows survived the quality rules and the join: nothing to publish")
    for source in summary.rows_in:
        share = summary.rejected_share(source)
        if share > max_share:
            rules = summary.rejected[source]
            worst = max(rules, key=rules.get)
            examples = [
                f"{r['location']} {r['date'] or ''} ({r['detail']})".replace("  ", " ")
                for r in rejected.where((F.col("source") == source) & (F.col("rule") == worst)).limit(3).collect()
            ]
            raise QualityError(
                f"{source}: {share:.1%} of {summary.rows_in[source]} rows rejected, over the limit of "
                f"{max_share:.1%}; most by rule {worst} ({rules[worst]} rows), e.g. {'; '.join(examples)}"
            )


def fact_counts() -> list[Column]:
    """Observed while daily is written: input rows, and rows failing each fact rule."""
    per_rule = [f"count(CASE WHEN _rule = '{name}' THEN 1 END) AS {name}" for name, _, _ in fact_rules()]
    return [F.expr(sql) for sql in ("count(1) AS rows", "count(_rule) AS rejected", *per_rule)]


def summarize_counts(
    rows_in: dict[str, int] | None, counts: dict[str, int], country_verdicts: list[str | None], snapshot_rows: int
) -> QualitySummary:
    """The quality summary from the counts observed on the facts and the verdicts
    (`_rule`, None when passed) of the country rows."""
    rejected: dict[str, dict[str, int]] = {}
    countries_failed = Counter(rule for rule in country_verdicts if rule is not None)
    if countries_failed:
        rejected["country_data"] = dict(countries_failed)
    facts_failed = {name: counts[name] for name, _, _ in fact_rules() if counts[name]}
    if facts_failed:
        rejected["covid_data"] = facts_failed
    rows_in = rows_in or {"covid_data": counts["rows"], "country_data": len(country_verdicts)}
    rows_out = {"daily": counts["rows"] - counts["rejected"], "snapshot": snapshot_rows}
    return QualitySummary(rows_in, rows_out, rejected)
