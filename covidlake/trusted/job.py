"""The raw -> trusted job: read both raw CSVs, build, stage, check, publish.

write_trusted is the one code path: emr/etl.py calls it under spark-submit on EMR
(s3:// paths), the local runner with its own session (file:// paths).
"""

from __future__ import annotations

import json
import logging

from pyspark.sql import Observation, SparkSession
from pyspark.sql import functions as F

from covidlake.defaults import DEFAULT_MAX_REJECTED_SHARE
from covidlake.schemas import TRUSTED_QUALITY_KEY
from covidlake.spark_jobs import write_concurrently
from covidlake.trusted.build import TrustedTables, build_trusted, join_daily, latest_snapshot, repeated_keys
from covidlake.trusted.quality import (
    QualitySummary,
    check_rejected_share,
    fact_counts,
    summarize_counts,
)
from covidlake.trusted.typed import read_csv_as_strings, read_trusted

log = logging.getLogger(__name__)
# Catalyst's constraint propagation grows combinatorially with the ~100 aliased columns
# and rule flags here: it took 40 s to optimise the snapshot plan on 247 rows, 0.1 s without.
NO_CONSTRAINT_PROPAGATION = ("spark.sql.constraintPropagation.enabled", "false")


def write_trusted(
    spark: SparkSession,
    storage,
    covid_csv: str,
    country_csv: str,
    run_id: str,
    rows_in: dict[str, int] | None = None,
    max_rejected_share: float = DEFAULT_MAX_REJECTED_SHARE,
    daily_files: int = 1,
    columns: dict[str, list[str] | None] | None = None,
) -> QualitySummary:
    """Read both raw CSVs, write the trusted tables to staging, check the rejected
    share, then publish all three at once (or nothing).

    Jobs: the country table (tiny), daily (the one pass over every column, counting
    rows per rule as it goes), then at once the rejected rows (from the driver, or one
    pass over the failed rows if there are any) and the snapshot from the staged daily
    table (counted as it is written); last the duplicate check on the staged keys (two
    narrow Parquet columns). Only if a (location, date) repeats are the copies numbered
    from the CSV and the tables staged again. `columns`: each source's header as ingest
    recorded it (by source name, as `rows_in`), so no job reads the headers."""
    spark.conf.set(*NO_CONSTRAINT_PROPAGATION)
    columns = columns or {}
    raw = (
        read_csv_as_strings(spark, covid_csv, columns.get("covid_data")),
        read_csv_as_strings(spark, country_csv, columns.get("country_data")),
    )
    staging = storage.staging_prefix("trusted", run_id)
    tables = build_trusted(*raw, assume_unique=True)
    try:
        counts, snapshot_rows = stage_tables(spark, storage, tables, staging, daily_files)

        def staged(name: str):
            return read_trusted(spark, storage.url(f"{staging}/{name}"), name)

        if repeated_keys(staged("daily"), staged("rejected")):
            # rare: number the copies (one more pass over the CSV) and stage again
            log.info("covid_data repeats a (location, date): numbering the copies")
            tables.countries.unpersist()
            tables = build_trusted(*raw)
            counts, snapshot_rows = stage_tables(spark, storage, tables, staging, daily_files)
        summary = summarize_counts(rows_in, counts, tables.country_verdicts, snapshot_rows)
        summary.missing_columns = tables.missing_columns
        log.info("quality summary: %s", json.dumps(summary.to_dict()))
        check_rejected_share(summary, staged("rejected"), max_rejected_share)
        # Bookkeeping first, publication last: no write after the publish can fail and leave
        # trusted/ published but the step failed. The manifest is ingest's (raw/ is read-only here).
        storage.put_bytes(TRUSTED_QUALITY_KEY, json.dumps({"run_id": run_id, **summary.to_dict()}).encode())
        storage.publish({f"{staging}/{name}": f"trusted/{name}" for name in ("daily", "snapshot", "rejected")})
    finally:
        tables.countries.unpersist()
        storage.delete_prefix(staging)
    return summary


def stage_tables(spark: SparkSession, storage, tables: TrustedTables, staging: str, daily_files: int):
    """Write daily, then rejected and snapshot side by side, to staging; returns the
    counts observed on the facts and the snapshot's row count."""
    observed = Observation("covid_facts")
    # Observing materialises every row it sees (CollectMetrics is not code-generated), so
    # it sees the columns daily needs and the verdict, not the ~70 raw strings of the rules.
    needed = [c for c in tables.facts.columns if not c.startswith("_raw_")]
    facts = tables.facts.select(*needed).observe(observed, *fact_counts())
    # no shuffle before this write: never fewer tasks than cores
    files = max(daily_files, spark.sparkContext.defaultParallelism)
    join_daily(facts, tables.countries).coalesce(files).write.mode("overwrite").parquet(storage.url(f"{staging}/daily"))
    counts = observed.get
    rejected = tables.rejected if counts["rejected"] else tables.rejected_countries
    snapshot_rows = Observation("snapshot")
    snapshot = latest_snapshot(read_trusted(spark, storage.url(f"{staging}/daily"), "daily"))
    writes = {
        "rejected": rejected.coalesce(1),
        "snapshot": snapshot.observe(snapshot_rows, F.expr("count(1) AS rows")).coalesce(1).orderBy("location"),
    }
    write_concurrently({storage.url(f"{staging}/{name}"): df for name, df in writes.items()})
    return counts, snapshot_rows.get["rows"]
