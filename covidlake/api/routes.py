"""The results API's routes over a result service, and the resolver that serves them.

:func:`create_app` builds an ``APIGatewayHttpResolver`` around one
:class:`~covidlake.query.CachedResults` passed in (no module-global service): the Lambda
handler builds its service once at cold start from settings (:func:`build_service`),
``covidlake serve`` and the tests pass their own.

Routes
  POST /showResults  {"table": "<name>", "limit": 1..1000}  -> JSON array of rows
  GET  /tables       the refined tables with their columns and types
  GET  /openapi.json the OpenAPI document (also /swagger, /swagger?format=json)

Import cost matters (Lambda cold start): only pydantic and Powertools are imported
here; the query backends import boto3 or DuckDB when first used.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from covidlake.api.errors import UnknownTable, install_error_handlers, load_json_body
from covidlake.api.models import (
    OPENAPI_INFO,
    SHOW_RESULTS_RESPONSES,
    TABLES_BODY,
    ShowResultsRequest,
    TableInfo,
    json_content,
)
from covidlake.query import AthenaBackend, AthenaConfig, CachedResults, DuckDBBackend, QueryBackend
from covidlake.schemas import REFINED_TABLES
from covidlake.settings import Settings

CORS_MAX_AGE_SECONDS = 600  # how long a browser may reuse a preflight answer


def build_backend(settings: Settings) -> QueryBackend:
    """The query backend that settings choose: DuckDB over the lake, or Athena."""
    from covidlake.storage import open_lake

    storage = open_lake(settings.lake_uri)
    if settings.query_backend == "athena":
        return AthenaBackend(AthenaConfig.from_settings(settings), storage=storage)
    return DuckDBBackend(storage)


def build_service(settings: Settings) -> CachedResults:
    """The result service that settings describe (what the Lambda builds at cold start)."""
    return CachedResults(build_backend(settings), settings.version_check_seconds)


def create_router(service: CachedResults) -> Router:
    """POST /showResults and GET /tables, answered from this service."""
    router = Router()

    @router.post(
        "/showResults",
        summary="Rows of one refined table",
        description="A JSON array of row objects, one per row, in the table's natural order; "
        "numbers are JSON numbers and missing values null.",
        responses=SHOW_RESULTS_RESPONSES,
        operation_id="showResults",
    )
    def show_results(request: Annotated[ShowResultsRequest, Body()]):  # noqa: ANN201 (body is pre-serialized)
        if request.table not in REFINED_TABLES:  # the registry is the only place a name is looked up
            raise UnknownTable(request.table)
        body, _ = service.body(request.table, request.limit)
        return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=body)

    @router.get(
        "/tables",
        summary="The refined tables, their columns and types",
        operation_id="listTables",
        responses={200: {"description": "the tables", "content": json_content(list[TableInfo])}},
    )
    def list_tables():  # noqa: ANN201
        return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=TABLES_BODY)

    return router


def as_json_request(event: dict[str, Any]) -> dict[str, Any]:
    """Read every request body as JSON, whatever its Content-Type says.

    The API takes JSON only, and common clients send it labelled otherwise (``curl -d``
    says application/x-www-form-urlencoded); Powertools would parse that as a form.
    """
    if event.get("isBase64Encoded") and event.get("body"):
        # Decode here: Powertools would fail with a 500 on bytes that are not UTF-8.
        # What is not UTF-8 is not JSON either; U+FFFD keeps it that way (-> 400).
        try:
            raw = base64.b64decode(event["body"], validate=False)
        except (ValueError, TypeError):
            raw = b"\xff"
        event = {**event, "body": raw.decode("utf-8", "replace"), "isBase64Encoded": False}
    headers = event.get("headers") or {}
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if event.get("body") and not content_type.lower().startswith("application/json"):
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        headers["content-type"] = "application/json"
        event = {**event, "headers": headers}
    return event


def ensure_cors(response: dict[str, Any], origin: str) -> dict[str, Any]:
    """Powertools adds CORS headers only when the request names an Origin; with a
    wildcard origin, give every response the header so any client sees the same thing."""
    if origin == "*":
        headers = response.setdefault("headers", {}) or {}
        if not any(k.lower() == "access-control-allow-origin" for k in headers):
            headers["Access-Control-Allow-Origin"] = "*"
        response["headers"] = headers
    return response


def create_app(service: CachedResults, cors_origin: str | None = None) -> APIGatewayHttpResolver:
    """A resolver with every route over ``service``, the error mapping, the OpenAPI document
    and Swagger UI; ``cors_origin`` None: no CORS configuration."""
    app = APIGatewayHttpResolver(
        enable_validation=True,
        cors=None if cors_origin is None else CORSConfig(allow_origin=cors_origin, max_age=CORS_MAX_AGE_SECONDS),
        json_body_deserializer=load_json_body,  # deep nesting, huge integers: 400, not 500
    )
    app.include_router(create_router(service))
    install_error_handlers(app)
    # Swagger UI at /swagger (and the document at /swagger?format=json), assets bundled.
    app.enable_swagger(path="/swagger", **OPENAPI_INFO)
    document: list[str] = []

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_json():  # noqa: ANN202
        if not document:  # built on first use: schema generation costs ~100 ms
            document.append(app.get_openapi_json_schema(**OPENAPI_INFO))
        return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=document[0])

    return app
