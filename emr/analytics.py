"""spark-submit entry point: trusted -> refined, one typed Parquet table per entry of
covidlake.schemas.REFINED_TABLES (the transforms live in covidlake.refined).

    spark-submit --py-files covidlake.zip analytics.py --lake s3://BUCKET [--run-id ID]
"""

from __future__ import annotations

import argparse
import json
import sys

from pyspark.sql import SparkSession

from covidlake.refined.build import write_refined


def main(argv: list[str] | None = None) -> int:
    from covidlake.storage import open_lake

    parser = argparse.ArgumentParser(description="covidlake analytics: trusted -> refined")
    parser.add_argument("--lake", required=True, help="lake root: s3://bucket or a folder")
    parser.add_argument("--run-id", default="manual")
    args = parser.parse_args(argv)
    spark = SparkSession.builder.appName("covidlake-analytics").getOrCreate()
    rows = write_refined(spark, open_lake(args.lake), args.run_id)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
