"""The refined tables on small typed frames."""

from __future__ import annotations

import math

import pytest

from covidlake.refined import tables as analytics
from covidlake.refined.build import build_refined
from covidlake.schemas import REFINED_TABLES, TRUSTED_TABLES

SNAPSHOT = TRUSTED_TABLES["snapshot"]


def snapshot(spark, rows: list[dict]):
    full = [tuple(r.get(c) for c in SNAPSHOT.column_names) for r in rows]
    return spark.createDataFrame(full, schema=SNAPSHOT.spark_schema())


def country(location, continent, hdi=None, gdp=None, density=None, cases=None, population=None, deaths_pm=None):
    return {
        "location": location,
        "continent": continent,
        "human_development_index": hdi,
        "gdp_per_capita": gdp,
        "population_density": density,
        "total_cases": cases,
        "population": population,
        "total_deaths_per_million": deaths_pm,
    }


@pytest.fixture
def base(spark):
    rows = [
        country("A1", "Asia", 0.80, 100.0, 10.0, 100.0, 1000.0, 5.0),
        country("A2", "Asia", 0.70, 200.0, 20.0, 300.0, 1000.0, 7.0),
        country("A3", "Asia", 0.55, 300.0, 30.0, 200.0, 1000.0, 9.0),
        country("E1", "Europe", 0.5499, 50.0, 5.0, 10.0, 100.0, 1.0),
        country("E2", "Europe", None, None, None, 2000.0, 1000.0, None),
        country("World", None, None, None, None, 9_999_999.0, 8e9, None),
    ]
    return analytics.countries(snapshot(spark, rows))


def collect(df):
    return [r.asDict() for r in df.collect()]


def test_every_table_matches_the_registry(base):
    tables = build_refined(base)
    assert list(tables) == list(REFINED_TABLES)
    for name, df in tables.items():
        assert df.schema.simpleString() == REFINED_TABLES[name].spark_schema().simpleString(), name


def test_countries_excludes_rows_without_continent_and_adds_cases_per_thousand(base):
    rows = {r["location"]: r["cases_per_thousand"] for r in collect(base)}
    assert "World" not in rows
    assert rows["A1"] == pytest.approx(100.0) and rows["E1"] == pytest.approx(100.0)


def test_continent_stats_by_count_descending(base):
    assert collect(analytics.continent_stats(base)) == [
        {"continent": "Asia", "countries": 3},
        {"continent": "Europe", "countries": 2},
    ]


def test_numeric_summary(base):
    (row,) = collect(analytics.numeric_summary(base))
    assert row["total_records"] == 5
    assert row["max_total_cases"] == 2000.0
    assert row["avg_total_cases"] == pytest.approx((100 + 300 + 200 + 10 + 2000) / 5)
    assert row["max_cases_per_thousand"] == pytest.approx(2000.0)


def test_top_countries_ordered_and_limited(base):
    rows = collect(analytics.top_countries(base, n=2))
    assert [(r["location"], r["total_cases"], r["population"]) for r in rows] == [("E2", 2000, 1000), ("A2", 300, 1000)]


def test_hdi_categories_at_their_boundaries(base):
    rows = {r["hdi_category"]: r for r in collect(analytics.hdi_analysis(base))}
    assert [r for r in rows] == ["Very High", "High", "Medium", "Low"]
    assert {k: v["countries"] for k, v in rows.items()} == {"Very High": 1, "High": 1, "Medium": 1, "Low": 1}
    assert rows["Low"]["avg_deaths_per_million"] == 1.0


def test_correlation_is_pearson_over_complete_rows(base):
    rows = collect(analytics.correlation_analysis(base))
    asia = next(r for r in rows if r["continent"] == "Asia")
    # hdi (0.8, 0.7, 0.55) against cases per thousand (100, 300, 200)
    x, y = [0.8, 0.7, 0.55], [100.0, 300.0, 200.0]
    mx, my = sum(x) / 3, sum(y) / 3
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    expected = cov / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))
    assert asia["hdi_cases_correlation"] == pytest.approx(expected)
    assert asia["country_count"] == 3
    europe = next(r for r in rows if r["continent"] == "Europe")
    assert europe["country_count"] == 1 and europe["hdi_cases_correlation"] is None
    assert rows[-1]["continent"] == "Europe"  # null correlation sorts last


def test_clusters_cover_each_eligible_country_once_and_are_deterministic(spark):
    rows = [
        country(f"C{i:02d}", "Asia", 0.3 + (i % 7) / 10, 100.0 * (1 + i % 5), 1.0 + i, 10.0 * i, 1000.0)
        for i in range(30)
    ]
    rows.append(country("Zero", "Asia", 0.5, 0.0, 3.0, 1.0, 1.0))  # gdp not positive: excluded
    base = analytics.countries(snapshot(spark, rows))
    first = collect(analytics.clusters(base))
    again = collect(analytics.clusters(analytics.countries(snapshot(spark, list(reversed(rows))))))
    assert [r["location"] for r in first] == [f"C{i:02d}" for i in range(30)]
    assert first == again
    assert {r["cluster"] for r in first} == {0, 1, 2, 3}
    summary = collect(analytics.cluster_summary(analytics.clusters(base)))
    assert sum(r["countries"] for r in summary) == 30


def test_a_registered_table_is_built_after_the_table_it_reads(base, monkeypatch):
    from tests.unit.throwaway_table import THROWAWAY

    monkeypatch.setitem(REFINED_TABLES, THROWAWAY.name, THROWAWAY)
    tables = build_refined(base)
    assert list(tables) == list(REFINED_TABLES) and list(tables)[-1] == THROWAWAY.name
    assert collect(tables[THROWAWAY.name]) == [
        {"continent": "Asia", "doubled_countries": 6},
        {"continent": "Europe", "doubled_countries": 4},
    ]


def test_a_slow_table_does_not_hold_back_the_others(base, monkeypatch):
    """K-Means (eager, many small jobs) is fitted beside the SQL tables: here the first
    table's builder cannot finish until clusters, listed after it, has been built."""
    import threading

    clusters_built = threading.Event()
    first_builder = analytics.continent_stats

    def waits_for_clusters(countries):
        assert clusters_built.wait(timeout=60), "clusters was not built while continent_stats was"
        return first_builder(countries)

    monkeypatch.setattr(analytics, "continent_stats", waits_for_clusters)
    built = []

    def on_built(name, df):
        built.append(name)
        if name == "clusters":
            clusters_built.set()

    tables = build_refined(base, on_built=on_built)
    assert list(tables) == list(REFINED_TABLES) and sorted(built) == sorted(REFINED_TABLES)
    assert built.index("clusters") < built.index("continent_stats")
    assert collect(tables["continent_stats"]) == collect(first_builder(base))


def test_a_failed_builder_fails_the_build_and_what_reads_it_is_not_built(base, monkeypatch):
    def broken(countries):
        raise ValueError("no clusters today")

    monkeypatch.setattr(analytics, "clusters", broken)
    built = []
    with pytest.raises(ValueError, match="no clusters today"):
        build_refined(base, on_built=lambda name, df: built.append(name))
    assert "cluster_summary" not in built and "clusters" not in built
    assert "continent_stats" in built  # the tables that do not read it were still built
