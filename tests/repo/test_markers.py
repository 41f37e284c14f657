"""Tests get their tier markers from their folder and their fixtures (tests/conftest.py), so
`make test-fast` (-m "not spark and not db and not network and not integration") leaves out
exactly the tests that start a JVM, a database or a registry download."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAST = "not spark and not db and not network and not integration"
FAST_EXCLUDES = {"spark", "db", "network", "integration"}
FILES = [
    "tests/unit/test_etl.py",  # the spark fixture
    "tests/unit/test_row_counter.py",  # plain unit tests
    "tests/infrastructure/test_events.py",  # one test uses pg_url
]


# One collection in a child pytest prints each test's id and markers as JSON.
COLLECT = """
import json, sys
import pytest

class Markers:
    def pytest_collection_finish(self, session):
        print(json.dumps({i.nodeid: sorted(m.name for m in i.iter_markers()) for i in session.items}))

# The property-testing and xdist plugins are not needed to collect these files (a third of the time).
LEAN = ["-p", "no:cacheprovider", "-p", "no:schemathesis", "-p", "no:hypothesispytest", "-p", "no:xdist"]
sys.exit(pytest.main(["-q", *LEAN, "--collect-only", *sys.argv[1:]], plugins=[Markers()]))
"""


@pytest.fixture(scope="module")
def markers() -> dict[str, set[str]]:
    proc = subprocess.run([sys.executable, "-c", COLLECT, *FILES], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.startswith("{"))
    return {k: set(v) for k, v in json.loads(line).items()}


def selected(markers: dict[str, set[str]], excluded: set[str]) -> set[str]:
    return {test for test, names in markers.items() if not names & excluded}


def test_fixtures_and_folders_mark_the_tiers(markers):
    spark = {t for t, m in markers.items() if "spark" in m}
    db = {t for t, m in markers.items() if "db" in m}
    assert spark and all(t.startswith("tests/unit/test_etl.py::") for t in spark)
    assert db == {"tests/infrastructure/test_events.py::test_ingest_event_lands_raw_data_then_reports_unchanged"}
    for test, names in markers.items():
        folder = test.split("/")[1]
        assert {"unit": "unit", "infrastructure": "infra"}[folder] in names, test


def test_the_fast_selection_leaves_out_spark_and_the_database(markers):
    fast = selected(markers, FAST_EXCLUDES)
    assert any(t.startswith("tests/unit/test_row_counter.py::") for t in fast)
    assert any(t.startswith("tests/infrastructure/test_events.py::") for t in fast)
    assert not any({"spark", "db"} & markers[t] for t in fast)
    assert len(fast) < len(markers), "the negative control: some of these files need Spark or PostgreSQL"


def test_make_test_fast_excludes_the_same_markers():
    makefile = (ROOT / "Makefile").read_text()
    assert FAST in makefile
    assert set(FAST.replace("not ", "").split(" and ")) == FAST_EXCLUDES
