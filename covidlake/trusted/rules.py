"""The quality rules: each row gets the first rule it fails (or none), with a detail
naming the offending values; failed rows become the rejected table, never dropped silently.

A rule is (name, failed, detail) with both as Spark SQL text over the typed columns and
their raw strings (`_raw_<name>`): one string per rule is parsed in the JVM, where the
Column API would make a py4j round trip per function call (hundreds per schema).
"""

from __future__ import annotations

from pyspark.sql import DataFrame

from covidlake.schemas import COUNTRY_DATA, COVID_FACTS, ColumnType, TableSchema
from covidlake.trusted.typed import quote

# Running totals may never be negative. OWID's new_* columns legitimately are when a
# country revises its figures down, so they are not checked.
NON_NEGATIVE = ("total_cases", "total_deaths", "total_cases_per_million", "total_deaths_per_million")
POSITIVE = ("population", "population_density")

Rule = tuple[str, str, str]


def _list_failures(checks: dict[str, str]) -> str:
    """'col=value, …' for the checks that failed on a row."""
    parts = [
        f"CASE WHEN {cond} THEN concat('{name}=', coalesce({quote('_raw_' + name)}, 'null')) END"
        for name, cond in checks.items()
    ]
    return f"concat_ws(', ', {', '.join(parts)})"


def _unparseable(schema: TableSchema) -> dict[str, str]:
    return {
        c.name: f"({quote('_raw_' + c.name)} IS NOT NULL AND {quote(c.name)} IS NULL)"
        for c in schema.columns
        if c.type is not ColumnType.STRING
    }


def _any(conditions) -> str:
    return "(" + " OR ".join(f"coalesce({cond}, false)" for cond in conditions) + ")"


def _copy_detail() -> str:
    return "concat('copy ', CAST(_copy AS string))"


def fact_rules(schema: TableSchema = COVID_FACTS) -> list[Rule]:
    """(rule, failed, detail) in the order they are tried; a row gets the first it fails."""
    unparseable = _unparseable(schema)
    bad_date = {"date": f"({unparseable.pop('date')} OR date IS NULL)"}
    negative = {c: f"{quote(c)} < 0" for c in NON_NEGATIVE}
    return [
        ("missing_location", "location IS NULL", "'location is empty'"),
        ("unparseable_date", bad_date["date"], _list_failures(bad_date)),
        ("unparseable_number", _any(unparseable.values()), _list_failures(unparseable)),
        ("negative_count", _any(negative.values()), _list_failures(negative)),
        ("unknown_location", "NOT _known_location", "'location is not in country_data'"),
        ("duplicate_location_date", "_copy > 1", _copy_detail()),
    ]


def country_rules(schema: TableSchema = COUNTRY_DATA) -> list[Rule]:
    unparseable = _unparseable(schema)
    hdi = {"human_development_index": "NOT (human_development_index BETWEEN 0 AND 1)"}
    positive = {c: f"{quote(c)} <= 0" for c in POSITIVE}
    return [
        ("missing_location", "location IS NULL", "'location is empty'"),
        ("unparseable_number", _any(unparseable.values()), _list_failures(unparseable)),
        ("hdi_out_of_range", hdi["human_development_index"], _list_failures(hdi)),
        ("non_positive_population", _any(positive.values()), _list_failures(positive)),
        ("duplicate_location", "_copy > 1", _copy_detail()),
    ]


def first_failed_rule(rules: list[Rule]) -> str:
    """SQL: the name of the first rule the row fails, or null."""
    return "CASE " + " ".join(f"WHEN coalesce({failed}, false) THEN '{name}'" for name, failed, _ in rules) + " END"


def detail_of_rule(rules: list[Rule]) -> str:
    """SQL: the detail of the rule named in `_rule` (null when it is null)."""
    return "CASE _rule " + " ".join(f"WHEN '{name}' THEN {detail}" for name, _, detail in rules) + " END"


def apply_rules(df: DataFrame, rules: list[Rule]) -> DataFrame:
    """Adds `_rule` (the first rule failed, or null) and `_detail`."""
    return df.selectExpr("*", f"{first_failed_rule(rules)} AS _rule").selectExpr(
        "*", f"{detail_of_rule(rules)} AS _detail"
    )


def number_copies(df: DataFrame, keys: list[str], order: list[str] | None = None) -> DataFrame:
    """`_copy` = 1 for the first row of each key (deterministic order: `order`, SQL
    sort expressions, by default the raw strings), 2.. for the rest."""
    order = order or [f"{quote(c)} ASC NULLS LAST" for c in df.columns if c.startswith("_raw_")]
    partition = ", ".join(quote(k) for k in keys)
    return df.selectExpr("*", f"row_number() OVER (PARTITION BY {partition} ORDER BY {', '.join(order)}) AS _copy")


def rejected_rows(flagged: DataFrame, source: str) -> DataFrame:
    date = "_raw_date" if "_raw_date" in flagged.columns else "CAST(NULL AS string)"
    return flagged.where("_rule IS NOT NULL").selectExpr(
        f"'{source}' AS source", "_rule AS rule", "location", f"{date} AS date", "_detail AS detail"
    )
