"""Ingest Lambda: capture the COVID CSV and country_data into the raw zone.

Returns the IngestResult dict; the state machine's Choice reads `changed` and the
Spark steps read `inputs` and `run_id`.
"""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from covidlake.observability import add_ingest_metrics
from covidlake.raw.ingest import ingest
from covidlake.raw.postgres import resolve_db_url
from covidlake.settings import get_settings
from covidlake.storage import open_lake

logger = Logger()
metrics = Metrics()
tracer = Tracer()


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    settings = get_settings()
    if not settings.source_url:
        raise ValueError("COVIDLAKE_SOURCE_URL is not set")
    result = ingest(
        open_lake(settings.lake_uri),
        settings.source_url,
        resolve_db_url(settings),
        settings,
        force=bool((event or {}).get("force", False)),
    ).to_dict()
    add_ingest_metrics(metrics, result)
    logger.info("ingest finished", extra={"changed": result["changed"], "run_id": result["run_id"]})
    return result
