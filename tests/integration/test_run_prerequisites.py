"""A run on AWS that lacks a prerequisite says which: country_data not loaded (a real
PostgreSQL), and the ETL's CloudWatch region, which EMR nodes do not have by default."""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

import boto3
import psycopg2
import pytest
from moto import mock_aws

from covidlake.errors import SourceError
from covidlake.raw.postgres import extract_country_data
from covidlake.schemas import COUNTRY_DATA
from covidlake.storage import LocalStorage
from emr import etl


@pytest.fixture
def empty_database(pg_url):
    """A second database on the session's server, without table country_data."""
    admin = psycopg2.connect(pg_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS prerequisites_test")
        cur.execute("CREATE DATABASE prerequisites_test")
    parts = urlsplit(pg_url)
    yield urlunsplit(parts._replace(path="/prerequisites_test"))
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS prerequisites_test WITH (FORCE)")
    admin.close()


def test_ingest_says_country_data_was_never_loaded(empty_database, settings, tmp_path):
    with pytest.raises(SourceError, match=r"table country_data does not exist .*covidlake load-country-data"):
        extract_country_data(empty_database, tmp_path / "c.csv", settings)
    assert not (tmp_path / "c.csv").exists()


def test_ingest_says_country_data_is_empty(empty_database, settings, tmp_path):
    columns = ", ".join(f"{c.name} {c.type.postgres}" for c in COUNTRY_DATA.columns)
    conn = psycopg2.connect(empty_database)
    with conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE country_data ({columns})")
    conn.close()
    with pytest.raises(SourceError, match=r"table country_data in .* is empty: load it"):
        extract_country_data(empty_database, tmp_path / "c.csv", settings)


def etl_args(lake, *extra) -> list[str]:
    storage = LocalStorage(lake)
    manifest_key = storage.list("raw/_manifests/")[-1]
    sources = json.loads(storage.get_bytes(manifest_key))["sources"]
    return [
        "--lake",
        str(lake),
        "--covid-csv",
        storage.url(sources["covid_data"]["key"]),
        "--country-csv",
        storage.url(sources["country_data"]["key"]),
        "--run-id",
        "region-run",
        "--metrics-namespace",
        "covidlake-region-test",
        *extra,
    ]


def test_etl_publishes_metrics_to_the_region_the_plan_names(lake_copy, spark, monkeypatch, caplog):
    """EMR nodes have no AWS_REGION: without --metrics-region boto3 cannot even build the
    client (the negative control); with it the metrics land in that region."""
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        assert etl.main(etl_args(lake_copy)) == 0
        assert "could not publish quality metrics" in caplog.text and "region" in caplog.text
        caplog.clear()
        assert etl.main(etl_args(lake_copy, "--metrics-region", "eu-west-1")) == 0
        assert "could not publish" not in caplog.text
        listed = boto3.client("cloudwatch", region_name="eu-west-1").list_metrics(Namespace="covidlake-region-test")
        assert "RowsRejected" in {m["MetricName"] for m in listed["Metrics"]}
