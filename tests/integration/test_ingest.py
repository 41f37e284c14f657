"""Ingest into the raw zone: content addressing, the duplicate check, both backends."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from covidlake.errors import SourceError
from covidlake.raw.ingest import ingest
from covidlake.settings import BUNDLED_DATA
from covidlake.storage import LocalStorage, S3Storage, open_lake

from .httpfixtures import http_server, send

CSV = (BUNDLED_DATA / "covid_data.csv").read_bytes()
DAY1 = datetime(2026, 11, 1, 6, tzinfo=UTC)
DAY2 = datetime(2026, 11, 2, 6, tzinfo=UTC)


@pytest.fixture
def source():
    body = {"csv": CSV}
    with http_server(lambda h, n: send(h, 200, body["csv"])) as (url, hits):
        yield f"{url}/covid_data.csv", body


def test_first_ingest_writes_content_addressed_objects_and_manifest(source, pg_url, settings, tmp_path):
    url, _ = source
    storage = LocalStorage(tmp_path)
    result = ingest(storage, url, pg_url, settings, now=DAY1)
    sha = hashlib.sha256(CSV).hexdigest()
    assert result.changed
    assert result.sources["covid_data"].key == f"raw/covid_data/ingest_date=2026-11-01/{sha}.csv"
    assert storage.get_bytes(result.sources["covid_data"].key) == CSV  # bytes unchanged
    manifest = json.loads(storage.get_bytes(result.manifest_key))
    assert manifest["sources"]["country_data"]["rows"] == 247
    # each header as Spark names it, so the ETL reads the CSVs without a job for the header
    assert manifest["sources"]["covid_data"]["columns"] == CSV.decode().splitlines()[0].split(",")
    assert manifest["sources"]["country_data"]["columns"][0] == "location"
    assert result.inputs["covid_csv"] == f"file://{tmp_path}/raw/covid_data/ingest_date=2026-11-01/{sha}.csv"


def test_identical_content_writes_nothing_and_reports_unchanged(source, pg_url, settings, tmp_path):
    url, _ = source
    storage = LocalStorage(tmp_path)
    first = ingest(storage, url, pg_url, settings, now=DAY1)
    storage.put_bytes("refined/_version.json", json.dumps({"run_id": first.run_id}).encode())
    before = sorted(p for p in tmp_path.rglob("*"))
    second = ingest(storage, url, pg_url, settings, now=DAY2)
    assert not second.changed
    assert second.run_id == first.run_id
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_unchanged_but_unpublished_data_is_processed_again(source, pg_url, settings, tmp_path):
    """A run that failed after ingest: the rerun must not skip the Spark stages."""
    url, _ = source
    storage = LocalStorage(tmp_path)
    first = ingest(storage, url, pg_url, settings, now=DAY1)
    again = ingest(storage, url, pg_url, settings, now=DAY2)
    assert again.changed and again.run_id == first.run_id
    assert len(storage.list("raw/_manifests/")) == 1


def test_changed_content_is_a_new_version(source, pg_url, settings, tmp_path):
    url, body = source
    storage = LocalStorage(tmp_path)
    first = ingest(storage, url, pg_url, settings, now=DAY1)
    storage.put_bytes("refined/_version.json", json.dumps({"run_id": first.run_id}).encode())
    body["csv"] = CSV + b"ZZZ,Zland,2024-08-05,1,,,0\n"
    second = ingest(storage, url, pg_url, settings, now=DAY2)
    assert second.changed and second.run_id != first.run_id
    assert second.sources["covid_data"].key.startswith("raw/covid_data/ingest_date=2026-11-02/")
    # the unchanged source keeps its first object
    assert second.sources["country_data"].key == first.sources["country_data"].key
    assert len(storage.list("raw/_manifests/")) == 2


def test_failed_download_leaves_the_raw_zone_empty(pg_url, settings, tmp_path):
    storage = LocalStorage(tmp_path)
    with http_server(lambda h, n: send(h, 502, b"bad gateway")) as (url, _), pytest.raises(SourceError):
        ingest(storage, f"{url}/c.csv", pg_url, settings)
    assert storage.list("raw/") == []


@mock_aws
def test_s3_backend_same_layout_and_dedup(source, pg_url, settings):
    url, _ = source
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="lake-test")
    storage = open_lake("s3://lake-test/covid", s3_client=s3)
    assert isinstance(storage, S3Storage)
    first = ingest(storage, url, pg_url, settings, now=DAY1)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lake-test")["Contents"]]
    sha = hashlib.sha256(CSV).hexdigest()
    assert f"covid/raw/covid_data/ingest_date=2026-11-01/{sha}.csv" in keys
    assert first.inputs["covid_csv"] == f"s3://lake-test/covid/raw/covid_data/ingest_date=2026-11-01/{sha}.csv"
    storage.put_bytes("refined/_version.json", json.dumps({"run_id": first.run_id}).encode())
    second = ingest(storage, url, pg_url, settings, now=DAY2)
    assert not second.changed
    assert len(s3.list_objects_v2(Bucket="lake-test")["Contents"]) == len(keys) + 1  # + the version marker


@mock_aws
def test_s3_publish_replaces_a_prefix_whole():
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="lake-publish")
    storage = S3Storage("lake-publish", "", client=s3)
    storage.put_bytes("refined/t/old-1.parquet", b"old")
    storage.put_bytes("refined/t/shared.parquet", b"old")
    storage.put_bytes("_staging/refined/r1/t/shared.parquet", b"new")
    storage.put_bytes("_staging/refined/r1/t/new-2.parquet", b"new")
    storage.publish({"_staging/refined/r1/t": "refined/t"})
    assert storage.list("refined/t/") == ["refined/t/new-2.parquet", "refined/t/shared.parquet"]
    assert storage.get_bytes("refined/t/shared.parquet") == b"new"
    assert storage.list("_staging/") == []
    with pytest.raises(RuntimeError, match="empty staging"):
        storage.publish({"_staging/refined/none/t": "refined/t"})
