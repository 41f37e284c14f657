"""The ETL's shuffle-free duplicate numbering: the same verdicts whether the
later copies are few enough to collect or not, the first copy in input order kept, later
copies numbered, other rules still first."""

from __future__ import annotations

import pytest

from covidlake.trusted.build import build_trusted
from tests.unit.test_etl import FACT_HEADER, strings

ROWS = [
    ("ALA", "Aland", "2024-01-01", "9", "1", "1"),  # first copy: kept (not the smallest value)
    ("BOR", "Borduria", "2024-01-01", "5", "0", "0"),
    ("ALA", "Aland", "2024-01-01", "3", "1", "1"),  # copy 2
    ("ALA", "Aland", "2024-01-02", "10", "1", "1"),
    ("ALA", "Aland", "2024-01-01", "-1", "1", "1"),  # copy 3, but negative_count comes first
    ("ALA", "Aland", "2024-01-01", "4", "1", "1"),  # copy 4
]


@pytest.mark.parametrize("max_collected_copies", [100_000, 1])
def test_duplicates_keep_the_first_copy_in_input_order(spark, max_collected_copies):
    countries = strings(
        spark,
        ["location", "continent", "population", "population_density", "gdp_per_capita", "human_development_index"],
        [("Aland", "Europe", "1000", "10", "20000", "0.9"), ("Borduria", "Europe", "2000", "20", "5000", "0.6")],
    )
    # the rows are sliced over several partitions: input order spans them, as in a split CSV
    facts = strings(spark, FACT_HEADER, ROWS)
    tables = build_trusted(facts, countries, max_collected_copies=max_collected_copies)
    daily = sorted((r["location"], str(r["date"]), r["total_cases"]) for r in tables.daily.collect())
    rejected = sorted((r["rule"], r["detail"]) for r in tables.rejected.collect())
    assert daily == [("Aland", "2024-01-01", 9.0), ("Aland", "2024-01-02", 10.0), ("Borduria", "2024-01-01", 5.0)]
    assert rejected == [
        ("duplicate_location_date", "copy 2"),
        ("duplicate_location_date", "copy 4"),
        ("negative_count", "total_cases=-1"),
    ]


def test_snapshot_is_the_latest_row_per_country(spark):
    countries = strings(
        spark,
        ["location", "continent", "population", "population_density", "gdp_per_capita", "human_development_index"],
        [("Aland", "Europe", "1000", "10", "20000", "0.9"), ("World", None, "8000", None, None, None)],
    )
    facts = strings(
        spark,
        FACT_HEADER,
        [
            ("ALA", "Aland", "2024-01-03", "30", "1", "1"),
            ("ALA", "Aland", "2024-01-05", "50", "1", "1"),
            ("ALA", "Aland", "2024-01-04", "40", "1", "1"),
            ("OWID_WRL", "World", "2024-01-09", "90", "1", "1"),
        ],
    )
    snapshot = build_trusted(facts, countries).snapshot.collect()
    assert [(r["location"], str(r["date"]), r["total_cases"]) for r in snapshot] == [("Aland", "2024-01-05", 50.0)]
