"""Lambda: POST /showResults (and GET /tables, /openapi.json, /swagger) behind the HTTP API.

Thin on purpose: the routes, models, backends and caching live in covidlake.api and
covidlake.query. ``covidlake serve`` calls this same ``lambda_handler`` on one machine.
Env: COVIDLAKE_QUERY_BACKEND=athena, COVIDLAKE_LAKE_URI=s3://<bucket> (for
refined/_version.json), COVIDLAKE_ATHENA_WORKGROUP, COVIDLAKE_ATHENA_DATABASE,
COVIDLAKE_QUERY_TIMEOUT_SECONDS, POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from covidlake import api
from covidlake.settings import Settings

settings = Settings()
logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "covidlake-api"))
tracer = Tracer(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "covidlake-api"))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "covidlake"))

app = APIGatewayHttpResolver(
    enable_validation=True,
    cors=CORSConfig(allow_origin=settings.api_cors_origin, max_age=600),
    json_body_deserializer=api.load_json_body,  # deep nesting, huge integers: 400, not 500
)
api.configure(app)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context) -> dict:
    response = app.resolve(api.as_json_request(event), context)
    metrics.add_metric(name=f"Http{response['statusCode'] // 100}xx", unit=MetricUnit.Count, value=1)
    return api.ensure_cors(response, settings.api_cors_origin)
