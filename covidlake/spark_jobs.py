"""Running independent Spark writes at the same time.

Small jobs spend most of their time on the driver (planning, scheduling, committing)
and often use one core; two of them side by side keep both cores busy. py4j gives
each Python thread its own connection, and Spark's scheduler runs the jobs together.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pyspark.sql import DataFrame


def write_concurrently(frames: dict[str, DataFrame], max_workers: int = 4) -> None:
    """Write each frame as Parquet to its URL (overwrite), concurrently; the first
    error is raised once every write has ended (so none is left running)."""
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="spark-write") as pool:
        futures = [pool.submit(df.write.mode("overwrite").parquet, url) for url, df in frames.items()]
    for future in futures:
        future.result()
