"""A small refined zone written from the registry's types, for the API tests and the
benchmark until (and besides) a lake from a real pipeline run.

Written with DuckDB (COPY ... TO parquet), so these tests need neither pyarrow nor numpy
(whose versions pyspark 3.5 constrains)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb

from covidlake.schemas import REFINED_TABLES, ColumnType, TableSchema

CONTINENTS = [
    ("Africa", 57),
    ("Europe", 51),
    ("Asia", 48),
    ("North America", 41),
    ("Oceania", 24),
    ("South America", 14),
]


# One value per type, for a table that has no hand-written rows below.
SYNTHETIC = {
    ColumnType.STRING: "sample",
    ColumnType.DOUBLE: 1.5,
    ColumnType.BIGINT: 2,
    ColumnType.INT: 3,
    ColumnType.DATE: "2026-11-27",
}


def synthetic_rows(schema: TableSchema) -> list[dict]:
    """One row of typed values: a table added to the registry is in the sample lake (and
    so in every API test over it) before anyone writes rows for it."""
    return [{c.name: SYNTHETIC[c.type] for c in schema.columns}]


def sample_rows() -> dict[str, list[dict]]:
    """Rows for every refined table of the registry, in each table's natural order."""
    written = hand_written_rows()
    return {name: written.get(name) or synthetic_rows(schema) for name, schema in REFINED_TABLES.items()}


def hand_written_rows() -> dict[str, list[dict]]:
    clusters = [
        {
            "location": f"Country {i:03d}",
            "continent": CONTINENTS[i % 6][0],
            "cluster": i % 4,
            "human_development_index": 0.4 + (i % 50) / 100,
            "gdp_per_capita": 1000.0 + 250 * i,
            "population_density": 5.5 + i,
            "cases_per_thousand": None if i % 17 == 0 else 10.0 + i / 3,
        }
        for i in range(60)
    ]
    return {
        "continent_stats": [{"continent": c, "countries": n} for c, n in CONTINENTS],
        "numeric_summary": [
            {
                "total_records": 230,
                "avg_total_cases": 3.3e6,
                "max_total_cases": 1.03e8,
                "avg_total_deaths": 30000.5,
                "max_total_deaths": 1.1e6,
                "avg_population": 3.4e7,
                "max_population": 1.4e9,
                "avg_cases_per_thousand": math.nan,  # NaN must come out as null
                "max_cases_per_thousand": 731.9,
            }
        ],
        "top_countries": [
            {
                "location": f"Top {i}",
                "continent": "Europe" if i % 2 else "Asia",
                "total_cases": 100_000_000 - i * 5_000_000,
                "population": 300_000_000 + i,
                "cases_per_thousand": 300.0 - i,
            }
            for i in range(10)
        ],
        # in natural order (hdi_cases_correlation DESC NULLS LAST): Oceania's null last
        "correlation_analysis": sorted(
            [
                {
                    "continent": c,
                    "hdi_cases_correlation": None if c == "Oceania" else 0.9 - i / 10,
                    "gdp_cases_correlation": 0.5,
                    "density_cases_correlation": -0.1,
                    "country_count": n - 3,
                    "avg_hdi": 0.7,
                    "avg_gdp": 20000.0,
                }
                for i, (c, n) in enumerate(CONTINENTS)
            ],
            key=lambda r: (r["hdi_cases_correlation"] is None, -(r["hdi_cases_correlation"] or 0)),
        ),
        "hdi_analysis": [
            {"hdi_category": cat, "countries": n, "avg_cases_per_thousand": a, "avg_deaths_per_million": d}
            for cat, n, a, d in [
                ("Very High", 66, 350.5, 2500.0),
                ("High", 49, 150.25, 1800.0),
                ("Medium", 37, 40.0, 400.0),
                ("Low", 32, 5.0, None),
            ]
        ],
        "clusters": clusters,
        "cluster_summary": [
            {
                "cluster": k,
                "countries": 15,
                "avg_hdi": 0.6 + k / 10,
                "avg_gdp": 5000.0 * (k + 1),
                "avg_density": 100.0,
                "avg_cases_per_thousand": 50.0 * (k + 1),
            }
            for k in range(4)
        ],
    }


def write_table(root: Path, table: str, rows: list[dict], parts: int = 1) -> None:
    schema = REFINED_TABLES[table]
    folder = Path(root) / "refined" / table
    folder.mkdir(parents=True, exist_ok=True)
    size = max(1, math.ceil(len(rows) / parts))
    cols = ", ".join(f'"{c.name}" {c.type.duckdb}' for c in schema.columns)
    marks = ", ".join("?" for _ in schema.columns)
    with duckdb.connect() as con:
        for p in range(parts):
            chunk = rows[p * size : (p + 1) * size]
            con.execute("DROP TABLE IF EXISTS t")
            con.execute(f"CREATE TABLE t (i INTEGER, {cols})")
            if chunk:
                con.executemany(
                    f"INSERT INTO t VALUES (?, {marks})",
                    [[n, *(r[c.name] for c in schema.columns)] for n, r in enumerate(chunk)],
                )
            target = folder / f"part-{p:05d}-sample.snappy.parquet"
            names = ", ".join(f'"{c.name}"' for c in schema.columns)
            con.execute(f"COPY (SELECT {names} FROM t ORDER BY i) TO '{target}' (FORMAT parquet)")


def write_version(root: Path, run_id: str, tables: dict[str, int]) -> str:
    body = json.dumps({"run_id": run_id, "published_at": "2026-11-27T20:15:00Z", "tables": tables}, sort_keys=True)
    (Path(root) / "refined").mkdir(parents=True, exist_ok=True)
    (Path(root) / "refined" / "_version.json").write_text(body)
    return body


def write_sample_lake(root: Path, run_id: str = "20261127T201500Z-sample") -> dict[str, list[dict]]:
    rows = sample_rows()
    for table, table_rows in rows.items():
        # clusters spans three part files: the natural order must survive that
        write_table(root, table, table_rows, parts=3 if table == "clusters" else 1)
    write_version(root, run_id, {t: len(r) for t, r in rows.items()})
    return rows
