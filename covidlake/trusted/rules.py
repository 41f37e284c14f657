"""The quality rules: each row gets the first rule it fails (or none), with a detail
naming the offending values; failed rows become the rejected table, never dropped silently."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from covidlake.schemas import COUNTRY_DATA, COVID_FACTS, ColumnType, TableSchema

# Running totals may never be negative. OWID's new_* columns legitimately are when a
# country revises its figures down, so they are not checked.
NON_NEGATIVE = ("total_cases", "total_deaths", "total_cases_per_million", "total_deaths_per_million")
POSITIVE = ("population", "population_density")


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
