"""Each sample event in events/ drives its handler to a valid result, with the environment
template.yaml gives that function and moto standing in for AWS.

"""

from __future__ import annotations

import base64
import importlib
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from covidlake.settings import get_settings

from .conftest import ROOT, function_env
from .job_code import upload_job_code as upload_stand_in_job_code

EVENTS = ROOT / "events"


@dataclass
class FakeContext:
    function_name: str = "covidlake-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:covidlake-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    log_group_name: str = "/aws/lambda/covidlake-test"
    log_stream_name: str = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def require_handler(name: str) -> Path:
    path = ROOT / "functions" / name / "app.py"
    assert path.is_file(), f"functions/{name}/app.py is missing"
    return path


def load_module(name: str):
    """functions/<name>/app.py as a fresh module (each test sets its own environment first)."""
    path = require_handler(name)
    module_name = f"covidlake_test_handler_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def load_handler(name: str):
    return load_module(name).lambda_handler


@pytest.fixture
def lambda_env(template, monkeypatch, aws, request):
    def apply(logical_id: str, **overrides) -> dict[str, str]:
        env = {**function_env(template, logical_id), **overrides}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")  # no X-Ray daemon here
        monkeypatch.setenv("POWERTOOLS_DEV", "false")
        # A cold start parses settings once: from this environment, not an earlier test's.
        get_settings.cache_clear()
        request.addfinalizer(get_settings.cache_clear)
        # The deployed function has no such variable; a test that set it for an in-process
        # server must not decide whether this one publishes metrics.
        monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
        return env

    return apply


def event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def test_every_function_has_a_sample_event():
    names = {p.name for p in EVENTS.glob("*.json")}
    assert {"ingest.json", "create_emr.json", "show_results_api.json"} <= names
    api = event("show_results_api.json")
    assert api["version"] == "2.0" and api["routeKey"] == "POST /showResults"
    body = base64.b64decode(api["body"]) if api.get("isBase64Encoded") else api["body"]
    assert json.loads(body) == {"table": "continent_stats", "limit": 3}


def test_create_emr_event_gives_a_plan_moto_emr_accepts(lambda_env, capsys):
    lambda_env("CreateEmrFunction")
    handler = load_handler("create_emr")
    with mock_aws():
        upload_job_code("lake-bucket-for-tests")
        plan = handler(event("create_emr.json"), FakeContext())
        assert set(plan) == {"run_id", "cluster", "steps", "athena", "timeouts"}
        json.dumps(plan)  # the state machine needs plain JSON
        emr = boto3.client("emr", region_name="us-east-1")
        cluster_id = emr.run_job_flow(**plan["cluster"])["JobFlowId"]
        emr.add_job_flow_steps(JobFlowId=cluster_id, Steps=list(plan["steps"].values()))
        assert len(emr.list_steps(ClusterId=cluster_id)["Steps"]) == 2
    out = capsys.readouterr().out
    assert '"ClusterRequests"' in out, "the Powertools metric must be flushed as EMF"
    assert '"run plan built"' in out


def upload_job_code(bucket: str, skip: str | None = None) -> None:
    """What `make deploy-jobs` uploads (stand-in bytes), except `skip`."""
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    upload_stand_in_job_code(s3, bucket, skip)


@pytest.mark.parametrize("absent", ["emr/etl.py", "bootstrap.sh"])
def test_create_emr_names_the_missing_job_code_before_any_cluster_starts(lambda_env, absent):
    from covidlake.errors import JobCodeMissing

    lambda_env("CreateEmrFunction")
    handler = load_handler("create_emr")
    with mock_aws():
        upload_job_code("lake-bucket-for-tests", skip=absent)
        with pytest.raises(JobCodeMissing, match=rf"s3://lake-bucket-for-tests/code/{absent}\b.*make deploy-jobs"):
            handler(event("create_emr.json"), FakeContext())
        assert boto3.client("emr", region_name="us-east-1").list_clusters()["Clusters"] == []


def test_create_emr_may_read_the_job_code_it_checks(template):
    statement = template["Resources"]["CreateEmrFunction"]["Properties"]["Policies"][0]["Statement"][0]
    assert statement["Action"] == "s3:GetObject"  # HeadObject
    assert statement["Resource"] == {"Fn::Sub": "${LakeBucket.Arn}/code/*"}


def test_create_emr_handler_fails_loudly_on_a_bad_event(lambda_env):
    lambda_env("CreateEmrFunction")
    handler = load_handler("create_emr")
    with pytest.raises(ValueError):
        handler({"changed": True}, FakeContext())


def test_create_emr_handler_refuses_to_start_without_settings(lambda_env, monkeypatch):
    lambda_env("CreateEmrFunction")
    monkeypatch.delenv("COVIDLAKE_EMR_SERVICE_ROLE")
    with pytest.raises(Exception, match="emr_service_role"):
        load_handler("create_emr")


@pytest.fixture
def http_source():
    """data/covid_data.csv served on 127.0.0.1 (the loopback only), as the local runner does."""
    from covidlake.local import serve_file

    with serve_file(ROOT / "data" / "covid_data.csv") as url:
        yield url


def test_ingest_event_lands_raw_data_then_reports_unchanged(lambda_env, http_source, monkeypatch, request, pg_url):
    """Ingest as deployed: moto S3, credentials from a (moto) Secrets Manager secret read with
    Powertools parameters, and a real PostgreSQL (the embedded one of tests/conftest.py)."""
    require_handler("ingest")
    from urllib.parse import unquote, urlparse

    pg = urlparse(pg_url)
    user, password = unquote(pg.username or "covidlake"), unquote(pg.password or "")
    env = lambda_env("IngestFunction", COVIDLAKE_SOURCE_URL=http_source, COVIDLAKE_DB_HOST="db.internal.test")
    bucket = env["COVIDLAKE_LAKE_URI"].removeprefix("s3://")
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=bucket)
        secret = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="covidlake-db", SecretString=json.dumps({"username": user, "password": password})
        )
        monkeypatch.setenv("COVIDLAKE_DB_SECRET_ARN", secret["ARN"])
        monkeypatch.delenv("COVIDLAKE_DB_URL", raising=False)
        settings_module = importlib.import_module("covidlake.settings")
        if hasattr(settings_module.get_settings, "cache_clear"):
            settings_module.get_settings.cache_clear()
            request.addfinalizer(settings_module.get_settings.cache_clear)
        module = load_module("ingest")
        handler = module.lambda_handler

        # The URL is built from the secret and COVIDLAKE_DB_HOST as on AWS; the connection
        # then goes to the embedded server (which may listen on a socket only).
        built = []
        real_resolve = module.resolve_db_url

        def resolve_then_use_local_server(settings):
            built.append(real_resolve(settings))
            return pg_url

        monkeypatch.setattr(module, "resolve_db_url", resolve_then_use_local_server)

        first = handler(event("ingest.json"), FakeContext())
        assert first["changed"] is True
        assert first["inputs"]["covid_csv"].startswith(f"s3://{bucket}/raw/covid_data/")
        assert first["inputs"]["country_csv"].startswith(f"s3://{bucket}/raw/country_data/")
        keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]}
        assert first["sources"]["covid_data"]["key"] in keys
        assert first["manifest_key"] in keys

        s3 = boto3.client("s3", region_name="us-east-1")
        # Same content, but the run was never published (no analytics yet): it stays to do.
        second = handler(event("ingest.json"), FakeContext())
        assert (second["changed"], second["run_id"]) == (True, first["run_id"])
        assert {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]} == keys, "nothing new written"
        # Once analytics published that run, the same content is "unchanged": no cluster.
        s3.put_object(Bucket=bucket, Key="refined/_version.json", Body=json.dumps({"run_id": first["run_id"]}))
        third = handler(event("ingest.json"), FakeContext())
        assert third["changed"] is False
        assert built and built[0].startswith(f"postgresql://{user}:")
        assert "@db.internal.test:5432/covid_data" in built[0]

        # the ingest output is exactly what create_emr consumes
        from covidlake.emr_cluster import EmrSettings, build_run_plan

        lambda_env("CreateEmrFunction", COVIDLAKE_LAKE_URI=env["COVIDLAKE_LAKE_URI"])
        plan = build_run_plan(first, EmrSettings())
        assert first["inputs"]["covid_csv"] in plan["steps"]["etl"]["HadoopJarStep"]["Args"]


def test_show_results_api_event_returns_typed_rows(lambda_env, tmp_path):
    """POST /showResults {"table": "continent_stats"} over a lake holding that table."""
    require_handler("show_results")
    import pyarrow as pa
    import pyarrow.parquet as pq

    table_dir = tmp_path / "lake" / "refined" / "continent_stats"
    table_dir.mkdir(parents=True)
    pq.write_table(
        pa.table({"continent": ["Africa", "Europe"], "countries": pa.array([57, 51], pa.int64())}),
        table_dir / "part-00000.parquet",
    )
    lambda_env("ShowResultsFunction", COVIDLAKE_LAKE_URI=str(tmp_path / "lake"), COVIDLAKE_QUERY_BACKEND="duckdb")
    handler = load_handler("show_results")
    response = handler(event("show_results_api.json"), FakeContext())
    assert response["statusCode"] == 200
    rows = json.loads(response["body"])
    assert rows[0] == {"continent": "Africa", "countries": 57}
    assert isinstance(rows[0]["countries"], int)
