"""The results API: routes, request/response models and error mapping.

The Lambda handler (functions/show_results/app.py) and ``covidlake serve`` both build
an ``APIGatewayHttpResolver(enable_validation=True)``, include :data:`router` and call
:func:`install_error_handlers`; everything worth testing lives here.

Routes
  POST /showResults  {"table": "<name>", "limit": 1..1000}  -> JSON array of rows
  GET  /tables       the refined tables with their columns and types
  GET  /openapi.json the OpenAPI document (also /swagger, /swagger?format=json)

Errors are JSON objects with a ``message``: invalid JSON or a non-object body -> 400,
unknown table -> 400 listing the valid names, wrong types or out-of-range values -> 422,
a backend failure -> 502 (with ``query_id`` when there is one), over the time budget
-> 504.

Import cost matters (Lambda cold start): only pydantic and Powertools are imported
here; the query backends import boto3 or DuckDB when first used.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from typing import Annotated, Any, Literal, Union

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, create_model

from covidlake.errors import QueryError, QueryTimeout, TableNotPublished
from covidlake.query import CachedResults, QueryBackend
from covidlake.schemas import REFINED_TABLES, ColumnType
from covidlake.settings import Settings

TABLE_NAMES = list(REFINED_TABLES)
MAX_LIMIT = 1000
MAX_ECHO = 64  # characters of a client's value repeated in an error message
log = logging.getLogger(__name__)

# --- models --------------------------------------------------------------------------


class ShowResultsRequest(BaseModel):
    """Body of POST /showResults. Types are strict: "5" is not a limit, 5 is not a table."""

    model_config = ConfigDict(extra="forbid")

    table: StrictStr = Field(
        description="a refined table name",
        json_schema_extra={"enum": TABLE_NAMES},
        examples=["continent_stats"],
    )
    limit: StrictInt | None = Field(None, ge=1, le=MAX_LIMIT, description="at most this many rows")


_PY_TYPES = {
    ColumnType.STRING: str,
    ColumnType.DOUBLE: float,
    ColumnType.BIGINT: int,
    ColumnType.INT: int,
    ColumnType.DATE: str,
}


def _row_model(name: str) -> type[BaseModel]:
    schema = REFINED_TABLES[name]
    fields: dict[str, Any] = {
        c.name: (_PY_TYPES[c.type] | None, Field(..., description=c.description or None)) for c in schema.columns
    }
    title = "".join(part.title() for part in name.split("_")) + "Row"
    return create_model(title, __config__=ConfigDict(extra="forbid", title=title), **fields)


ROW_MODELS: dict[str, type[BaseModel]] = {name: _row_model(name) for name in REFINED_TABLES}
# One row of any refined table; a response holds rows of the requested table only.
AnyRow = Union[tuple(ROW_MODELS.values())]  # type: ignore[valid-type]  # noqa: UP007 (a union built at run time from a tuple has no X | Y spelling)


class ColumnInfo(BaseModel):
    name: str
    type: Literal["string", "double", "bigint", "int", "date"]
    json_type: Literal["string", "number", "integer"]


class TableInfo(BaseModel):
    name: str
    description: str
    columns: list[ColumnInfo]


class ErrorBody(BaseModel):
    statusCode: int
    message: str


class UnknownTableBody(ErrorBody):
    valid_tables: list[str]


class BackendErrorBody(ErrorBody):
    query_id: str | None = None
    request_id: str | None = None


class ValidationItem(BaseModel):
    loc: list[str | int]
    type: str
    msg: str


class ValidationErrorBody(ErrorBody):
    detail: list[ValidationItem]


def _json(model: Any) -> dict:
    return {"application/json": {"model": model}}


SHOW_RESULTS_RESPONSES: dict[int, dict] = {
    200: {
        "description": "the table's rows in its natural order, values typed by the schema",
        "content": _json(list[AnyRow]),
    },
    400: {
        "description": "invalid JSON, a body that is not an object, or an unknown table",
        "content": _json(UnknownTableBody | ErrorBody),
    },
    422: {
        "description": "wrong types, missing or unknown fields, limit out of range",
        "content": _json(ValidationErrorBody),
    },
    502: {"description": "the query engine failed", "content": _json(BackendErrorBody)},
    504: {"description": "the query did not finish in time", "content": _json(BackendErrorBody)},
}

# --- the service behind the routes ---------------------------------------------------------

_service: CachedResults | None = None
_service_lock = threading.Lock()


def build_backend(settings: Settings) -> QueryBackend:
    """The query backend that settings choose: DuckDB over the lake, or Athena."""
    from covidlake.storage import open_lake

    storage = open_lake(settings.lake_uri)
    if settings.query_backend == "athena":
        from covidlake.query import AthenaBackend, AthenaConfig

        config = AthenaConfig(
            workgroup=settings.athena_workgroup,
            database=settings.athena_database,
            catalog=settings.athena_catalog,
            output_location=settings.athena_output_location,
            result_reuse_minutes=settings.athena_result_reuse_minutes,
            timeout_seconds=settings.query_timeout_seconds,
        )
        return AthenaBackend(config, storage=storage)
    from covidlake.query import DuckDBBackend

    return DuckDBBackend(storage)


def set_service(service: CachedResults | None) -> None:
    """Use this result service (tests, ``covidlake serve --lake``); None: build from settings again."""
    global _service
    with _service_lock:
        _service = service


def get_service() -> CachedResults:
    global _service
    if _service is None:
        with _service_lock:
            if _service is None:
                settings = Settings()
                _service = CachedResults(build_backend(settings), settings.version_check_seconds)
    return _service


def load_json_body(text: str) -> Any:
    """json.loads for request bodies: nesting past Python's recursion limit and integers
    past its int-str conversion limit are invalid JSON here (-> 400), not a crash (-> 500)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text[:MAX_ECHO], 0) from None
    except json.JSONDecodeError:
        raise
    except ValueError as err:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise json.JSONDecodeError(f"number too long ({str(err).split(';')[0]})", text[:MAX_ECHO], 0) from None


def echo(value: str) -> str:
    """A client's value, cut short for an error message."""
    return value if len(value) <= MAX_ECHO else f"{value[:MAX_ECHO]}… ({len(value)} characters)"


# --- routes --------------------------------------------------------------------------------

router = Router()


class UnknownTable(Exception):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def _error(status: int, message: str, **extra: Any) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"statusCode": status, "message": message, **extra},
    )


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
    body, _ = get_service().body(request.table, request.limit)
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=body)


@router.get(
    "/tables",
    summary="The refined tables, their columns and types",
    operation_id="listTables",
    responses={200: {"description": "the tables", "content": _json(list[TableInfo])}},
)
def list_tables():  # noqa: ANN201
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=TABLES_BODY)


def tables() -> list[dict[str, Any]]:
    return [
        {
            "name": t.name,
            "description": t.description,
            "columns": [{"name": c.name, "type": c.type.value, "json_type": c.type.json_type} for c in t.columns],
        }
        for t in REFINED_TABLES.values()
    ]


TABLES_BODY = json.dumps(tables(), separators=(",", ":"))

# --- errors --------------------------------------------------------------------------------

_NOT_AN_OBJECT = {"model_attributes_type", "model_type", "dict_type", "missing"}


def _validation_response(exc: RequestValidationError) -> Response:
    errors = exc.errors()
    for e in errors:
        loc = tuple(e.get("loc", ()))
        if e.get("type") == "json_invalid":
            reason = (e.get("ctx") or {}).get("error", "")
            return _error(400, "request body is not valid JSON" + (f" ({reason})" if reason else ""))
        if loc == ("body",) and e.get("type") in _NOT_AN_OBJECT:
            return _error(400, 'request body must be a JSON object such as {"table": "continent_stats"}')
    detail = [
        {
            "loc": [p for p in e.get("loc", ())],
            "type": e.get("type", "value_error"),
            "msg": e.get("msg", "invalid value"),
        }
        for e in errors
    ]
    summary = "; ".join(f"{'.'.join(str(p) for p in d['loc'][1:]) or 'body'}: {d['msg']}" for d in detail)
    return _error(422, f"invalid request: {summary}", detail=detail)


def install_error_handlers(app) -> None:
    """Map validation and backend errors to JSON responses with a message."""

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response:
        return _validation_response(exc)

    @app.exception_handler(UnknownTable)
    def _unknown(exc: UnknownTable) -> Response:
        return _error(
            400,
            f"unknown table {echo(exc.name)!r}; valid tables: {', '.join(TABLE_NAMES)}",
            valid_tables=TABLE_NAMES,
        )

    @app.exception_handler(QueryTimeout)
    def _timeout(exc: QueryTimeout) -> Response:
        return _error(504, exc.message, query_id=exc.query_id)

    @app.exception_handler(QueryError)
    def _failed(exc: QueryError) -> Response:
        if isinstance(exc, QueryTimeout):  # lookup walks the MRO; keep the subclass's status
            return _timeout(exc)
        # Backend text can name the bucket, a role ARN or the account: it goes to the log only.
        request_id = app.current_event.request_context.request_id
        log.error("502 for request %s (query %s): %s", request_id, exc.query_id, exc.message)
        kind = "table not published yet" if isinstance(exc, TableNotPublished) else "query failed"
        return _error(
            502,
            f"{kind}; details are in the service log under request id {request_id}",
            query_id=exc.query_id,
            request_id=request_id,
        )

    @app.exception_handler(NotFoundError)
    def _not_found(exc: NotFoundError) -> Response:
        event = app.current_event
        allowed = sorted({r.method for r in app._static_routes + app._dynamic_routes if r.rule.match(event.path)})
        if not allowed:
            return _error(404, "Not found")
        message = f"method {echo(event.http_method)} not allowed on {echo(event.path)}; use {', '.join(allowed)}"
        response = _error(405, message)
        response.headers["Allow"] = ", ".join([*allowed, "OPTIONS"] if app._cors else allowed)
        return response


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


OPENAPI_INFO = {
    "title": "covidlake results API",
    "version": "1.0.0",
    "description": "Refined COVID-19 tables of the covidlake pipeline, served from Athena or DuckDB.",
}


def configure(app) -> None:
    """Everything the resolver needs: routes, error mapping, OpenAPI document and Swagger UI."""
    app.include_router(router)
    install_error_handlers(app)
    # Swagger UI at /swagger (and the document at /swagger?format=json), assets bundled.
    app.enable_swagger(path="/swagger", **OPENAPI_INFO)
    document: list[str] = []

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_json():  # noqa: ANN202
        if not document:  # built on first use: schema generation costs ~100 ms
            document.append(app.get_openapi_json_schema(**OPENAPI_INFO))
        return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=document[0])
