"""Every refined table of the registry, built and published as one version.

:func:`build_refined` calls each table's builder (covidlake.schemas.REFINED_TABLES names
it) in the registry's order with what the entry says it takes; :func:`write_refined`
writes the tables to staging, publishes them together and then writes the version
marker that readers (the API's cache, the report) go by.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from covidlake.refined.tables import countries
from covidlake.schemas import COUNTRIES, REFINED_TABLES, REFINED_VERSION_KEY, RefinedTable, check_refined_tables
from covidlake.spark_jobs import ConcurrentWrites
from covidlake.trusted.typed import read_trusted


def builder(table: RefinedTable) -> Callable[..., DataFrame]:
    """The table's builder, looked up by name now (so a builder patched on its module runs)."""
    module, _, function = table.builder.partition(":")
    return getattr(importlib.import_module(module), function)


def build_refined(
    snapshot: DataFrame, on_built: Callable[[str, DataFrame], None] | None = None, max_workers: int = 4
) -> dict[str, DataFrame]:
    """The trusted snapshot -> every refined table, keyed by name, in registry order;
    `on_built(name, df)` is called (from a worker thread) as each table is built.

    Each table is built in a thread as soon as its inputs are: K-Means, whose fit is
    eager and ~20 small sequential jobs, runs beside the SQL tables instead of after them.
    (The registry's order is a build order and the pool takes tasks first in, first out,
    so a task waits only on tasks already running or done: no deadlock.)"""
    check_refined_tables(REFINED_TABLES)
    # A frame another table reads is cached, so it is computed once (K-Means fitted once).
    read_again = {name for table in REFINED_TABLES.values() for name in table.inputs}
    countries_frame = countries(snapshot).cache()
    built: dict[str, Future] = {}

    def build(name: str, table: RefinedTable) -> DataFrame:
        inputs = [countries_frame if i == COUNTRIES else built[i].result() for i in table.inputs]
        df = builder(table)(*inputs)
        df = df.cache() if name in read_again else df
        if on_built:
            on_built(name, df)
        return df

    with ThreadPoolExecutor(max_workers, thread_name_prefix="refined-build") as pool:
        for name, table in REFINED_TABLES.items():
            built[name] = pool.submit(build, name, table)
    return {name: future.result() for name, future in built.items()}


def write_refined(spark: SparkSession, storage, run_id: str) -> dict[str, int]:
    """Write every table to staging, publish them together, then the version marker."""
    snapshot = read_trusted(spark, storage.url("trusted/snapshot"), "snapshot")
    staging = storage.staging_prefix("refined", run_id)
    try:
        counted = {name: Observation(f"refined_{name}") for name in REFINED_TABLES}

        # One ordered file per table keeps the table's natural order for readers; its rows
        # are counted as it is written (no re-read, no second job). The tables are tiny, so
        # each is written as soon as it is built, beside the building of the next: the SQL
        # tables' writes run while K-Means (eager, ~20 small jobs) fits.
        def write(name: str, df: DataFrame) -> None:
            counted_rows = df.observe(counted[name], F.count(F.lit(1)).alias("rows"))
            writes.submit(counted_rows.coalesce(1), storage.url(f"{staging}/{name}"))

        with ConcurrentWrites() as writes:
            build_refined(snapshot, on_built=write)
        rows = {name: observation.get["rows"] for name, observation in counted.items()}
        storage.publish({f"{staging}/{name}": f"refined/{name}" for name in rows})
    finally:
        storage.delete_prefix(staging)
    version = {"run_id": run_id, "published_at": datetime.now(timezone.utc).isoformat(), "tables": rows}
    storage.put_bytes(REFINED_VERSION_KEY, json.dumps(version).encode())
    return rows
