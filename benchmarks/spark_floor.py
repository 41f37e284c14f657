"""The benchmark's Spark floor: the least a plain PySpark job does with the same file.

Read the CSV as strings, cast the 67 columns to their declared types, write Parquet,
and write the latest row per country (a max(date) per location joined back): no rules,
no rejected rows, no country table. Run in a fresh process, JVM start included, with
the same local session settings as the pipeline. A yardstick, not a second ETL.
"""

from __future__ import annotations

import time
from pathlib import Path

from pyspark.sql import functions as F

from covidlake.schemas import COVID_FACTS, ColumnType
from covidlake.trusted.typed import normalize_columns


def run(csv: str, out: Path, input_bytes: int) -> dict:
    from covidlake.settings import Settings
    from covidlake.spark import local_session

    started = time.perf_counter()
    spark = local_session(Settings(), input_bytes, app_name="covidlake-spark-floor")
    jvm_seconds = time.perf_counter() - started
    raw = spark.read.options(header=True, inferSchema=False).csv(f"file://{csv}")
    raw = normalize_columns(raw, csv)  # any OWID layout (the bundled file's last_updated_date)
    typed = raw.select(
        *[
            (
                F.to_date(F.col(c.name), "yyyy-MM-dd")
                if c.type is ColumnType.DATE
                else F.col(c.name).cast(c.type.spark())
            ).alias(c.name)
            for c in COVID_FACTS.columns
            if c.name in raw.columns
        ]
    )
    files = max(spark.sparkContext.defaultParallelism, input_bytes // (128 * 1024**2))
    typed.coalesce(files).write.mode("overwrite").parquet(f"file://{out}/daily")
    daily = spark.read.parquet(f"file://{out}/daily")
    latest = daily.groupBy("location").agg(F.max("date").alias("date"))
    daily.join(F.broadcast(latest), on=["location", "date"]).coalesce(1).write.mode("overwrite").parquet(
        f"file://{out}/snapshot"
    )
    rows = spark.read.parquet(f"file://{out}/snapshot").count()
    spark.stop()
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "jvm_start_seconds": round(jvm_seconds, 2),
        "snapshot_rows": rows,
    }
