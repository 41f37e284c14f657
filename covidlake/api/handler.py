"""The results API as a Lambda handler: one resolver over one result service, wrapped in
Powertools' logging, tracing and metrics. functions/show_results/app.py builds it once at
cold start; ``covidlake serve`` builds the same handler over a lake folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from covidlake.api.routes import as_json_request, create_app, ensure_cors
from covidlake.query import CachedResults

DEFAULT_SERVICE_NAME = "covidlake-api"
DEFAULT_METRICS_NAMESPACE = "covidlake"

LambdaHandler = Callable[[dict, Any], dict]


def create_lambda_handler(service: CachedResults, cors_origin: str = "*", *, observe: bool = True) -> LambdaHandler:
    """``lambda_handler(event, context)`` over ``service``. observe=False leaves out X-Ray
    tracing and the CloudWatch metrics (one EMF blob per request on stdout), which only
    mean something in AWS; the logger stays."""
    service_name = os.environ.get("POWERTOOLS_SERVICE_NAME", DEFAULT_SERVICE_NAME)
    logger = Logger(service=service_name)
    app = create_app(service, cors_origin)

    def resolve(event: dict, context) -> dict:
        response = app.resolve(as_json_request(event), context)
        if metrics is not None:
            metrics.add_metric(name=f"Http{response['statusCode'] // 100}xx", unit=MetricUnit.Count, value=1)
        return ensure_cors(response, cors_origin)

    metrics: Metrics | None = None
    handler = resolve
    if observe:
        metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", DEFAULT_METRICS_NAMESPACE))
        tracer = Tracer(service=service_name)
        handler = metrics.log_metrics(capture_cold_start_metric=True)(handler)
        handler = tracer.capture_lambda_handler(handler)
    return logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)(handler)
