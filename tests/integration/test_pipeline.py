"""The whole pipeline on the bundled data, as `make run` runs it."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from covidlake.cli import STAGE_LABELS
from covidlake.query import DuckDBBackend
from covidlake.refined import tables as analytics
from covidlake.refined.build import write_refined
from covidlake.runner import run_pipeline
from covidlake.schemas import REFINED_TABLES, TRUSTED_TABLES
from covidlake.settings import BUNDLED_DATA
from covidlake.storage import LocalStorage
from covidlake.trusted.job import write_trusted

from .httpfixtures import http_server, send

EXPECTED_CONTINENTS = [
    ("Africa", 57),
    ("Europe", 51),
    ("Asia", 48),
    ("North America", 41),
    ("Oceania", 24),
    ("South America", 14),
]
ARROW_TYPES = {"string": "string", "double": "double", "bigint": "int64", "int": "int32", "date": "date32[day]"}


def table(lake, zone, name):
    return pq.read_table(lake / zone / name)


def rows(lake, name):
    return DuckDBBackend(LocalStorage(lake)).fetch(name)


@pytest.mark.parametrize("name", list(REFINED_TABLES))
def test_refined_tables_have_the_registry_columns_and_types(bundled_lake, name):
    schema = table(bundled_lake, "refined", name).schema
    expected = [(c.name, ARROW_TYPES[c.type.value]) for c in REFINED_TABLES[name].columns]
    assert [(f.name, str(f.type)) for f in schema] == expected


def test_trusted_tables_have_the_registry_columns(bundled_lake):
    for name, spec in TRUSTED_TABLES.items():
        assert table(bundled_lake, "trusted", name).schema.names == spec.column_names, name


def test_continent_stats_on_bundled_data(bundled_run):
    lake, report = bundled_run
    assert [(r["continent"], r["countries"]) for r in rows(lake, "continent_stats")] == EXPECTED_CONTINENTS
    assert report.continent_stats == rows(lake, "continent_stats")
    assert report.zone_rows["trusted"] == {"daily": 247, "snapshot": 235, "rejected": 0}
    assert set(report.stage_seconds) >= {"database", "ingest", "etl", "analytics", "query"}


def test_numeric_summary_and_top_countries(bundled_lake):
    (summary,) = rows(bundled_lake, "numeric_summary")
    assert summary["total_records"] == 235
    top = rows(bundled_lake, "top_countries")
    assert len(top) == 10
    assert top[0]["location"] == "United States" and isinstance(top[0]["total_cases"], int)
    assert [r["total_cases"] for r in top] == sorted((r["total_cases"] for r in top), reverse=True)


def test_hdi_buckets_and_correlations(bundled_lake):
    hdi = {r["hdi_category"]: r["countries"] for r in rows(bundled_lake, "hdi_analysis")}
    assert list(hdi) == ["Very High", "High", "Medium", "Low"]
    assert hdi == {"Very High": 66, "High": 53, "Medium": 37, "Low": 33}
    corr = rows(bundled_lake, "correlation_analysis")
    assert sum(r["country_count"] for r in corr) == 183  # the rows with all four measures
    assert all(-1 <= r["hdi_cases_correlation"] <= 1 for r in corr)
    values = [r["hdi_cases_correlation"] for r in corr]
    assert values == sorted(values, reverse=True)


def test_clusters_cover_every_eligible_country_once(bundled_lake):
    snapshot = table(bundled_lake, "trusted", "snapshot").to_pylist()
    eligible = {
        r["location"] for r in snapshot if r["continent"] and all((r[f] or 0) > 0 for f in analytics.CLUSTER_FEATURES)
    }
    clustered = rows(bundled_lake, "clusters")
    assert len(eligible) == 184
    assert sorted(r["location"] for r in clustered) == sorted(eligible)
    assert len(clustered) == len({r["location"] for r in clustered})
    assert {r["cluster"] for r in clustered} == {0, 1, 2, 3}
    summary = rows(bundled_lake, "cluster_summary")
    assert sum(r["countries"] for r in summary) == 184


def test_second_run_is_a_no_op(lake_copy, settings):
    before = {p: p.read_bytes() for p in (lake_copy / "refined").rglob("*") if p.is_file()}
    raw_before = sorted((lake_copy / "raw").rglob("*"))
    report = run_pipeline(settings, lake=str(lake_copy))
    assert report.ingest.changed is False and not report.processed
    assert "etl" not in report.stage_seconds and "analytics" not in report.stage_seconds
    assert sorted((lake_copy / "raw").rglob("*")) == raw_before
    after = {p: p.read_bytes() for p in (lake_copy / "refined").rglob("*") if p.is_file()}
    assert after == before


def test_owid_latest_67_column_file_gives_the_same_countries(spark, tmp_path):
    storage = LocalStorage(tmp_path)
    summary = write_trusted(
        spark, storage, f"file://{BUNDLED_DATA}/owid-covid-latest.csv", f"file://{BUNDLED_DATA}/country_data.csv", "t1"
    )
    assert summary.rows_out == {"daily": 247, "snapshot": 235}
    write_refined(spark, storage, "t1")
    assert [(r["continent"], r["countries"]) for r in rows(tmp_path, "continent_stats")] == EXPECTED_CONTINENTS


def test_owid_daily_file_snapshot_takes_latest_day(spark, tmp_path):
    storage = LocalStorage(tmp_path)
    summary = write_trusted(
        spark,
        storage,
        f"file://{BUNDLED_DATA}/owid-covid-timeseries-sample.csv",
        f"file://{BUNDLED_DATA}/country_data.csv",
        "t2",
    )
    assert summary.rows_in["covid_data"] == 5813
    rejected = sum(summary.rejected.get("covid_data", {}).values())
    assert summary.rows_out["daily"] + rejected == 5813
    snapshot = table(tmp_path, "trusted", "snapshot").to_pylist()
    # Africa is an aggregate; the countries keep their latest day
    assert sorted(r["location"] for r in snapshot) == ["Afghanistan", "Albania", "Algeria"]
    afghanistan = next(r for r in snapshot if r["location"] == "Afghanistan")
    assert str(afghanistan["date"]) == "2024-08-04"


def cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "covidlake.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_cli_query_prints_json(bundled_lake, tmp_path):
    result = cli("query", "continent_stats", "--json", "--lake", str(bundled_lake), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert '"countries": 57' in result.stdout


def test_cli_run_with_csv_missing_a_column_fails_naming_it(tmp_path):
    body = (BUNDLED_DATA / "covid_data.csv").read_bytes().replace(b"total_deaths,", b"deaths,", 1)
    with http_server(lambda h, n: send(h, 200, body)) as (url, _):
        result = cli("run", "--lake", str(tmp_path / "lake"), "--source-url", f"{url}/covid.csv", cwd=tmp_path)
    assert result.returncode == 2
    assert "missing required column total_deaths" in result.stderr
    assert not (tmp_path / "lake" / "raw").exists() or not any((tmp_path / "lake" / "raw").rglob("*.csv"))


def test_cli_query_before_any_run_says_so(tmp_path):
    result = cli("query", "clusters", "--lake", str(tmp_path / "empty"), cwd=tmp_path)
    assert result.returncode == 2
    assert "refined table clusters has no data" in result.stderr


def test_country_csv_option_loads_another_file_into_the_embedded_database(lake_copy, settings, tmp_path):
    lines = (BUNDLED_DATA / "country_data.csv").read_text().splitlines()
    moved = [line.replace("France,Europe,", "France,Asia,", 1) for line in lines]
    assert moved != lines
    country_csv = tmp_path / "countries.csv"
    country_csv.write_text("\n".join(moved) + "\n")
    report = run_pipeline(settings, lake=str(lake_copy), country_csv=country_csv)
    assert report.ingest.changed  # the database extract changed, the CSV did not
    counts = dict((r["continent"], r["countries"]) for r in report.continent_stats)
    assert (counts["Europe"], counts["Asia"]) == (50, 49)
    # and the bundled file again puts things back
    report = run_pipeline(settings, lake=str(lake_copy))
    assert dict((r["continent"], r["countries"]) for r in report.continent_stats)["Europe"] == 51


def test_cli_run_shows_each_stage_once_and_no_spark_banner(tmp_path):
    """Not a terminal: one progress line per stage on stderr, and nothing from Spark."""
    env = {**os.environ, "COVIDLAKE_STATE_DIR": str(tmp_path / "state")}
    result = subprocess.run(
        [sys.executable, "-m", "covidlake.cli", "run", "--lake", str(tmp_path / "lake")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "Setting default log level" not in result.stderr
    assert len(lines) == len(STAGE_LABELS), result.stderr
    for line, label in zip(lines, STAGE_LABELS.values(), strict=True):
        assert line.strip().startswith(label) and " s" in line
    assert "247 rows" in lines[1] and "kB/s" in lines[1]


def _write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header), *(",".join(r) for r in rows)]) + "\n")


REPEATS = {
    "none": ([], {}),
    "behind a rejected row": ([("ALA", "Aland", "2024-01-01", "3", "1", "1")], {"Aland": "copy 2"}),
    "among daily rows": ([("BOR", "Borduria", "2024-01-01", "6", "0", "0")], {"Borduria": "copy 2"}),
}


@pytest.mark.parametrize("repeats", list(REPEATS))
def test_repeated_keys_are_numbered_when_the_staged_tables_show_them(spark, tmp_path, repeats):
    """write_trusted stages on the assumption that no (location, date) repeats and checks
    the staged keys; a repeat, even behind a row an earlier rule rejected, makes it
    number the copies and stage again. Without repeats the tables are the single pass's."""
    from tests.unit.test_etl import COUNTRY_HEADER, FACT_HEADER

    facts = [
        ("ALA", "Aland", "2024-01-01", "-1", "1", "1"),  # rejected (negative_count), but the first copy
        ("ALA", "Aland", "2024-01-02", "10", "1", "1"),
        ("BOR", "Borduria", "2024-01-01", "5", "0", "0"),
    ]
    extra, copies = REPEATS[repeats]
    facts += extra
    _write_csv(tmp_path / "facts.csv", FACT_HEADER, facts)
    _write_csv(
        tmp_path / "countries.csv",
        COUNTRY_HEADER,
        [("Aland", "Europe", "1000", "10", "20000", "0.9"), ("Borduria", "Europe", "2000", "20", "5000", "0.6")],
    )
    lake = LocalStorage(tmp_path / "lake")
    summary = write_trusted(
        spark, lake, f"file://{tmp_path}/facts.csv", f"file://{tmp_path}/countries.csv", "t3", max_rejected_share=1.0
    )
    daily = sorted(
        (r["location"], str(r["date"]), r["total_cases"])
        for r in table(tmp_path / "lake", "trusted", "daily").to_pylist()
    )
    assert daily == [("Aland", "2024-01-02", 10.0), ("Borduria", "2024-01-01", 5.0)]
    assert summary.rejected["covid_data"] == {"negative_count": 1, **({"duplicate_location_date": 1} if copies else {})}
    rejected = table(tmp_path / "lake", "trusted", "rejected").to_pylist()
    duplicates = {r["location"]: r["detail"] for r in rejected if r["rule"] == "duplicate_location_date"}
    assert duplicates == copies
    assert summary.rows_out == {"daily": 2, "snapshot": 2}
