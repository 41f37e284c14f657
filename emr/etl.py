"""Raw -> trusted on EMR: the spark-submit entry point of covidlake.trusted.job.write_trusted.

Parses the step's arguments, builds the session, reads the ingest manifest's row counts,
runs the job and publishes its quality metrics; the transforms live in covidlake.trusted,
shipped to the cluster in covidlake.zip:

    spark-submit --py-files covidlake.zip etl.py --lake s3://BUCKET \
        --covid-csv s3://BUCKET/raw/... --country-csv s3://BUCKET/raw/... [--run-id ID]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from pyspark.sql import SparkSession

from covidlake.defaults import DEFAULT_MAX_REJECTED_SHARE
from covidlake.errors import QualityError, SchemaError
from covidlake.observability import publish_quality_metrics
from covidlake.trusted.job import write_trusted

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="covidlake ETL: raw -> trusted")
    parser.add_argument("--lake", required=True, help="lake root: s3://bucket or a folder")
    parser.add_argument("--covid-csv", required=True)
    parser.add_argument("--country-csv", required=True)
    parser.add_argument("--run-id", default="manual")
    parser.add_argument("--max-rejected-share", type=float, default=DEFAULT_MAX_REJECTED_SHARE)
    parser.add_argument("--manifest-key", default=None, help="the ingest manifest (read only: input row counts)")
    parser.add_argument("--metrics-namespace", default=None, help="publish quality metrics to CloudWatch")
    parser.add_argument("--metrics-region", default=None, help="the CloudWatch region (EMR nodes have no default)")
    return parser.parse_args(argv)


def manifest_columns(sources: dict, paths: dict[str, str]) -> dict[str, list[str] | None]:
    """Each source's header as the manifest records it, for the file the step was given:
    a source whose manifest key is not the end of its path (another file) gets None,
    and Spark reads that file's header itself."""
    return {
        name: source.get("columns") if paths.get(name, "").endswith("/" + source["key"]) else None
        for name, source in sources.items()
    }


def main(argv: list[str] | None = None) -> int:
    from covidlake.storage import open_lake  # looked up per run: the rehearsal swaps in its S3 stand-in

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spark = (
        SparkSession.builder.appName("covidlake-etl")
        .config("spark.sql.legacy.timeParserPolicy", "CORRECTED")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    storage = open_lake(args.lake)
    rows_in, columns = None, None
    if args.manifest_key and storage.exists(args.manifest_key):
        sources = json.loads(storage.get_bytes(args.manifest_key))["sources"]
        rows_in = {name: source["rows"] for name, source in sources.items()}
        columns = manifest_columns(sources, {"covid_data": args.covid_csv, "country_data": args.country_csv})
    try:
        summary = write_trusted(
            spark,
            storage,
            args.covid_csv,
            args.country_csv,
            args.run_id,
            rows_in=rows_in,
            max_rejected_share=args.max_rejected_share,
            columns=columns,
        )
    except (SchemaError, QualityError) as err:
        print(f"covidlake etl: {err}", file=sys.stderr)
        return 2
    if args.metrics_namespace:
        try:
            publish_quality_metrics(summary.to_dict(), args.metrics_namespace, region=args.metrics_region)
        except Exception as err:  # the data is published; a missing permission must not fail the run
            log.warning("could not publish quality metrics to %s: %s", args.metrics_namespace, err)
    print(json.dumps(summary.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
