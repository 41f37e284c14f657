"""ConcurrentWrites and write_concurrently: every write runs, the first error is raised after all have ended."""

from __future__ import annotations

import threading
import time

import pytest

from covidlake.spark_jobs import ConcurrentWrites, write_concurrently


class FakeFrame:
    """Stands in for a DataFrame: `.write.mode(m).parquet(url)` calls `action(url)`."""

    def __init__(self, action):
        self.action = action

    @property
    def write(self):
        return self

    def mode(self, mode):
        assert mode == "overwrite"
        return self

    def parquet(self, url):
        self.action(url)


def test_all_writes_run_and_the_error_comes_after_the_slow_one_ended():
    done, threads = [], set()

    def slow(url):
        time.sleep(0.3)
        threads.add(threading.current_thread().name)
        done.append(url)

    def failing(url):
        threads.add(threading.current_thread().name)
        raise OSError(f"disk full writing {url}")

    frames = {"a": FakeFrame(failing), "b": FakeFrame(slow), "c": FakeFrame(slow)}
    with pytest.raises(OSError, match="disk full writing a"):
        write_concurrently(frames)
    assert sorted(done) == ["b", "c"]
    assert len(threads) > 1  # side by side, not one after another


def test_no_error_means_every_url_written():
    written = []
    write_concurrently({url: FakeFrame(written.append) for url in ("x", "y", "z")})
    assert sorted(written) == ["x", "y", "z"]


def test_an_error_in_the_block_wins_and_the_submitted_writes_still_end():
    done = []

    def slow(url):
        time.sleep(0.3)
        done.append(url)

    with pytest.raises(ValueError, match="K-Means failed"), ConcurrentWrites() as writes:
        writes.submit(FakeFrame(slow), "continent_stats")
        raise ValueError("K-Means failed")
    assert done == ["continent_stats"]  # ended before the error reached the caller
