"""The show_results Lambda handler on DuckDB, through HTTP API (payload 2.0) events."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from covidlake.errors import QueryError, QueryTimeout
from covidlake.schemas import REFINED_TABLES, ColumnType

from .failing_backend import Failing

ROOT = Path(__file__).resolve().parents[3]
PY_TYPES = {
    ColumnType.STRING: (str,),
    ColumnType.DATE: (str,),
    ColumnType.BIGINT: (int,),
    ColumnType.INT: (int,),
    ColumnType.DOUBLE: (float,),
}


def expected(rows: list[dict]) -> list[dict]:
    """What the API must return for rows written to Parquet: NaN becomes null."""
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]


@pytest.mark.parametrize("table", list(REFINED_TABLES))
def test_every_table_returns_typed_rows_in_stored_order(api_handler, api_lake, table):
    status, headers, body = api_handler("POST", "/showResults", {"table": table})
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert body == expected(api_lake[1][table])
    schema = REFINED_TABLES[table]
    for row in body:
        assert list(row) == schema.column_names
        for col in schema.columns:
            value = row[col.name]
            assert value is None or (type(value) in PY_TYPES[col.type]), (col.name, value)


def test_continent_stats_counts_are_json_integers(api_handler):
    status, _, body = api_handler("POST", "/showResults", '{"table": "continent_stats"}')
    assert status == 200
    assert body[:2] == [{"continent": "Africa", "countries": 57}, {"continent": "Europe", "countries": 51}]
    assert all(type(r["countries"]) is int for r in body)


def test_nan_and_missing_values_are_null(api_handler):
    _, _, body = api_handler("POST", "/showResults", {"table": "numeric_summary"})
    assert body[0]["avg_cases_per_thousand"] is None  # NaN in the Parquet
    _, _, body = api_handler("POST", "/showResults", {"table": "hdi_analysis"})
    assert body[-1]["avg_deaths_per_million"] is None  # null in the Parquet


def test_order_kept_across_part_files(api_handler, api_lake):
    _, _, body = api_handler("POST", "/showResults", {"table": "clusters"})
    assert [r["location"] for r in body] == [r["location"] for r in api_lake[1]["clusters"]]
    assert len(list((api_lake[0] / "refined" / "clusters").glob("*.parquet"))) == 3


@pytest.mark.parametrize("table", [t for t, s in REFINED_TABLES.items() if s.order_by])
def test_duckdb_applies_the_natural_order_whatever_the_stored_order(tmp_path, api_lake, table):
    """DuckDB runs the same ORDER BY as Athena, so a table written out of order (reversed,
    across two files) still comes back in the registry's natural order, limit after it."""
    from covidlake.query import DuckDBBackend
    from covidlake.storage import LocalStorage

    from .sample_lake import write_table

    natural = api_lake[1][table]
    write_table(tmp_path, table, list(reversed(natural)), parts=2)
    backend = DuckDBBackend(LocalStorage(tmp_path))
    assert backend.fetch(table) == expected(natural)
    assert backend.fetch(table, limit=2) == expected(natural[:2])
    assert backend.sql(table).endswith(" ORDER BY " + ", ".join(REFINED_TABLES[table].order_by))


@pytest.mark.parametrize("limit", [1, 7, 1000])
def test_limit(api_handler, api_lake, limit):
    status, _, body = api_handler("POST", "/showResults", {"table": "clusters", "limit": limit})
    assert status == 200
    assert body == expected(api_lake[1]["clusters"][:limit])


def test_base64_encoded_body(api_handler):
    status, _, body = api_handler("POST", "/showResults", {"table": "hdi_analysis", "limit": 2}, b64=True)
    assert status == 200
    assert [r["hdi_category"] for r in body] == ["Very High", "High"]


def test_sample_event_from_api_gateway(api_handler, invoke):
    event = json.loads((ROOT / "events" / "show_results_api.json").read_text())
    status, headers, body = invoke(event)
    assert status == 200
    assert [r["continent"] for r in body] == ["Africa", "Europe", "Asia"]
    assert headers["Access-Control-Allow-Origin"] == "*"


def test_body_labelled_as_form_or_text_is_read_as_json(api_handler):
    for content_type in ("application/x-www-form-urlencoded", "text/plain"):
        status, _, body = api_handler(
            "POST", "/showResults", '{"table": "continent_stats", "limit": 1}', headers={"content-type": content_type}
        )
        assert status == 200, body
        assert body == [{"continent": "Africa", "countries": 57}]


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ['{"table": ', "not json", '{"table": "continent_stats",}'])
def test_invalid_json_is_400(api_handler, raw):
    status, _, body = api_handler("POST", "/showResults", raw)
    assert status == 400
    assert "not valid JSON" in body["message"]


@pytest.mark.parametrize("raw", ["[]", '["continent_stats"]', '"continent_stats"', "42", "null", "true", b""])
def test_body_that_is_not_an_object_is_400(api_handler, raw):
    status, _, body = api_handler("POST", "/showResults", raw)
    assert status == 400, body
    assert "JSON object" in body["message"]


@pytest.mark.parametrize("name", ["nope", "CONTINENT_STATS", "continent_stats; DROP TABLE x", "", "refined/clusters"])
def test_unknown_table_is_400_listing_valid_names(api_handler, name):
    status, _, body = api_handler("POST", "/showResults", {"table": name})
    assert status == 400
    assert body["valid_tables"] == list(REFINED_TABLES)
    assert all(t in body["message"] for t in REFINED_TABLES)
    assert api_handler.service.queries == 0  # the backend never saw the name


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"table": 5}, "table"),
        ({"table": None}, "table"),
        ({"table": ["clusters"]}, "table"),
        ({}, "table"),
        ({"table": "clusters", "limit": 0}, "limit"),
        ({"table": "clusters", "limit": 1001}, "limit"),
        ({"table": "clusters", "limit": -3}, "limit"),
        ({"table": "clusters", "limit": "5"}, "limit"),
        ({"table": "clusters", "limit": 2.5}, "limit"),
        ({"table": "clusters", "limit": True}, "limit"),
        ({"table": "clusters", "limt": 5}, "limt"),
    ],
)
def test_wrong_types_and_out_of_range_are_422(api_handler, payload, field):
    status, _, body = api_handler("POST", "/showResults", payload)
    assert status == 422, body
    assert body["message"].startswith("invalid request")
    assert any(d["loc"][-1] == field for d in body["detail"]), body


def test_backend_failure_is_502_with_query_id(api_handler, use_backend):
    use_backend(Failing(QueryError("Athena query failed: SYNTAX_ERROR", "q-123")))
    status, _, body = api_handler("POST", "/showResults", {"table": "clusters"})
    assert status == 502
    assert body["query_id"] == "q-123"
    assert "SYNTAX_ERROR" not in body["message"] and body["request_id"] in body["message"]


def test_timeout_is_504_with_query_id(api_handler, use_backend):
    use_backend(Failing(QueryTimeout("still RUNNING after 20 s; cancelled", "q-456")))
    status, _, body = api_handler("POST", "/showResults", {"table": "clusters"})
    assert status == 504
    assert body == {"statusCode": 504, "message": "still RUNNING after 20 s; cancelled", "query_id": "q-456"}


def test_table_without_data_is_502(api_handler, use_backend, tmp_path):
    from covidlake.query import DuckDBBackend
    from covidlake.storage import LocalStorage

    use_backend(DuckDBBackend(LocalStorage(tmp_path)))
    status, _, body = api_handler("POST", "/showResults", {"table": "clusters"})
    assert status == 502
    assert "not published" in body["message"] and body["query_id"] is None


def test_unknown_route_is_json_404(api_handler):
    status, _, body = api_handler("GET", "/nowhere")
    assert status == 404 and body["message"] == "Not found"


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/showResults", {"table": "clusters"}),
        ("POST", "/showResults", "{bad"),
        ("POST", "/showResults", {"table": "nope"}),
        ("POST", "/showResults", {"table": "clusters", "limit": 0}),
        ("GET", "/tables", None),
        ("GET", "/nowhere", None),
    ],
)
@pytest.mark.parametrize("origin", [None, "https://dashboard.example.org"])
def test_cors_headers_on_every_response(api_handler, method, path, body, origin):
    status, headers, _ = api_handler(method, path, body, headers={"origin": origin} if origin else None)
    assert headers.get("Access-Control-Allow-Origin") == "*", (status, headers)


def test_cors_headers_on_backend_errors(api_handler, use_backend):
    use_backend(Failing(QueryTimeout("late", "q")))
    _, headers, _ = api_handler("POST", "/showResults", {"table": "clusters"}, headers={"origin": "https://x.org"})
    assert headers["Access-Control-Allow-Origin"] == "*"


def test_cors_preflight(api_handler):
    status, headers, _ = api_handler(
        "OPTIONS", "/showResults", None, headers={"origin": "https://x.org", "access-control-request-method": "POST"}
    )
    assert status == 204
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in headers["Access-Control-Allow-Headers"]


# --- discovery ---------------------------------------------------------------------------


def test_tables_lists_columns_and_types(api_handler):
    status, _, body = api_handler("GET", "/tables")
    assert status == 200
    assert [t["name"] for t in body] == list(REFINED_TABLES)
    for t in body:
        schema = REFINED_TABLES[t["name"]]
        assert [(c["name"], c["type"], c["json_type"]) for c in t["columns"]] == [
            (c.name, c.type.value, c.type.json_type) for c in schema.columns
        ]


def test_openapi_document(api_handler):
    status, _, doc = api_handler("GET", "/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.")
    post = doc["paths"]["/showResults"]["post"]
    assert {"200", "400", "422", "502", "504"} <= set(post["responses"])
    request = doc["components"]["schemas"]["ShowResultsRequest"]
    assert request["properties"]["table"]["enum"] == list(REFINED_TABLES)
    assert request["additionalProperties"] is False
    row = doc["components"]["schemas"]["ContinentStatsRow"]["properties"]
    assert {"type": "integer"} in row["countries"]["anyOf"]
    assert "/tables" in doc["paths"]


def test_swagger_ui_and_its_json(api_handler):
    status, headers, html = api_handler("GET", "/swagger")
    assert status == 200 and headers["Content-Type"] == "text/html"
    assert "swagger" in html.lower()
    event_status, _, doc = api_handler("GET", "/swagger?format=json")
    assert event_status == 200 and "/showResults" in doc["paths"]


@pytest.mark.parametrize("raw", [b"\xff\xfe", b'{"table": "\xe7"}', b"\xe7"])
def test_body_that_is_not_utf8_is_400(api_handler, raw):
    status, _, body = api_handler("POST", "/showResults", raw, b64=True)
    assert status == 400, body
