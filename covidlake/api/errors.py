"""How the results API answers what it cannot serve: invalid JSON (400), an unknown
table (400), invalid fields (422), a backend failure (502), a timeout (504), an unknown
path (404) or method (405). Every error is a JSON object with a ``message``."""

from __future__ import annotations

import json
import logging
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from covidlake.api.models import TABLE_NAMES
from covidlake.errors import QueryError, QueryTimeout, TableNotPublished

MAX_ECHO = 64  # characters of a client's value repeated in an error message
log = logging.getLogger(__name__)


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


class UnknownTable(Exception):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def error_response(status: int, message: str, **extra: Any) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"statusCode": status, "message": message, **extra},
    )


_NOT_AN_OBJECT = {"model_attributes_type", "model_type", "dict_type", "missing"}


def _validation_response(exc: RequestValidationError) -> Response:
    errors = exc.errors()
    for e in errors:
        loc = tuple(e.get("loc", ()))
        if e.get("type") == "json_invalid":
            reason = (e.get("ctx") or {}).get("error", "")
            return error_response(400, "request body is not valid JSON" + (f" ({reason})" if reason else ""))
        if loc == ("body",) and e.get("type") in _NOT_AN_OBJECT:
            return error_response(400, 'request body must be a JSON object such as {"table": "continent_stats"}')
    detail = [
        {
            "loc": [p for p in e.get("loc", ())],
            "type": e.get("type", "value_error"),
            "msg": e.get("msg", "invalid value"),
        }
        for e in errors
    ]
    summary = "; ".join(f"{'.'.join(str(p) for p in d['loc'][1:]) or 'body'}: {d['msg']}" for d in detail)
    return error_response(422, f"invalid request: {summary}", detail=detail)


def install_error_handlers(app) -> None:
    """Map validation and backend errors to JSON responses with a message."""

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response:
        return _validation_response(exc)

    @app.exception_handler(UnknownTable)
    def _unknown(exc: UnknownTable) -> Response:
        return error_response(
            400,
            f"unknown table {echo(exc.name)!r}; valid tables: {', '.join(TABLE_NAMES)}",
            valid_tables=TABLE_NAMES,
        )

    @app.exception_handler(QueryTimeout)
    def _timeout(exc: QueryTimeout) -> Response:
        return error_response(504, exc.message, query_id=exc.query_id)

    @app.exception_handler(QueryError)
    def _failed(exc: QueryError) -> Response:
        if isinstance(exc, QueryTimeout):  # lookup walks the MRO; keep the subclass's status
            return _timeout(exc)
        # Backend text can name the bucket, a role ARN or the account: it goes to the log only.
        request_id = app.current_event.request_context.request_id
        log.error("502 for request %s (query %s): %s", request_id, exc.query_id, exc.message)
        kind = "table not published yet" if isinstance(exc, TableNotPublished) else "query failed"
        return error_response(
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
            return error_response(404, "Not found")
        message = f"method {echo(event.http_method)} not allowed on {echo(event.path)}; use {', '.join(allowed)}"
        response = error_response(405, message)
        response.headers["Allow"] = ", ".join([*allowed, "OPTIONS"] if app._cors else allowed)
        return response
