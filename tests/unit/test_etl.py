"""The ETL's transformations on small string frames, as they arrive from a CSV."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import Observation

from covidlake.errors import QualityError, SchemaError
from covidlake.schemas import COUNTRY_DATA, COVID_FACTS, TRUSTED_TABLES
from covidlake.trusted.build import build_trusted
from covidlake.trusted.quality import check_rejected_share, fact_counts, summarize_counts
from covidlake.trusted.typed import normalize_columns

COUNTRY_HEADER = [
    "location",
    "continent",
    "population",
    "population_density",
    "gdp_per_capita",
    "human_development_index",
]
FACT_HEADER = ["iso_code", "location", "date", "total_cases", "total_deaths", "total_deaths_per_million"]


def strings(spark, header, rows):
    return spark.createDataFrame([tuple(r) for r in rows], schema=", ".join(f"`{h}` string" for h in header))


@pytest.fixture
def countries_raw(spark):
    return strings(
        spark,
        COUNTRY_HEADER,
        [
            ("Aland", "Europe", "1000", "10", "20000", "0.9"),
            ("Borduria", "Europe", "2000", "20", "5000", "0.6"),
            ("World", None, "8000000000", None, None, None),
        ],
    )


def build(spark, facts_rows, countries_raw, header=FACT_HEADER):
    return build_trusted(strings(spark, header, facts_rows), countries_raw)


def rejected_rules(tables) -> dict[str, str]:
    return {(r["location"], r["date"]): r["rule"] for r in tables.rejected.collect()}


def test_normalize_columns_trims_lowercases_and_aliases(spark):
    df = strings(spark, [" Location", "LAST_UPDATED_DATE ", "Total Cases"], [("a", "b", "c")])
    assert normalize_columns(df, "x").columns == ["location", "date", "total_cases"]


def test_normalize_columns_rejects_duplicates_after_normalising(spark):
    df = strings(spark, ["location", "Location "], [("a", "b")])
    with pytest.raises(SchemaError, match="location appear more than once"):
        normalize_columns(df, "covid_data")


def test_missing_required_column_is_named(spark, countries_raw):
    facts = strings(spark, ["location", "date", "total_deaths"], [("Aland", "2024-01-01", "1")])
    with pytest.raises(SchemaError, match="covid_data: missing required column.*total_cases"):
        build_trusted(facts, countries_raw)


def test_daily_is_typed_joined_and_in_registry_order(spark, countries_raw):
    tables = build(spark, [("ALA", "Aland", "2024-01-02", "100", "1", "1000")], countries_raw)
    assert tables.daily.schema.simpleString() == TRUSTED_TABLES["daily"].spark_schema().simpleString()
    row = tables.daily.collect()[0]
    assert (row["location"], row["continent"], row["date"]) == ("Aland", "Europe", dt.date(2024, 1, 2))
    assert (row["total_cases"], row["population"], row["human_development_index"]) == (100.0, 1000.0, 0.9)
    assert row["new_cases"] is None  # optional column absent from the CSV: null


def test_database_values_win_over_the_csvs(spark, countries_raw):
    header = FACT_HEADER + ["continent", "population", "gdp_per_capita"]
    tables = build(
        spark,
        [("ALA", "Aland", "2024-01-02", "100", "1", "1", "Asia", "999999", "")],
        countries_raw,
        header,
    )
    row = tables.daily.collect()[0]
    assert (row["continent"], row["population"], row["gdp_per_capita"]) == ("Europe", 1000.0, 20000.0)


def test_database_null_falls_back_to_the_csv_value(spark):
    countries = strings(spark, COUNTRY_HEADER, [("Aland", "Europe", "1000", "10", None, "0.9")])
    header = FACT_HEADER + ["gdp_per_capita"]
    tables = build_trusted(strings(spark, header, [("A", "Aland", "2024-01-01", "1", "0", "0", "123.5")]), countries)
    assert tables.daily.collect()[0]["gdp_per_capita"] == 123.5


def test_quality_rules_reject_with_the_rule_name(spark, countries_raw):
    tables = build(
        spark,
        [
            ("ALA", "Aland", "2024-01-01", "10", "1", "1"),
            ("ALA", "Aland", "2024-13-45", "10", "1", "1"),  # bad date
            ("ALA", "Aland", "2024-01-03", "-5", "1", "1"),  # negative total
            ("ALA", "Aland", "2024-01-04", "lots", "1", "1"),  # not a number
            ("XXX", "Atlantis", "2024-01-01", "1", "0", "0"),  # unknown location
            ("BOR", "Borduria", "2024-01-01", "5", "0", "0"),
            ("BOR", "Borduria", "2024-01-01", "6", "0", "0"),  # duplicate location/date
            ("", None, "2024-01-01", "1", "0", "0"),  # no location
        ],
        countries_raw,
    )
    assert rejected_rules(tables) == {
        ("Aland", "2024-13-45"): "unparseable_date",
        ("Aland", "2024-01-03"): "negative_count",
        ("Aland", "2024-01-04"): "unparseable_number",
        ("Atlantis", "2024-01-01"): "unknown_location",
        ("Borduria", "2024-01-01"): "duplicate_location_date",
        (None, "2024-01-01"): "missing_location",
    }
    details = {r["rule"]: r["detail"] for r in tables.rejected.collect()}
    assert details["negative_count"] == "total_cases=-5"
    assert details["unparseable_number"] == "total_cases=lots"
    kept = sorted((r["location"], str(r["date"])) for r in tables.daily.collect())
    assert kept == [("Aland", "2024-01-01"), ("Borduria", "2024-01-01")]


def test_country_rules(spark):
    countries = strings(
        spark,
        COUNTRY_HEADER,
        [
            ("Aland", "Europe", "1000", "10", "20000", "1.3"),
            ("Borduria", "Europe", "0", "20", "5000", "0.6"),
            ("Carpania", "Europe", "10", "-1", "5000", "0.6"),
            ("Duchy", "Europe", "10", "1", "5000", "0.6"),
        ],
    )
    facts = strings(spark, FACT_HEADER, [("D", "Duchy", "2024-01-01", "1", "0", "0")])
    rules = {r["location"]: r["rule"] for r in build_trusted(facts, countries).rejected.collect()}
    assert rules == {
        "Aland": "hdi_out_of_range",
        "Borduria": "non_positive_population",
        "Carpania": "non_positive_population",
    }


def test_snapshot_takes_latest_date_and_drops_aggregates(spark, countries_raw):
    tables = build(
        spark,
        [
            ("ALA", "Aland", "2024-01-01", "10", "1", "1"),
            ("ALA", "Aland", "2024-03-01", "30", "2", "2"),
            ("ALA", "Aland", "2024-02-01", "20", "1", "1"),
            ("OWID_WRL", "World", "2024-03-01", "999", "9", "9"),
        ],
        countries_raw,
    )
    snapshot = tables.snapshot.collect()
    assert [(r["location"], r["total_cases"]) for r in snapshot] == [("Aland", 30.0)]
    assert tables.daily.count() == 4


def test_share_over_threshold_fails_naming_rule_and_examples(spark, countries_raw):
    tables = build(
        spark,
        [("ALA", "Aland", "2024-01-01", "10", "1", "1"), ("ALA", "Aland", "2024-01-02", "-1", "1", "1")],
        countries_raw,
    )
    observed = Observation("facts")  # counted as write_trusted counts them: while the facts pass
    tables.facts.observe(observed, *fact_counts()).collect()
    rows_in = {"covid_data": 2, "country_data": 3}
    summary = summarize_counts(rows_in, observed.get, tables.country_verdicts, tables.snapshot.count())
    assert summary.rejected == {"covid_data": {"negative_count": 1}}
    with pytest.raises(QualityError, match=r"covid_data: 50.0% of 2 rows.*negative_count.*Aland 2024-01-02"):
        check_rejected_share(summary, tables.rejected, 0.05)
    check_rejected_share(summary, tables.rejected, 0.5)  # at the limit: passes


def test_registry_declares_the_sources():
    assert COVID_FACTS.required_names == ["location", "date", "total_cases", "total_deaths"]
    assert COUNTRY_DATA.column_names[0] == "location"
