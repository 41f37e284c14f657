"""Powertools logging and metrics, shared by the Lambdas and the local runner."""

from __future__ import annotations

import json
import logging
import sys

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

NAMESPACE = "covidlake"


def console_logger(service: str = "covidlake", level: str = "INFO") -> Logger:
    """Structured JSON logs on stderr (stdout stays for results), library loggers included."""
    logger = Logger(service=service, level=level, logger_handler=logging.StreamHandler(sys.stderr))
    copy_config_to_registered_loggers(source_logger=logger, include={"covidlake", "emr"})
    return logger


def add_ingest_metrics(metrics: Metrics, result: dict) -> None:
    metrics.add_metric("Changed", MetricUnit.Count, 1 if result["changed"] else 0)
    for name, obj in result["sources"].items():
        metrics.add_metric(f"RowsIngested_{name}", MetricUnit.Count, obj["rows"])
        metrics.add_metric(f"BytesIngested_{name}", MetricUnit.Bytes, obj["bytes"])


def add_quality_metrics(metrics: Metrics, quality: dict) -> None:
    for table, rows in quality.get("rows_out", {}).items():
        metrics.add_metric(f"RowsTrusted_{table}", MetricUnit.Count, rows)
    rejected = sum(n for rules in quality.get("rejected", {}).values() for n in rules.values())
    metrics.add_metric("RowsRejected", MetricUnit.Count, rejected)


def emit_to_console(metrics: Metrics) -> None:
    """Local runs: print the EMF document CloudWatch would receive, on stderr."""
    try:
        print(json.dumps(metrics.serialize_metric_set()), file=sys.stderr)
    finally:
        metrics.clear_metrics()
