"""Logging and metrics, each metric defined once.

The Lambdas and the local runner emit through Powertools (EMF); the EMR ETL step, where
Powertools is not installed, puts the same quality metrics with boto3. Powertools is
therefore imported inside the functions that use it, never at module import.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics

NAMESPACE = "covidlake"
SERVICE = "covidlake"
PUT_METRIC_DATA_BATCH = 20  # data points per PutMetricData call: the API's original limit, safe everywhere


def console_logger(service: str = SERVICE, level: str = "INFO") -> Logger:
    """Structured JSON logs on stderr (stdout stays for results), library loggers included."""
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

    logger = Logger(service=service, level=level, logger_handler=logging.StreamHandler(sys.stderr))
    copy_config_to_registered_loggers(source_logger=logger, include={"covidlake", "emr"})
    return logger


def add_ingest_metrics(metrics: Metrics, result: dict) -> None:
    from aws_lambda_powertools.metrics import MetricUnit

    metrics.add_metric("Changed", MetricUnit.Count, 1 if result["changed"] else 0)
    for name, obj in result["sources"].items():
        metrics.add_metric(f"RowsIngested_{name}", MetricUnit.Count, obj["rows"])
        metrics.add_metric(f"BytesIngested_{name}", MetricUnit.Bytes, obj["bytes"])


def quality_metrics(quality: dict) -> dict[str, int]:
    """The trusted build's metrics (all counts) from its quality summary (QualitySummary.to_dict()):
    RowsTrusted_<table>, RowsRejected in all and RowsRejected_<rule> summed over the sources."""
    counts = {f"RowsTrusted_{table}": rows for table, rows in quality.get("rows_out", {}).items()}
    per_rule = [(rule, n) for rules in quality.get("rejected", {}).values() for rule, n in rules.items()]
    counts["RowsRejected"] = sum(n for _, n in per_rule)
    for rule, n in per_rule:
        counts[f"RowsRejected_{rule}"] = counts.get(f"RowsRejected_{rule}", 0) + n
    return counts


def add_quality_metrics(metrics: Metrics, quality: dict) -> None:
    """The local runner: quality_metrics through Powertools."""
    from aws_lambda_powertools.metrics import MetricUnit

    for name, value in quality_metrics(quality).items():
        metrics.add_metric(name, MetricUnit.Count, value)


def publish_quality_metrics(quality: dict, namespace: str, cloudwatch=None, region: str | None = None) -> None:
    """The ETL step on EMR (no Powertools there): quality_metrics with PutMetricData, under the
    dimension service=covidlake that Powertools gives the runner's and the Lambdas' metrics."""
    import boto3

    cloudwatch = cloudwatch or boto3.client("cloudwatch", region_name=region)
    dims = [{"Name": "service", "Value": SERVICE}]
    data = [
        {"MetricName": name, "Value": value, "Unit": "Count", "Dimensions": dims}
        for name, value in quality_metrics(quality).items()
    ]
    for i in range(0, len(data), PUT_METRIC_DATA_BATCH):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[i : i + PUT_METRIC_DATA_BATCH])


def emit_to_console(metrics: Metrics) -> None:
    """Local runs: print the EMF document CloudWatch would receive, on stderr."""
    try:
        print(json.dumps(metrics.serialize_metric_set()), file=sys.stderr)
    finally:
        metrics.clear_metrics()
