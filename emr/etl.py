"""Raw -> trusted: typed, joined, deduplicated facts; a per-country snapshot; and every
row that failed a quality rule, with the rule.

Pure DataFrame -> DataFrame functions plus a thin main(), so the same job runs on EMR
(s3:// paths) and locally (file:// paths):

    spark-submit --py-files covidlake.zip etl.py --lake s3://BUCKET \
        --covid-csv s3://BUCKET/raw/... --country-csv s3://BUCKET/raw/... [--run-id ID]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property

from pyspark.sql import Column, DataFrame, Observation, SparkSession, Window
from pyspark.sql import functions as F

from covidlake.defaults import DEFAULT_MAX_REJECTED_SHARE
from covidlake.errors import QualityError, SchemaError
from covidlake.schemas import (
    COUNTRY_ATTRIBUTES,
    COUNTRY_DATA,
    COVID_FACTS,
    TRUSTED_QUALITY_KEY,
    TRUSTED_TABLES,
    ColumnType,
    TableSchema,
    canonical_columns,
)

log = logging.getLogger(__name__)
DATE_FORMAT = "yyyy-MM-dd"
# Running totals may never be negative. OWID's new_* columns legitimately are when a
# country revises its figures down, so they are not checked.
NON_NEGATIVE = ("total_cases", "total_deaths", "total_cases_per_million", "total_deaths_per_million")
POSITIVE = ("population", "population_density")
# Catalyst's constraint propagation grows combinatorially with the ~100 aliased columns
# and rule flags here: it took 40 s to optimise the snapshot plan on 247 rows, 0.1 s without.
NO_CONSTRAINT_PROPAGATION = ("spark.sql.constraintPropagation.enabled", "false")


# --- reading and typing --------------------------------------------------------------


def read_csv_as_strings(spark: SparkSession, path: str) -> DataFrame:
    """Every column as a string: typing is explicit (conform), never inferred."""
    return spark.read.options(header=True, inferSchema=False, mode="PERMISSIVE", encoding="UTF-8").csv(path)


def normalize_columns(df: DataFrame, where: str) -> DataFrame:
    names = canonical_columns(df.columns)  # any of OWID's layouts (schemas.detect_layout)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SchemaError(f"{where}: columns {', '.join(dupes)} appear more than once")
    return df.toDF(*names)


def require_columns(df: DataFrame, schema: TableSchema, where: str) -> None:
    missing = [c for c in schema.required_names if c not in df.columns]
    if missing:
        raise SchemaError(f"{where}: missing required column(s) {', '.join(missing)}")


def _typed(raw: Column, type_: ColumnType) -> Column:
    if type_ is ColumnType.DATE:
        return F.to_date(raw, DATE_FORMAT)
    if type_ is ColumnType.STRING:
        return F.nullif(F.trim(raw), F.lit(""))
    return F.trim(raw).cast(type_.spark())


def with_raw_and_typed(df: DataFrame, schema: TableSchema, keep: list[str] | None = None) -> DataFrame:
    """Columns of schema typed as declared (missing optional ones as nulls), plus the
    raw strings as `_raw_<name>` so rules can tell an empty field from a bad one."""
    typed, raw = [], []
    for col in schema.columns:
        source = F.col(f"`{col.name}`") if col.name in df.columns else F.lit(None).cast("string")
        typed.append(_typed(source, col.type).alias(col.name))
        raw.append(F.nullif(F.trim(source), F.lit("")).alias(f"_raw_{col.name}"))
    extra = [F.col(c) for c in (keep or []) if c in df.columns and c not in schema.column_names]
    return df.select(*typed, *extra, *raw)


# --- quality rules -------------------------------------------------------------------


def _list_failures(checks: dict[str, Column]) -> Column:
    """'col=value, …' for the checks that failed on a row."""
    return F.concat_ws(
        ", ",
        *[
            F.when(cond, F.concat(F.lit(f"{name}="), F.coalesce(F.col(f"_raw_{name}"), F.lit("null"))))
            for name, cond in checks.items()
        ],
    )


def _unparseable(schema: TableSchema) -> dict[str, Column]:
    return {
        c.name: F.col(f"_raw_{c.name}").isNotNull() & F.col(c.name).isNull()
        for c in schema.columns
        if c.type not in (ColumnType.STRING,)
    }


def fact_rules(schema: TableSchema = COVID_FACTS) -> list[tuple[str, Column, Column]]:
    """(rule, failed, detail) in the order they are tried; a row gets the first it fails."""
    unparseable = _unparseable(schema)
    bad_date = {"date": unparseable.pop("date") | F.col("date").isNull()}
    negative = {c: F.col(c) < 0 for c in NON_NEGATIVE}
    return [
        ("missing_location", F.col("location").isNull(), F.lit("location is empty")),
        ("unparseable_date", bad_date["date"], _list_failures(bad_date)),
        ("unparseable_number", _any(unparseable.values()), _list_failures(unparseable)),
        ("negative_count", _any(negative.values()), _list_failures(negative)),
        ("unknown_location", ~F.col("_known_location"), F.lit("location is not in country_data")),
        ("duplicate_location_date", F.col("_copy") > 1, F.concat(F.lit("copy "), F.col("_copy").cast("string"))),
    ]


def country_rules(schema: TableSchema = COUNTRY_DATA) -> list[tuple[str, Column, Column]]:
    unparseable = _unparseable(schema)
    hdi = {"human_development_index": ~F.col("human_development_index").between(0, 1)}
    positive = {c: F.col(c) <= 0 for c in POSITIVE}
    return [
        ("missing_location", F.col("location").isNull(), F.lit("location is empty")),
        ("unparseable_number", _any(unparseable.values()), _list_failures(unparseable)),
        ("hdi_out_of_range", hdi["human_development_index"], _list_failures(hdi)),
        ("non_positive_population", _any(positive.values()), _list_failures(positive)),
        ("duplicate_location", F.col("_copy") > 1, F.concat(F.lit("copy "), F.col("_copy").cast("string"))),
    ]


def _any(conditions) -> Column:
    conditions = list(conditions)
    out = F.lit(False)
    for cond in conditions:
        out = out | F.coalesce(cond, F.lit(False))
    return out


def apply_rules(df: DataFrame, rules: list[tuple[str, Column, Column]]) -> DataFrame:
    """Adds `_rule` (the first rule failed, or null) and `_detail`.

    Each rule's verdict is materialised as its own column first, so the rule and
    detail chains below refer to plain columns: nesting the conditions themselves
    makes Catalyst's plans (and its optimisation time) grow with every rule."""
    flags = df.select("*", *[F.coalesce(failed, F.lit(False)).alias(f"_fails_{name}") for name, failed, _ in rules])
    rule, detail = F.lit(None).cast("string"), F.lit(None).cast("string")
    for name, _, why in reversed(rules):
        rule = F.when(F.col(f"_fails_{name}"), F.lit(name)).otherwise(rule)
        detail = F.when(F.col(f"_fails_{name}"), why).otherwise(detail)
    return flags.withColumn("_rule", rule).withColumn("_detail", detail).drop(*[f"_fails_{n}" for n, _, _ in rules])


def number_copies(df: DataFrame, keys: list[str], order: list[Column] | None = None) -> DataFrame:
    """`_copy` = 1 for the first row of each key (deterministic order: `order`, by
    default the raw strings), 2.. for the rest."""
    order = order or [F.col(c).asc_nulls_last() for c in df.columns if c.startswith("_raw_")]
    return df.withColumn("_copy", F.row_number().over(Window.partitionBy(*keys).orderBy(*order)))


def rejected_rows(flagged: DataFrame, source: str) -> DataFrame:
    date = F.col("_raw_date") if "_raw_date" in flagged.columns else F.lit(None).cast("string")
    return flagged.where(F.col("_rule").isNotNull()).select(
        F.lit(source).alias("source"),
        F.col("_rule").alias("rule"),
        F.col("location"),
        date.alias("date"),
        F.col("_detail").alias("detail"),
    )


# --- the trusted tables --------------------------------------------------------------


def conform_countries(raw: DataFrame) -> DataFrame:
    """Typed country rows with `_rule`/`_detail` set on the ones that fail a rule."""
    typed = with_raw_and_typed(raw, COUNTRY_DATA)
    return apply_rules(number_copies(typed, ["location"]), country_rules())


def local_countries(countries: DataFrame) -> DataFrame:
    """The conformed country table (a few hundred rows), cached: computed once (when its
    locations are collected), then read from memory by every later plan. (Not
    createDataFrame of the collected rows: that is a Python RDD, and each job reading it
    would start Python workers.)"""
    return countries.cache()


def typed_facts(raw: DataFrame, known_locations: list[str]) -> DataFrame:
    """Typed fact rows (plus any country attributes the CSV carries, as `_csv_<name>`,
    the input position `_row_id` and `_known_location`), rules not yet applied."""
    carried = [c for c in COUNTRY_ATTRIBUTES if c in raw.columns]
    raw = raw.select(
        *[F.col(f"`{c}`").alias(f"_csv_{c}") if c in carried else F.col(f"`{c}`") for c in raw.columns],
        F.monotonically_increasing_id().alias("_row_id"),  # input position, right on the scan
    )
    typed = with_raw_and_typed(raw, COVID_FACTS, keep=[f"_csv_{c}" for c in carried] + ["_row_id"])
    # a few hundred names: an in-set test on each row, no join
    return typed.withColumn("_known_location", F.coalesce(F.col("location").isin(known_locations), F.lit(False)))


def later_copies(typed: DataFrame) -> DataFrame:
    """(`_row_id`, `_copy`) of every copy after the first of a (location, date), in input
    order. Only the keys that occur twice are numbered: normally none, so the one job
    is an aggregate of two narrow columns."""
    keys = typed.select("location", "date", "_row_id")
    twice = keys.groupBy("location", "date").count().where(F.col("count") > 1).drop("count")
    same_key = (keys["location"].eqNullSafe(twice["location"])) & (keys["date"].eqNullSafe(twice["date"]))
    in_twice = keys.join(twice, on=same_key, how="left_semi")
    return (
        number_copies(in_twice, ["location", "date"], [F.col("_row_id")])
        .where(F.col("_copy") > 1)
        .select("_row_id", "_copy")
    )


def resolve_copies(later: DataFrame, limit: int) -> DataFrame | None:
    """None when no row is a later copy (the answer every later plan can rely on), the
    copies as a local relation when there are few, else the frame itself."""
    rows = later.limit(limit + 1).collect()
    if not rows:
        return None
    if len(rows) > limit:
        return later
    return later.sparkSession.createDataFrame(rows, later.schema)


def flag_facts(typed: DataFrame, copies: DataFrame | None) -> DataFrame:
    """Adds `_rule`: the first fact rule the row fails, or null. One expression over the
    typed and trimmed columns; the details are built only for failed rows (fact_details)."""
    if copies is None:
        numbered = typed.withColumn("_copy", F.lit(1))
    else:
        numbered = typed.join(F.broadcast(copies), on="_row_id", how="left").withColumn(
            "_copy", F.coalesce(F.col("_copy"), F.lit(1))
        )
    rule = F.lit(None).cast("string")
    for name, failed, _ in reversed(fact_rules()):
        rule = F.when(F.coalesce(failed, F.lit(False)), F.lit(name)).otherwise(rule)
    return numbered.withColumn("_rule", rule)


def fact_details(flagged: DataFrame) -> DataFrame:
    """The failed rows of flag_facts, with `_detail` for the rule each one failed."""
    detail = F.lit(None).cast("string")
    for name, _, why in fact_rules():
        detail = F.when(F.col("_rule") == name, why).otherwise(detail)
    return flagged.where(F.col("_rule").isNotNull()).withColumn("_detail", detail)


def conform_facts(raw: DataFrame, countries: DataFrame, max_collected_copies: int = 100_000) -> DataFrame:
    """Typed fact rows flagged by the fact rules (`_rule`; `_detail` for failed rows
    only in fact_details); `countries` is the typed country table, all rows.

    Speed (benchmarks/NOTES.md): no shuffle of whole rows. Duplicates are found by an
    aggregate of (location, date) alone and numbered in input order; every other rule
    is row-local, evaluated once in one expression, with no per-rule columns."""
    known = sorted(r["location"] for r in countries.select("location").where(F.col("location").isNotNull()).collect())
    typed = typed_facts(raw, known)
    return flag_facts(typed, resolve_copies(later_copies(typed), max_collected_copies))


def join_daily(facts: DataFrame, countries: DataFrame) -> DataFrame:
    """Good facts joined with good country rows on location; where both carry a
    column the database's value wins (the CSV's is used only where it has none)."""
    good_countries = countries.where(F.col("_rule").isNull()).select(
        "location", *[F.col(c).alias(f"_db_{c}") for c in COUNTRY_ATTRIBUTES]
    )
    joined = facts.where(F.col("_rule").isNull()).join(F.broadcast(good_countries), on="location", how="left")
    schema = TRUSTED_TABLES["daily"]
    columns = []
    for col in schema.columns:
        if col.name in COUNTRY_ATTRIBUTES:
            csv_value = (
                _typed(F.col(f"_csv_{col.name}"), col.type) if f"_csv_{col.name}" in joined.columns else F.lit(None)
            )
            columns.append(F.coalesce(F.col(f"_db_{col.name}"), csv_value.cast(col.type.spark())).alias(col.name))
        else:
            columns.append(F.col(col.name).cast(col.type.spark()).alias(col.name))
    return joined.select(*columns)


def latest_snapshot(daily: DataFrame) -> DataFrame:
    """The latest date per location, countries only: OWID aggregates (World,
    continents, income groups, EU) are the rows without a continent. (A max per
    location broadcast back: no sort of the daily rows; (location, date) is unique.)"""
    countries = daily.where(F.col("continent").isNotNull())
    latest = countries.groupBy("location").agg(F.max("date").alias("date"))
    return countries.join(F.broadcast(latest), on=["location", "date"]).select(*TRUSTED_TABLES["snapshot"].column_names)


@dataclass
class TrustedTables:
    """The flagged facts and the (local) country table; daily, snapshot and rejected
    are built from them on first use, so a caller that needs one plan analyses one."""

    facts: DataFrame
    countries: DataFrame
    missing_columns: dict[str, list[str]] = field(default_factory=dict)

    @cached_property
    def daily(self) -> DataFrame:
        return join_daily(self.facts, self.countries)

    @cached_property
    def snapshot(self) -> DataFrame:
        return latest_snapshot(self.daily)

    @cached_property
    def rejected(self) -> DataFrame:
        return self.rejected_countries.unionByName(rejected_rows(fact_details(self.facts), "covid_data"))

    @cached_property
    def rejected_countries(self) -> DataFrame:
        return rejected_rows(self.countries, "country_data")


def build_trusted(covid_raw: DataFrame, country_raw: DataFrame, max_collected_copies: int = 100_000) -> TrustedTables:
    """Raw (string) frames of both sources -> the trusted tables. The country table is
    collected and a duplicate check runs here (one narrow job); the rest is lazy."""
    covid_raw = normalize_columns(covid_raw, "covid_data")
    country_raw = normalize_columns(country_raw, "country_data")
    require_columns(covid_raw, COVID_FACTS, "covid_data")
    require_columns(country_raw, COUNTRY_DATA, "country_data")
    missing = {
        source: [c for c in schema.column_names if c not in raw.columns]
        for source, schema, raw in (("covid_data", COVID_FACTS, covid_raw), ("country_data", COUNTRY_DATA, country_raw))
    }
    for source, columns in missing.items():
        if columns:
            log.warning("%s: optional columns missing, filled with nulls: %s", source, ", ".join(columns))
    countries = local_countries(conform_countries(country_raw))
    facts = conform_facts(covid_raw, countries, max_collected_copies)
    missing_columns = {k: v for k, v in missing.items() if v}
    return TrustedTables(facts, countries, missing_columns)


# --- quality summary -----------------------------------------------------------------


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

    @property
    def rejected_total(self) -> int:
        return sum(n for rules in self.rejected.values() for n in rules.values())


def summarize(rows_in: dict[str, int], daily: DataFrame, snapshot: DataFrame, rejected: DataFrame) -> QualitySummary:
    counts: dict[str, dict[str, int]] = {}
    for row in rejected.groupBy("source", "rule").count().collect():
        counts.setdefault(row["source"], {})[row["rule"]] = row["count"]
    return QualitySummary(rows_in, {"daily": daily.count(), "snapshot": snapshot.count()}, counts)


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


# --- the job -------------------------------------------------------------------------


def write_trusted(
    spark: SparkSession,
    storage,
    covid_csv: str,
    country_csv: str,
    run_id: str,
    rows_in: dict[str, int] | None = None,
    max_rejected_share: float = DEFAULT_MAX_REJECTED_SHARE,
    daily_files: int = 1,
) -> QualitySummary:
    """Read both raw CSVs, write the trusted tables to staging, check the rejected
    share, then publish all three at once (or nothing).

    Jobs: the country table and the duplicate check (tiny, narrow), daily (the one pass
    over every column, counting rows per rule as it goes), the failed rows only if
    there are any, the snapshot from the staged daily table."""
    spark.conf.set(*NO_CONSTRAINT_PROPAGATION)
    tables = build_trusted(read_csv_as_strings(spark, covid_csv), read_csv_as_strings(spark, country_csv))
    staging = storage.staging_prefix("trusted", run_id)
    try:
        observed = Observation("covid_facts")
        facts = tables.facts.observe(observed, *fact_counts())
        # no shuffle before this write: never fewer tasks than cores
        files = max(daily_files, spark.sparkContext.defaultParallelism)
        join_daily(facts, tables.countries).coalesce(files).write.mode("overwrite").parquet(
            storage.url(f"{staging}/daily")
        )
        counts = observed.get
        rejected = tables.rejected if counts["rejected"] else tables.rejected_countries
        rejected.coalesce(1).write.mode("overwrite").parquet(storage.url(f"{staging}/rejected"))
        snapshot = latest_snapshot(spark.read.parquet(storage.url(f"{staging}/daily")))
        snapshot.coalesce(1).orderBy("location").write.mode("overwrite").parquet(storage.url(f"{staging}/snapshot"))
        staged = {n: spark.read.parquet(storage.url(f"{staging}/{n}")) for n in ("snapshot", "rejected")}
        summary = summarize_counts(rows_in, counts, tables.countries, staged["snapshot"].count())
        summary.missing_columns = tables.missing_columns
        log.info("quality summary: %s", json.dumps(summary.to_dict()))
        check_rejected_share(summary, staged["rejected"], max_rejected_share)
        # Bookkeeping first, publication last: no write after the publish can fail and leave
        # trusted/ published but the step failed. The manifest is ingest's (raw/ is read-only here).
        storage.put_bytes(TRUSTED_QUALITY_KEY, json.dumps({"run_id": run_id, **summary.to_dict()}).encode())
        storage.publish({f"{staging}/{name}": f"trusted/{name}" for name in ("daily", "snapshot", "rejected")})
    finally:
        tables.countries.unpersist()
        storage.delete_prefix(staging)
    return summary


def fact_counts() -> list[Column]:
    """Observed while daily is written: input rows, and rows failing each fact rule."""
    names = [name for name, _, _ in fact_rules()]
    per_rule = [F.count(F.when(F.col("_rule") == n, 1)).alias(n) for n in names]
    return [F.count(F.lit(1)).alias("rows"), F.count("_rule").alias("rejected"), *per_rule]


def summarize_counts(
    rows_in: dict[str, int] | None, counts: dict[str, int], countries: DataFrame, snapshot_rows: int
) -> QualitySummary:
    """The quality summary from the counts observed on the facts and the local country table."""
    country_rules_failed = [r["_rule"] for r in countries.select("_rule").collect()]
    rejected: dict[str, dict[str, int]] = {}
    countries_failed = Counter(rule for rule in country_rules_failed if rule is not None)
    if countries_failed:
        rejected["country_data"] = dict(countries_failed)
    facts_failed = {name: counts[name] for name, _, _ in fact_rules() if counts[name]}
    if facts_failed:
        rejected["covid_data"] = facts_failed
    rows_in = rows_in or {"covid_data": counts["rows"], "country_data": len(country_rules_failed)}
    rows_out = {"daily": counts["rows"] - counts["rejected"], "snapshot": snapshot_rows}
    return QualitySummary(rows_in, rows_out, rejected)


def publish_quality_metrics(
    summary: QualitySummary, namespace: str, cloudwatch=None, region: str | None = None
) -> None:
    """On EMR (no Powertools EMF agent there): the same metrics the local runner emits."""
    import boto3

    cloudwatch = cloudwatch or boto3.client("cloudwatch", region_name=region)
    dims = [{"Name": "service", "Value": "covidlake"}]
    data = [{"MetricName": "RowsRejected", "Value": summary.rejected_total, "Unit": "Count", "Dimensions": dims}]
    data += [
        {"MetricName": f"RowsTrusted_{table}", "Value": rows, "Unit": "Count", "Dimensions": dims}
        for table, rows in summary.rows_out.items()
    ]
    data += [
        {"MetricName": f"RowsRejected_{rule}", "Value": n, "Unit": "Count", "Dimensions": dims}
        for rules in summary.rejected.values()
        for rule, n in rules.items()
    ]
    for i in range(0, len(data), 20):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[i : i + 20])


def main(argv: list[str] | None = None) -> int:
    from covidlake.storage import open_lake

    parser = argparse.ArgumentParser(description="covidlake ETL: raw -> trusted")
    parser.add_argument("--lake", required=True, help="lake root: s3://bucket or a folder")
    parser.add_argument("--covid-csv", required=True)
    parser.add_argument("--country-csv", required=True)
    parser.add_argument("--run-id", default="manual")
    parser.add_argument("--max-rejected-share", type=float, default=DEFAULT_MAX_REJECTED_SHARE)
    parser.add_argument("--manifest-key", default=None, help="the ingest manifest (read only: input row counts)")
    parser.add_argument("--metrics-namespace", default=None, help="publish quality metrics to CloudWatch")
    parser.add_argument("--metrics-region", default=None, help="the CloudWatch region (EMR nodes have no default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spark = (
        SparkSession.builder.appName("covidlake-etl")
        .config("spark.sql.legacy.timeParserPolicy", "CORRECTED")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    storage = open_lake(args.lake)
    rows_in = None
    if args.manifest_key and storage.exists(args.manifest_key):
        sources = json.loads(storage.get_bytes(args.manifest_key))["sources"]
        rows_in = {name: source["rows"] for name, source in sources.items()}
    try:
        summary = write_trusted(
            spark,
            storage,
            args.covid_csv,
            args.country_csv,
            args.run_id,
            rows_in=rows_in,
            max_rejected_share=args.max_rejected_share,
        )
    except (SchemaError, QualityError) as err:
        print(f"covidlake etl: {err}", file=sys.stderr)
        return 2
    if args.metrics_namespace:
        try:
            publish_quality_metrics(summary, args.metrics_namespace, region=args.metrics_region)
        except Exception as err:  # the data is published; a missing permission must not fail the run
            log.warning("could not publish quality metrics to %s: %s", args.metrics_namespace, err)
    print(json.dumps(summary.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
