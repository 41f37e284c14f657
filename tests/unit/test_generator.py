"""The benchmark data generator: OWID's columns, exact row count, deterministic by
seed, monotone running totals, real locations."""

from __future__ import annotations

import csv

import duckdb
import pytest

from benchmarks.generate import generate, owid_columns, parse_rows
from covidlake.settings import BUNDLED_DATA

TOTALS = ("total_cases", "total_deaths", "total_tests", "total_vaccinations", "people_vaccinated")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "daily.csv"
    info = generate(3000, out, seed=7, chunk_rows=1000)  # several chunks: seams must not show
    return out, info


def test_header_is_owids_67_columns(generated):
    out, _ = generated
    with out.open(newline="") as fh:
        header = next(csv.reader(fh))
    assert header == owid_columns()
    assert len(header) == 67
    assert header[:4] == ["iso_code", "continent", "location", "date"]


def test_exact_row_count_and_real_locations(generated):
    out, info = generated
    con = duckdb.connect()
    rows, locations, pairs = con.execute(
        f"SELECT count(*), count(DISTINCT location), count(DISTINCT (location, date)) FROM read_csv('{out}')"
    ).fetchone()
    assert rows == info["rows"] == 3000
    assert pairs == rows  # no duplicate location/date
    known = {r["location"] for r in csv.DictReader((BUNDLED_DATA / "country_data.csv").open())}
    seen = {r[0] for r in con.execute(f"SELECT DISTINCT location FROM read_csv('{out}')").fetchall()}
    assert seen <= known
    assert locations == info["locations"] > 200


def test_running_totals_never_decrease_and_new_cases_are_their_differences(generated):
    out, _ = generated
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{out}')")
    for total in TOTALS:
        drops = con.execute(
            f"""SELECT count(*) FROM (
                  SELECT {total} - lag({total}) OVER (PARTITION BY location ORDER BY date) AS step FROM t)
                WHERE step < 0"""
        ).fetchone()[0]
        assert drops == 0, f"{total} decreases {drops} times"
    negative = con.execute("SELECT count(*) FROM t WHERE total_cases < 0 OR new_cases < 0").fetchone()[0]
    assert negative == 0
    mismatched = con.execute(
        """SELECT count(*) FROM (
             SELECT new_cases, total_cases - coalesce(lag(total_cases) OVER (PARTITION BY location ORDER BY date), 0)
                    AS step FROM t) WHERE new_cases <> step"""
    ).fetchone()[0]
    assert mismatched == 0
    assert con.execute("SELECT max(total_cases) FROM t").fetchone()[0] > 0


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, generated):
    out, _ = generated
    again = tmp_path / "again.csv"
    generate(3000, again, seed=7, chunk_rows=700)  # chunking must not change the content
    assert again.read_bytes() == out.read_bytes()
    other = tmp_path / "other.csv"
    generate(3000, other, seed=8)
    assert other.read_bytes() != out.read_bytes()


def test_parse_rows_and_bounds(tmp_path):
    assert parse_rows("4.3e5") == 430_000
    assert parse_rows("10_000_000") == 10**7
    with pytest.raises(ValueError):
        generate(0, tmp_path / "none.csv")
