"""Result caching per table and refined-data version, and the Lambda import rule."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from covidlake.query import CachedResults, DuckDBBackend, read_version
from covidlake.storage import LocalStorage
from tests.unit.api.sample_lake import write_table, write_version

ROOT = Path(__file__).resolve().parents[3]


class Counting:
    def __init__(self, version="v1", delay=0.0):
        self.v, self.delay, self.fetches, self.version_reads = version, delay, 0, 0

    def version(self):
        self.version_reads += 1
        return self.v

    def fetch(self, table, limit=None):
        self.fetches += 1
        time.sleep(self.delay)
        return [{"continent": "Africa", "countries": self.fetches}]


def test_one_query_per_table_and_version():
    backend = Counting()
    cache = CachedResults(backend)
    for _ in range(5):
        cache.body("continent_stats")
        cache.body("continent_stats", limit=1)
    assert backend.fetches == 1
    cache.body("clusters")
    assert backend.fetches == 2
    backend.v = "v2"
    body, hit = cache.body("continent_stats")
    assert not hit and backend.fetches == 3 and json.loads(body)[0]["countries"] == 3


def test_nothing_cached_without_a_version():
    backend = Counting(version=None)
    cache = CachedResults(backend)
    cache.body("continent_stats")
    cache.body("continent_stats")
    assert backend.fetches == 2


def test_concurrent_misses_query_once():
    backend = Counting(delay=0.2)
    cache = CachedResults(backend)
    threads = [threading.Thread(target=cache.body, args=("continent_stats",)) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert backend.fetches == 1


def test_version_read_at_most_every_n_seconds():
    now = [0.0]
    backend = Counting()
    cache = CachedResults(backend, version_check_seconds=10, clock=lambda: now[0])
    for _ in range(5):
        cache.body("continent_stats")
    assert backend.version_reads == 1
    now[0] = 11
    cache.body("continent_stats")
    assert backend.version_reads == 2


def test_new_publish_on_a_local_lake_is_served(api_lake, tmp_path, use_backend, invoke):
    lake = tmp_path / "lake"
    shutil.copytree(api_lake[0], lake)
    service = use_backend(DuckDBBackend(LocalStorage(lake)))
    from covidlake.api.serve import to_event

    def post():
        event = to_event("POST", "/showResults", [], b'{"table": "continent_stats"}', "127.0.0.1")
        return invoke(event)[2]

    assert post()[0] == {"continent": "Africa", "countries": 57}
    # the pipeline rewrites the table: without a new version the cache still answers
    write_table(lake, "continent_stats", [{"continent": "Asia", "countries": 48}])
    assert post()[0]["continent"] == "Africa" and service.queries == 1
    # analytics writes _version.json after publishing: now the new data is served
    write_version(lake, "20261128T000000Z-next", {"continent_stats": 1})
    assert post() == [{"continent": "Asia", "countries": 48}] and service.queries == 2


def test_read_version_of_a_lake_without_one(tmp_path):
    assert read_version(LocalStorage(tmp_path)) is None


@pytest.mark.parametrize("module", ["covidlake.api", "covidlake.query", "functions/show_results/app.py"])
def test_lambda_modules_import_no_duckdb_pyarrow_pandas(module):
    """Lambda has Athena only: the handler must import without DuckDB, pyarrow or pandas."""
    if module.endswith(".py"):
        load = (
            f"import importlib.util as u; s = u.spec_from_file_location('app', {str(ROOT / module)!r}); "
            "m = u.module_from_spec(s); s.loader.exec_module(m)"
        )
    else:
        load = f"import {module}"
    code = (
        f"import os, sys; os.environ['COVIDLAKE_QUERY_BACKEND'] = 'athena'; {load}; "
        "heavy = sorted(n for n in ('duckdb', 'pyarrow', 'pandas', 'pyspark', 'numpy') if n in sys.modules); "
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_request_collection_has_one_request_per_table():
    text = (ROOT / "docs" / "showResults.http").read_text()
    from covidlake.schemas import REFINED_TABLES

    for name in REFINED_TABLES:
        assert f'{{"table": "{name}"}}' in text, name
