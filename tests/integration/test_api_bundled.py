"""The results API over the refined output of a real pipeline run on the bundled data.

Uses the lead's session fixture `bundled_lake` (tests/conftest.py on main): a lake folder
after one full run, with lake/refined/<table>/*.parquet and refined/_version.json.
"""

from __future__ import annotations

import json

import pytest

from covidlake import api
from covidlake.api.serve import LocalContext, to_event
from covidlake.query import CachedResults, DuckDBBackend
from covidlake.schemas import REFINED_TABLES, ColumnType
from covidlake.storage import LocalStorage

pytestmark = pytest.mark.integration

JSON_TYPES = {
    ColumnType.STRING: str,
    ColumnType.DATE: str,
    ColumnType.BIGINT: int,
    ColumnType.INT: int,
    ColumnType.DOUBLE: float,
}


@pytest.fixture(scope="module")
def bundled_api(bundled_lake):
    from pathlib import Path

    root = Path(bundled_lake)
    if root.name == "refined":  # accept the refined folder itself too
        root = root.parent
    handler = api.create_lambda_handler(CachedResults(DuckDBBackend(LocalStorage(root))), observe=False)

    def post(payload):
        event = to_event(
            "POST", "/showResults", [("content-type", "application/json")], json.dumps(payload).encode(), "127.0.0.1"
        )
        result = handler(event, LocalContext())
        return result["statusCode"], json.loads(result["body"])

    return post


def test_continent_stats_on_bundled_data(bundled_api):
    status, rows = bundled_api({"table": "continent_stats"})
    assert status == 200
    assert rows == [
        {"continent": "Africa", "countries": 57},
        {"continent": "Europe", "countries": 51},
        {"continent": "Asia", "countries": 48},
        {"continent": "North America", "countries": 41},
        {"continent": "Oceania", "countries": 24},
        {"continent": "South America", "countries": 14},
    ]
    assert all(type(r["countries"]) is int for r in rows)


@pytest.mark.parametrize("table", list(REFINED_TABLES))
def test_every_table_on_bundled_data(bundled_api, table):
    status, rows = bundled_api({"table": table})
    assert status == 200 and rows, rows
    schema = REFINED_TABLES[table]
    for row in rows:
        assert list(row) == schema.column_names
        for col in schema.columns:
            v = row[col.name]
            assert v is None or type(v) is JSON_TYPES[col.type], (table, col.name, v)
    status, limited = bundled_api({"table": table, "limit": 1})
    assert status == 200 and limited == rows[:1]


def test_table_sizes_on_bundled_data(bundled_api):
    assert len(bundled_api({"table": "numeric_summary"})[1]) == 1
    assert len(bundled_api({"table": "top_countries"})[1]) == 10
    assert len(bundled_api({"table": "clusters"})[1]) == 184
    assert len(bundled_api({"table": "hdi_analysis"})[1]) == 4
    assert len(bundled_api({"table": "cluster_summary"})[1]) == 4
