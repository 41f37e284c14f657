"""The EMR entry points (main) as spark-submit runs them, on a local lake."""

from __future__ import annotations

import json

import boto3
from moto import mock_aws

from covidlake.observability import publish_quality_metrics
from covidlake.storage import LocalStorage
from covidlake.trusted.quality import QualitySummary
from emr import analytics, etl


def test_etl_and_analytics_mains_on_a_lake(lake_copy, spark, capsys):
    storage = LocalStorage(lake_copy)
    manifest_key = storage.list("raw/_manifests/")[-1]
    manifest = json.loads(storage.get_bytes(manifest_key))
    sources = manifest["sources"]
    args = [
        "--lake",
        str(lake_copy),
        "--covid-csv",
        storage.url(sources["covid_data"]["key"]),
        "--country-csv",
        storage.url(sources["country_data"]["key"]),
        "--run-id",
        "emr-run",
        "--manifest-key",
        manifest_key,
    ]
    assert etl.main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rows_in"] == {"covid_data": 247, "country_data": 247}  # from the manifest
    # the manifest stays ingest's (the EMR role cannot write raw/); the summary is in trusted/
    assert json.loads(storage.get_bytes(manifest_key)) == manifest
    assert json.loads(storage.get_bytes("trusted/_quality.json")) == {"run_id": "emr-run", **summary}
    assert analytics.main(["--lake", str(lake_copy), "--run-id", "emr-run"]) == 0
    assert json.loads(storage.get_bytes("refined/_version.json"))["run_id"] == "emr-run"


def test_etl_main_exits_2_naming_a_missing_column(lake_copy, tmp_path, capsys):
    bad = tmp_path / "covid.csv"
    bad.write_text("location,date,total_deaths\nA,2024-01-01,1\n")
    storage = LocalStorage(lake_copy)
    country = json.loads(storage.get_bytes(storage.list("raw/_manifests/")[-1]))["sources"]["country_data"]["key"]
    code = etl.main(["--lake", str(lake_copy), "--covid-csv", f"file://{bad}", "--country-csv", storage.url(country)])
    assert code == 2
    assert "missing required column(s) total_cases" in capsys.readouterr().err


@mock_aws
def test_quality_metrics_reach_cloudwatch():
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    summary = QualitySummary(
        rows_in={"covid_data": 10, "country_data": 5},
        rows_out={"daily": 8, "snapshot": 4},
        rejected={"covid_data": {"negative_count": 2}},
    )
    publish_quality_metrics(summary.to_dict(), "covidlake-test", cloudwatch)
    names = {m["MetricName"] for m in cloudwatch.list_metrics(Namespace="covidlake-test")["Metrics"]}
    assert names == {"RowsRejected", "RowsRejected_negative_count", "RowsTrusted_daily", "RowsTrusted_snapshot"}
    stats = cloudwatch.get_metric_statistics(
        Namespace="covidlake-test",
        MetricName="RowsRejected",
        Dimensions=[{"Name": "service", "Value": "covidlake"}],
        StartTime="2000-01-01",
        EndTime="2100-01-01",
        Period=86400,
        Statistics=["Sum"],
    )
    assert stats["Datapoints"][0]["Sum"] == 2


def test_the_etl_takes_a_header_from_the_manifest_only_for_the_file_it_records():
    sources = {
        "covid_data": {"key": "raw/covid_data/ingest_date=2026-11-01/abc.csv", "columns": ["iso_code", "location"]},
        "country_data": {"key": "raw/country_data/ingest_date=2026-11-01/def.csv", "columns": ["location"]},
    }
    paths = {
        "covid_data": "s3://bucket/raw/covid_data/ingest_date=2026-11-01/abc.csv",
        "country_data": "s3://bucket/elsewhere/country_data.csv",  # not the manifest's file
    }
    assert etl.manifest_columns(sources, paths) == {"covid_data": ["iso_code", "location"], "country_data": None}
    # a manifest written before ingest recorded headers: Spark reads them
    del sources["covid_data"]["columns"]
    assert etl.manifest_columns(sources, paths)["covid_data"] is None
