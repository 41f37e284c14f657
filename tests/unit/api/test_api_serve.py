"""`covidlake serve` over real HTTP on 127.0.0.1, and the property-based run of its
OpenAPI document with schemathesis."""

from __future__ import annotations

import http.client
import json
import os
import threading

import pytest
from click.testing import CliRunner

from covidlake import api
from covidlake.api.serve import make_server, serve
from covidlake.schemas import REFINED_TABLES


@pytest.fixture(scope="module")
def server(api_lake):
    srv = make_server(str(api_lake[0]), "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    host, port = srv.server_address[:2]
    yield f"http://{host}:{port}", port
    srv.shutdown()
    srv.server_close()


def request(port, method, path, body=None, headers=None, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    c.request(method, path, body=data, headers=headers or {})
    r = c.getresponse()
    raw = r.read()
    return r.status, dict(r.getheaders()), raw


def test_show_results_over_http(server):
    status, headers, raw = request(
        server[1], "POST", "/showResults", {"table": "continent_stats"}, {"Content-Type": "application/json"}
    )
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert json.loads(raw)[0] == {"continent": "Africa", "countries": 57}
    assert int(headers["Content-Length"]) == len(raw)


def test_keep_alive_serves_many_requests_on_one_connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server[1], timeout=10)
    for table in REFINED_TABLES:
        status, _, raw = request(server[1], "POST", "/showResults", {"table": table}, conn=conn)
        assert status == 200 and isinstance(json.loads(raw), list)
    conn.close()


def test_errors_over_http(server):
    port = server[1]
    assert request(port, "POST", "/showResults", b"{oops")[0] == 400
    assert request(port, "POST", "/showResults", {"table": "nope"})[0] == 400
    assert request(port, "POST", "/showResults", {"table": "clusters", "limit": 0})[0] == 422
    assert request(port, "GET", "/showResults")[0] == 405
    assert request(port, "GET", "/nowhere")[0] == 404
    status, headers, _ = request(port, "OPTIONS", "/showResults", headers={"Origin": "https://x.org"})
    assert status == 204 and "POST" in headers["Access-Control-Allow-Methods"]


def test_oversized_body_is_413(server):
    status, _, raw = request(server[1], "POST", "/showResults", b"x" * (1024 * 1024 + 1))
    assert status == 413 and "message" in json.loads(raw)


def test_query_string_and_swagger_json(server):
    status, _, raw = request(server[1], "GET", "/swagger?format=json")
    assert status == 200 and "/showResults" in json.loads(raw)["paths"]


def test_servers_answer_from_their_own_service_and_leave_the_environment_alone(api_lake, tmp_path):
    """No module-global service, no environment written: two servers side by side each
    answer from the service they were given."""
    from covidlake.errors import QueryTimeout
    from covidlake.query import CachedResults

    from .failing_backend import Failing

    before = dict(os.environ)
    lake_server = make_server(str(api_lake[0]), "127.0.0.1", 0)
    late = CachedResults(Failing(QueryTimeout("late", "q-1")))
    late_server = make_server(str(tmp_path), "127.0.0.1", 0, service=late)
    assert dict(os.environ) == before
    try:
        for srv in (lake_server, late_server):
            threading.Thread(target=srv.serve_forever, daemon=True).start()
        body = {"table": "continent_stats"}
        assert request(lake_server.server_address[1], "POST", "/showResults", body)[0] == 200
        assert request(late_server.server_address[1], "POST", "/showResults", body)[0] == 504
    finally:
        for srv in (lake_server, late_server):
            srv.shutdown()
            srv.server_close()


def test_cli_help_lists_options():
    result = CliRunner().invoke(serve, ["--help"])
    assert result.exit_code == 0
    for option in ("--lake", "--port", "--host"):
        assert option in result.output
    assert "127.0.0.1" in result.output


# --- schemathesis: the OpenAPI document against the running server -------------------------

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)


def openapi_document() -> dict:
    """The document the handler serves, built the same way (schemathesis' lazy
    from_fixture loader does not run under pytest 9, so the schema is loaded eagerly)."""
    from covidlake.query import CachedResults
    from tests.unit.api.failing_backend import Failing

    app = api.create_app(CachedResults(Failing(RuntimeError("the document needs no data"))))
    return json.loads(app.get_openapi_json_schema(**api.OPENAPI_INFO))


DOCUMENT = openapi_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_served_document_is_the_one_tested(server):
    status, _, raw = request(server[1], "GET", "/openapi.json")
    assert status == 200 and json.loads(raw) == DOCUMENT


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_property_based(case, server):
    """No 5xx, and every response matches the documented status codes, types and schemas."""
    case.call_and_validate(
        base_url=server[0],
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
