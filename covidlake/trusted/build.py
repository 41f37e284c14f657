"""Raw (string) frames of both sources -> the trusted tables: the country table, the
flagged facts, the daily facts joined with the country attributes, the per-country
snapshot and the rejected rows. Pure DataFrame -> DataFrame functions; no I/O."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from covidlake.schemas import COUNTRY_ATTRIBUTES, COUNTRY_DATA, COVID_FACTS, TRUSTED_TABLES
from covidlake.trusted.rules import (
    apply_rules,
    country_rules,
    detail_of_rule,
    fact_rules,
    first_failed_rule,
    number_copies,
    rejected_rows,
)
from covidlake.trusted.typed import (
    DATE_FORMAT,
    normalize_columns,
    quote,
    require_columns,
    sql_string,
    typed_sql,
    with_raw_and_typed,
)

log = logging.getLogger(__name__)


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
    raw = raw.selectExpr(
        *[f"{quote(c)} AS {quote('_csv_' + c)}" if c in carried else quote(c) for c in raw.columns],
        "monotonically_increasing_id() AS _row_id",  # input position, right on the scan
    )
    typed = with_raw_and_typed(raw, COVID_FACTS, keep=[f"_csv_{c}" for c in carried] + ["_row_id"])
    # a few hundred names: an in-set test on each row, no join
    known = ", ".join(sql_string(name) for name in known_locations) or "NULL"
    return typed.selectExpr("*", f"coalesce(location IN ({known}), false) AS _known_location")


def later_copies(typed: DataFrame) -> DataFrame:
    """(`_row_id`, `_copy`) of every copy after the first of a (location, date), in input
    order. Only the keys that occur twice are numbered: normally none, so the one job
    is an aggregate of two narrow columns."""
    keys = typed.select("location", "date", "_row_id")
    twice = keys.groupBy("location", "date").count().where(F.col("count") > 1).drop("count")
    same_key = (keys["location"].eqNullSafe(twice["location"])) & (keys["date"].eqNullSafe(twice["date"]))
    in_twice = keys.join(twice, on=same_key, how="left_semi")
    return number_copies(in_twice, ["location", "date"], ["_row_id"]).where("_copy > 1").select("_row_id", "_copy")


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
        numbered = typed.selectExpr("*", "1 AS _copy")
    else:
        numbered = (
            typed.join(F.broadcast(copies.withColumnRenamed("_copy", "_later_copy")), on="_row_id", how="left")
            .selectExpr("*", "coalesce(_later_copy, 1) AS _copy")
            .drop("_later_copy")
        )
    return numbered.selectExpr("*", f"{first_failed_rule(fact_rules())} AS _rule")


def fact_details(flagged: DataFrame) -> DataFrame:
    """The failed rows of flag_facts, with `_detail` for the rule each one failed."""
    return flagged.where("_rule IS NOT NULL").selectExpr("*", f"{detail_of_rule(fact_rules())} AS _detail")


def conform_facts(
    raw: DataFrame, known_locations: list[str], max_collected_copies: int = 100_000, assume_unique: bool = False
) -> DataFrame:
    """Typed fact rows flagged by the fact rules (`_rule`; `_detail` for failed rows
    only in fact_details); `known_locations` are country_data's locations, all rows.

    Speed (benchmarks/NOTES.md): no shuffle of whole rows. Duplicates are found by an
    aggregate of (location, date) alone and numbered in input order; every other rule
    is row-local, evaluated once in one expression, with no per-rule columns. With
    `assume_unique` that job is skipped: the caller checks the staged tables instead
    (repeated_keys) and builds again without it if a key repeats."""
    typed = typed_facts(raw, known_locations)
    if assume_unique:
        return flag_facts(typed, None)
    return flag_facts(typed, resolve_copies(later_copies(typed), max_collected_copies))


def repeated_keys(daily: DataFrame, rejected: DataFrame) -> bool:
    """Whether a (location, date) occurs twice among the rows a duplicate check numbers
    that can matter: the daily rows and the rejected facts with a location and a date
    (a row rejected by an earlier rule can still be the first copy). Rows without a
    location or date already fail an earlier rule, as does every copy of them."""
    rejected_keys = rejected.where("source = 'covid_data' AND location IS NOT NULL").selectExpr(
        "location", f"to_date(date, '{DATE_FORMAT}') AS date"
    )
    keys = daily.select("location", "date").unionByName(rejected_keys.where("date IS NOT NULL"))
    return bool(keys.groupBy("location", "date").count().where("count > 1").limit(1).collect())


def join_daily(facts: DataFrame, countries: DataFrame) -> DataFrame:
    """Good facts joined with good country rows on location; where both carry a
    column the database's value wins (the CSV's is used only where it has none)."""
    good_countries = countries.where("_rule IS NULL").selectExpr(
        "location", *[f"{quote(c)} AS {quote('_db_' + c)}" for c in COUNTRY_ATTRIBUTES]
    )
    joined = facts.where("_rule IS NULL").join(F.broadcast(good_countries), on="location", how="left")
    columns = []
    for col in TRUSTED_TABLES["daily"].columns:
        name, type_ = quote(col.name), col.type.value
        if col.name in COUNTRY_ATTRIBUTES:
            csv = f"_csv_{col.name}"
            csv_value = typed_sql(quote(csv), col.type) if csv in joined.columns else "NULL"
            columns.append(f"coalesce({quote('_db_' + col.name)}, CAST({csv_value} AS {type_})) AS {name}")
        else:
            columns.append(f"CAST({name} AS {type_}) AS {name}")
    return joined.selectExpr(*columns)


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
    # `_rule` of every country row (None: passed), collected with the locations
    country_verdicts: list[str | None] = field(default_factory=list)
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


def build_trusted(
    covid_raw: DataFrame, country_raw: DataFrame, max_collected_copies: int = 100_000, assume_unique: bool = False
) -> TrustedTables:
    """Raw (string) frames of both sources -> the trusted tables. The country table's
    locations and verdicts are collected and a duplicate check runs here (two narrow
    jobs); the rest is lazy."""
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
    collected = countries.select("location", "_rule").collect()  # the one job on the country table
    known = sorted({r["location"] for r in collected if r["location"] is not None})
    facts = conform_facts(covid_raw, known, max_collected_copies, assume_unique)
    missing_columns = {k: v for k, v in missing.items() if v}
    return TrustedTables(facts, countries, [r["_rule"] for r in collected], missing_columns)
