"""Lambda: POST /showResults (and GET /tables, /openapi.json, /swagger) behind the HTTP API.

Thin on purpose: the routes, models, backends and caching live in covidlake.api and
covidlake.query. The result service is built once per container, at cold start, from
settings; ``covidlake serve`` builds the same handler over a lake folder.
Env: COVIDLAKE_QUERY_BACKEND=athena, COVIDLAKE_LAKE_URI=s3://<bucket> (for
refined/_version.json), COVIDLAKE_ATHENA_WORKGROUP, COVIDLAKE_ATHENA_DATABASE,
COVIDLAKE_QUERY_TIMEOUT_SECONDS, POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE.
"""

from __future__ import annotations

from covidlake.api import build_service, create_lambda_handler
from covidlake.settings import get_settings

settings = get_settings()
lambda_handler = create_lambda_handler(build_service(settings), settings.api_cors_origin)
