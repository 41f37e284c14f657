"""The results API: request/response models (:mod:`.models`), routes over a result service
(:mod:`.routes`), error mapping (:mod:`.errors`), the Lambda handler factory
(:mod:`.handler`) and the local HTTP server (:mod:`.serve`, imported on its own: it needs
click).

Typical use: ``create_lambda_handler(build_service(get_settings()), cors_origin)``.
"""

from covidlake.api.errors import MAX_ECHO, UnknownTable, echo, install_error_handlers, load_json_body
from covidlake.api.handler import create_lambda_handler
from covidlake.api.models import MAX_LIMIT, OPENAPI_INFO, ROW_MODELS, TABLE_NAMES, ShowResultsRequest, tables
from covidlake.api.routes import (
    as_json_request,
    build_backend,
    build_service,
    create_app,
    create_router,
    ensure_cors,
)

__all__ = [
    "MAX_ECHO",
    "MAX_LIMIT",
    "OPENAPI_INFO",
    "ROW_MODELS",
    "TABLE_NAMES",
    "ShowResultsRequest",
    "UnknownTable",
    "as_json_request",
    "build_backend",
    "build_service",
    "create_app",
    "create_lambda_handler",
    "create_router",
    "echo",
    "ensure_cors",
    "install_error_handlers",
    "load_json_body",
    "tables",
]
