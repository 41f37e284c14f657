"""Shared fixtures: one SparkSession, one embedded PostgreSQL, one bundled pipeline run; and the
markers each test gets from where it lives and what it uses (pyproject.toml registers them)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from covidlake.settings import BUNDLED_DATA, Settings, get_settings

DATA = BUNDLED_DATA
TESTS = Path(__file__).resolve().parent

# Folder under tests/ -> the marker of every test in it.
FOLDER_MARKERS = {"unit": "unit", "integration": "integration", "infrastructure": "infra", "repo": "repo"}
# Fixture -> the marker of every test that uses it, directly or through another fixture
# (bundled_run, bundled_lake, lake_copy and report_lake all start Spark).
FIXTURE_MARKERS = {"spark": "spark", "pg_url": "db", "built_layer": "network"}


def pytest_collection_modifyitems(items):
    """Mark tests by folder and by fixture, so `-m` selects tiers without a marker in every file."""
    for item in items:
        parts = Path(str(item.path)).resolve().relative_to(TESTS).parts
        if len(parts) > 1 and parts[0] in FOLDER_MARKERS:
            item.add_marker(FOLDER_MARKERS[parts[0]])
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in item.fixturenames:
                item.add_marker(marker)


@pytest.fixture(scope="session")
def state_dir():
    # Not under pytest's tmp root: pytest keeps that 0700, and the embedded server runs
    # as its own system user when the tests run as root.
    path = Path(tempfile.mkdtemp(prefix="covidlake-test-state-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(state_dir) -> Settings:
    return Settings(
        state_dir=state_dir,
        shuffle_partitions=2,
        http_retries=2,
        http_backoff=0.01,
        http_read_timeout=5,
    )


@pytest.fixture(scope="session")
def spark(settings):
    from covidlake.spark import local_session

    session = local_session(settings)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def pg_url(settings):
    """A real PostgreSQL server (embedded), database covid_data with country_data loaded."""
    from covidlake.local import embedded_postgres
    from covidlake.raw.postgres import load_country_data

    with embedded_postgres(settings.state_dir / "shared-db") as url:
        load_country_data(url, DATA / "country_data.csv", settings)
        yield url


@pytest.fixture(scope="session")
def bundled_run(tmp_path_factory, settings, spark):
    """One full pipeline run on the bundled data, like `make run`: (lake path, report)."""
    from covidlake.runner import run_pipeline

    lake = tmp_path_factory.mktemp("lake")
    report = run_pipeline(settings, lake=str(lake))
    return lake, report


@pytest.fixture(scope="session")
def bundled_lake(bundled_run) -> Path:
    """A lake folder after a real run on the bundled data (refined/<table>/*.parquet)."""
    return bundled_run[0]


@pytest.fixture
def lake_copy(bundled_lake, tmp_path) -> Path:
    """A private copy of the bundled lake that a test may change."""
    target = tmp_path / "lake"
    shutil.copytree(bundled_lake, target)
    return target


@pytest.fixture(autouse=True)
def fresh_settings():
    """get_settings parses each model once per process, as a Lambda container does; each test
    is its own cold start, so a model parsed under another test's environment never leaks in."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
