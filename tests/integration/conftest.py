"""Fixtures of the integration tests (besides the session fixtures in tests/conftest.py)."""

from __future__ import annotations

import shutil

import pytest

from covidlake.report import write_report
from covidlake.storage import LocalStorage


@pytest.fixture(scope="session")
def report_lake(bundled_run, tmp_path_factory):
    """A copy of the bundled lake with its report written, as after `covidlake run`."""
    lake, run_report = bundled_run
    target = tmp_path_factory.mktemp("report") / "lake"
    shutil.copytree(lake, target)
    index = write_report(LocalStorage(target), report=run_report)
    return target, index.read_text(encoding="utf-8")
