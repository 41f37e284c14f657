"""Running independent Spark writes at the same time.

Small jobs spend most of their time on the driver (planning, scheduling, committing)
and often use one core; two of them side by side keep both cores busy. py4j gives
each Python thread its own connection, and Spark's scheduler runs the jobs together.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from pyspark.sql import DataFrame


class ConcurrentWrites:
    """`with ConcurrentWrites() as writes: writes.submit(df, url)` writes each frame as
    Parquet (overwrite) in a thread as soon as it is submitted; leaving the block waits
    for every write, then raises the first error (so none is left running)."""

    def __init__(self, max_workers: int = 4):
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="spark-write")
        self._futures: list[Future] = []

    def submit(self, df: DataFrame, url: str) -> None:
        self._futures.append(self._pool.submit(df.write.mode("overwrite").parquet, url))

    def __enter__(self) -> ConcurrentWrites:
        return self

    def __exit__(self, *exc_info) -> None:
        self._pool.shutdown(wait=True)
        if exc_info[0] is None:  # an error in the block itself wins over a write's
            for future in self._futures:
                future.result()


def write_concurrently(frames: dict[str, DataFrame], max_workers: int = 4) -> None:
    """Write each frame as Parquet to its URL (overwrite), concurrently; the first
    error is raised once every write has ended (so none is left running)."""
    with ConcurrentWrites(max_workers) as writes:
        for url, df in frames.items():
            writes.submit(df, url)
