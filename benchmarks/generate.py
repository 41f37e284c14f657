"""OWID-shaped daily COVID data at any row count, deterministic by seed.

    python -m benchmarks.generate --rows 1e6 --out /tmp/owid-1e6.csv [--seed 0]

The file has the 67 columns of OWID's daily file, in OWID's order (the header of
data/owid-covid-timeseries-sample.csv), sorted by location then date like OWID's.
Locations and their attributes (iso_code, continent, population, HDI, …) are the real
ones of the bundled data (data/country_data.csv, iso codes from owid-covid-latest.csv);
every location gets the same number of consecutive days from 2020-01-01 (the last ones
fewer, so the file has exactly `rows` rows). At 10^7 rows that is ~40,000 days per
location, i.e. dates run to ~2130: the shape, not the calendar, is what is measured.

Running totals (cases, deaths, tests, vaccinations, excess mortality) are monotone
non-decreasing: each is `floor(final * s(day / days))` with s a wavy but monotone curve
(s(x) = x - a·sin(2πwx)/(2πw), normalised, |a| < 1), and the new_*/smoothed columns are
its exact differences, so no window over rows is needed. Per-location parameters come
from numpy's RandomState(seed); per-row noise from an integer hash of (row, seed).
Sparse columns are sparse as in OWID (ICU/hospital data for some locations only,
weekly admissions and excess mortality once a week, tests and vaccinations in windows).

Memory is bounded: DuckDB computes `chunk_rows` rows at a time into an Arrow table,
which pyarrow's CSV writer appends to the file.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

DATA = Path(__file__).resolve().parent.parent / "data"
START_DATE = "2020-01-01"
DEFAULT_CHUNK_ROWS = 250_000


def owid_columns() -> list[str]:
    """The 67 column names of OWID's daily file, in order."""
    with (DATA / "owid-covid-timeseries-sample.csv").open(newline="") as fh:
        return next(csv.reader(fh))


def locations(seed: int) -> pa.Table:
    """One row per real location: its attributes plus seeded curve parameters."""
    con = duckdb.connect()
    try:
        table = con.sql(
            f"""
            SELECT c.*, l.iso_code,
                   l.total_cases AS final_cases, l.total_deaths AS final_deaths,
                   l.total_tests AS final_tests, l.total_vaccinations AS final_vax
            FROM read_csv('{DATA / "country_data.csv"}', header=true, all_varchar=false) c
            LEFT JOIN read_csv('{DATA / "owid-covid-latest.csv"}', header=true) l USING (location)
            ORDER BY c.location
            """
        ).to_arrow_table()
    finally:
        con.close()
    n = table.num_rows
    rng = np.random.RandomState(seed)
    pop = np.nan_to_num(table["population"].to_numpy(zero_copy_only=False).astype(float), nan=1e6)
    pop = np.maximum(pop, 1000.0)

    def final(name: str, low: float, high: float) -> np.ndarray:
        got = table[name].to_numpy(zero_copy_only=False).astype(float)
        fallback = pop * rng.uniform(low, high, n)
        return np.floor(np.where(np.isfinite(got) & (got > 0), got, fallback))

    cases = final("final_cases", 0.01, 0.4)
    params = {
        "loc_id": np.arange(n, dtype=np.int64),
        "pop": pop,
        "fc": cases,
        "fd": final("final_deaths", 0.0005, 0.004),
        "ft": np.floor(cases * rng.uniform(3, 30, n)),
        "fv": final("final_vax", 0.5, 2.5),
        # curve shapes: amplitude (<1 keeps it monotone) and number of waves
        "ac": rng.uniform(0.3, 0.95, n),
        "wc": rng.randint(2, 7, n).astype(float),
        "ad": rng.uniform(0.3, 0.95, n),
        "wd": rng.randint(2, 7, n).astype(float),
        "has_tests": rng.uniform(size=n) < 0.6,
        "has_vax": rng.uniform(size=n) < 0.85,
        "has_hosp": rng.uniform(size=n) < 0.12,
        "has_excess": rng.uniform(size=n) < 0.2,
        "has_stringency": rng.uniform(size=n) < 0.75,
    }
    for name, values in params.items():
        table = table.append_column(name, pa.array(values))
    return table


# s(x): monotone on [0, 1] because d/dx = (1 - a·cos(2πwx)) / norm >= 0 for |a| < 1.
MACROS = """
CREATE OR REPLACE MACRO curve(x, a, w) AS
    (x - a * sin(2 * pi() * w * x) / (2 * pi() * w)) / (1 - a * sin(2 * pi() * w) / (2 * pi() * w));
CREATE OR REPLACE MACRO cum(day, days, total, a, w) AS
    CASE WHEN day < 0 THEN 0.0
         ELSE floor(total * curve(least(day, days - 1)::DOUBLE / greatest(days - 1, 1), a, w)) END;
CREATE OR REPLACE MACRO noise(i, k, seed) AS
    (((i + 1) * 2654435761 + k * 40503 + seed * 97531) % 1000003)::DOUBLE / 1000003;
"""


def _select(columns: list[str]) -> str:
    """SQL for rows [$start, $end) of the file; `g` gives (loc_id, day) per row index."""
    expressions = {
        "iso_code": "iso_code",
        "continent": "continent",
        "location": "location",
        "date": f"strftime(DATE '{START_DATE}' + day::INTEGER, '%Y-%m-%d')",
        "total_cases": "c0",
        "new_cases": "c0 - c1",
        "new_cases_smoothed": "round((c0 - c7) / 7, 3)",
        "total_deaths": "d0",
        "new_deaths": "d0 - d1",
        "new_deaths_smoothed": "round((d0 - d7) / 7, 3)",
        "total_cases_per_million": "round(c0 / pop * 1e6, 3)",
        "new_cases_per_million": "round((c0 - c1) / pop * 1e6, 3)",
        "new_cases_smoothed_per_million": "round((c0 - c7) / 7 / pop * 1e6, 3)",
        "total_deaths_per_million": "round(d0 / pop * 1e6, 3)",
        "new_deaths_per_million": "round((d0 - d1) / pop * 1e6, 3)",
        "new_deaths_smoothed_per_million": "round((d0 - d7) / 7 / pop * 1e6, 3)",
        "reproduction_rate": "CASE WHEN x BETWEEN 0.05 AND 0.7 THEN round(0.5 + 1.2 * u1, 2) END",
        "icu_patients": "CASE WHEN has_hosp AND x < 0.8 THEN round((c0 - c7) / 7 * 0.03) END",
        "icu_patients_per_million": "CASE WHEN has_hosp AND x < 0.8 THEN round((c0 - c7) / 7 * 0.03 / pop * 1e6, 3) END",
        "hosp_patients": "CASE WHEN has_hosp AND x < 0.8 THEN round((c0 - c7) / 7 * 0.2) END",
        "hosp_patients_per_million": "CASE WHEN has_hosp AND x < 0.8 THEN round((c0 - c7) / 7 * 0.2 / pop * 1e6, 3) END",
        "weekly_icu_admissions": "CASE WHEN has_hosp AND weekly THEN round((c0 - c7) * 0.01) END",
        "weekly_icu_admissions_per_million": "CASE WHEN has_hosp AND weekly THEN round((c0 - c7) * 0.01 / pop * 1e6, 3) END",
        "weekly_hosp_admissions": "CASE WHEN has_hosp AND weekly THEN round((c0 - c7) * 0.05) END",
        "weekly_hosp_admissions_per_million": "CASE WHEN has_hosp AND weekly THEN round((c0 - c7) * 0.05 / pop * 1e6, 3) END",
        "total_tests": "CASE WHEN tests THEN t0 END",
        "new_tests": "CASE WHEN tests THEN t0 - t1 END",
        "total_tests_per_thousand": "CASE WHEN tests THEN round(t0 / pop * 1e3, 3) END",
        "new_tests_per_thousand": "CASE WHEN tests THEN round((t0 - t1) / pop * 1e3, 3) END",
        "new_tests_smoothed": "CASE WHEN tests THEN round((t0 - t7) / 7) END",
        "new_tests_smoothed_per_thousand": "CASE WHEN tests THEN round((t0 - t7) / 7 / pop * 1e3, 3) END",
        "positive_rate": "CASE WHEN tests AND t0 > t7 THEN round(least(1, (c0 - c7) / (t0 - t7)), 4) END",
        "tests_per_case": "CASE WHEN tests AND c0 > c7 THEN round((t0 - t7) / (c0 - c7), 1) END",
        "tests_units": "CASE WHEN tests THEN 'tests performed' END",
        "total_vaccinations": "CASE WHEN vax THEN v0 END",
        "people_vaccinated": "CASE WHEN vax THEN floor(v0 * 0.45) END",
        "people_fully_vaccinated": "CASE WHEN vax THEN floor(v0 * 0.4) END",
        "total_boosters": "CASE WHEN vax AND x >= 0.5 THEN floor(v0 * 0.15) END",
        "new_vaccinations": "CASE WHEN vax THEN v0 - v1 END",
        "new_vaccinations_smoothed": "CASE WHEN vax THEN round((v0 - v7) / 7) END",
        "total_vaccinations_per_hundred": "CASE WHEN vax THEN round(v0 / pop * 100, 2) END",
        "people_vaccinated_per_hundred": "CASE WHEN vax THEN round(v0 * 0.45 / pop * 100, 2) END",
        "people_fully_vaccinated_per_hundred": "CASE WHEN vax THEN round(v0 * 0.4 / pop * 100, 2) END",
        "total_boosters_per_hundred": "CASE WHEN vax AND x >= 0.5 THEN round(v0 * 0.15 / pop * 100, 2) END",
        "new_vaccinations_smoothed_per_million": "CASE WHEN vax THEN round((v0 - v7) / 7 / pop * 1e6) END",
        "new_people_vaccinated_smoothed": "CASE WHEN vax THEN round((v0 - v7) / 7 * 0.45) END",
        "new_people_vaccinated_smoothed_per_hundred": "CASE WHEN vax THEN round((v0 - v7) / 7 * 0.45 / pop * 100, 3) END",
        "stringency_index": "CASE WHEN has_stringency AND x < 0.75 THEN round(100 * u2, 2) END",
        "population": "population",
        "excess_mortality_cumulative_absolute": "CASE WHEN has_excess AND weekly THEN round(d0 * (1 + u3), 1) END",
        "excess_mortality_cumulative": "CASE WHEN has_excess AND weekly THEN round(100 * u3, 2) END",
        "excess_mortality": "CASE WHEN has_excess AND weekly THEN round(100 * u1, 2) END",
        "excess_mortality_cumulative_per_million": "CASE WHEN has_excess AND weekly THEN round(d0 * (1 + u3) / pop * 1e6, 3) END",
    }
    attribute_columns = {c for c in columns if c not in expressions}  # population_density … (from country_data)
    select = ",\n".join(f'{expressions.get(c, c)} AS "{c}"' for c in columns)
    assert attribute_columns <= {
        "population_density",
        "median_age",
        "aged_65_older",
        "aged_70_older",
        "gdp_per_capita",
        "extreme_poverty",
        "cardiovasc_death_rate",
        "diabetes_prevalence",
        "female_smokers",
        "male_smokers",
        "handwashing_facilities",
        "hospital_beds_per_thousand",
        "life_expectancy",
        "human_development_index",
    }, attribute_columns
    return f"""
    WITH g AS (
        SELECT i, i // $days AS loc_id, i % $days AS day FROM range($start, $end) r(i)
    ), p AS (
        SELECT g.i, g.day, loc.*,
               g.day::DOUBLE / greatest($days - 1, 1) AS x,
               g.day % 7 = 6 AS weekly,
               noise(g.i, 1, $seed) AS u1, noise(g.i, 2, $seed) AS u2, noise(g.i, 3, $seed) AS u3,
               has_tests AND g.day >= tests_from AND g.day < tests_to AS tests,
               has_vax AND g.day >= vax_from AS vax
        FROM g JOIN (SELECT *, floor(0.1 * $days) AS tests_from, floor(0.85 * $days) AS tests_to,
                            floor(0.3 * $days) AS vax_from FROM loc) loc USING (loc_id)
    ), v AS (
        SELECT *,
            cum(day, $days, fc, ac, wc) AS c0, cum(day - 1, $days, fc, ac, wc) AS c1,
            cum(day - 7, $days, fc, ac, wc) AS c7,
            cum(day - 14, $days, fd, ad, wd) AS d0, cum(day - 15, $days, fd, ad, wd) AS d1,
            cum(day - 21, $days, fd, ad, wd) AS d7,
            cum(day - tests_from, $days - tests_from, ft, ac, wc) AS t0,
            cum(day - tests_from - 1, $days - tests_from, ft, ac, wc) AS t1,
            cum(day - tests_from - 7, $days - tests_from, ft, ac, wc) AS t7,
            cum(day - vax_from, $days - vax_from, fv, 0.5, 2) AS v0,
            cum(day - vax_from - 1, $days - vax_from, fv, 0.5, 2) AS v1,
            cum(day - vax_from - 7, $days - vax_from, fv, 0.5, 2) AS v7
        FROM p
    )
    SELECT {select} FROM v ORDER BY i
    """


def generate(rows: int, out: Path, seed: int = 0, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> dict:
    """Write `rows` OWID-shaped daily rows to `out`; return a small description."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    loc = locations(seed)
    days = math.ceil(rows / loc.num_rows)
    columns = owid_columns()
    sql = _select(columns)
    con = duckdb.connect(config={"threads": 2, "memory_limit": "1GB"})
    try:
        con.register("loc", loc)
        con.execute(MACROS)
        # OWID's style: a bare header and no quotes (no location name needs any).
        options = pacsv.WriteOptions(include_header=False, quoting_style="none")
        writer = None
        try:
            with out.open("wb") as sink:
                sink.write((",".join(columns) + "\n").encode())
                for start in range(0, rows, chunk_rows):
                    end = min(rows, start + chunk_rows)
                    params = {"start": start, "end": end, "days": days, "seed": seed}
                    batch = con.sql(sql, params=params).to_arrow_table()
                    if writer is None:
                        writer = pacsv.CSVWriter(sink, batch.schema, write_options=options)
                    writer.write_table(batch)
        finally:
            if writer is not None:
                writer.close()
    finally:
        con.close()
    return {
        "rows": rows,
        "path": str(out),
        "bytes": out.stat().st_size,
        "locations": min(loc.num_rows, math.ceil(rows / days)),
        "days_per_location": days,
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 2),
    }


def parse_rows(text: str) -> int:
    """'1e5', '4.3e5', '430000', '10_000_000' -> int."""
    return int(float(text.replace("_", "")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="OWID-shaped daily COVID CSV at any row count")
    parser.add_argument("--rows", type=parse_rows, required=True, help="e.g. 1e5, 4.3e5, 1e7")
    parser.add_argument("--out", type=Path, required=True, help="the CSV to write (keep it out of the repo)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS)
    args = parser.parse_args(argv)
    info = generate(args.rows, args.out, args.seed, args.chunk_rows)
    print(info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
