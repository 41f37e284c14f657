"""The deployment rehearsed under its own IAM roles (DESIGN.md "The AWS path is
verified by running it").

Each component runs its real code with credentials from assuming its own role, every role
and policy taken from the SAM-transformed template.yaml (tests/infrastructure/rehearsal.py):
ingest against the embedded PostgreSQL (credentials from the RDS-style secret) and a CSV
served on 127.0.0.1; create_emr's plan; the EMR jobs' S3 calls under the instance role (Spark's
own reads and writes through a local stand-in for EMRFS, their prefixes declared and checked);
show_results over Athena; the state machine's Tasks against the permissions AWS documents.
Run-blockers A.3 (the ETL wrote ingest's manifest) and A.4 (ingest could not read
refined/_version.json) fail here if they come back; the negative control removes each
statement a run needs and expects the rehearsal to fail naming component, call and resource.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, quote, urlparse

import boto3
import pytest
import requests
from botocore.validate import ParamValidator

from covidlake.errors import LakeAccessDenied
from covidlake.local import serve_file
from covidlake.settings import BUNDLED_DATA, get_settings
from covidlake.storage import S3Storage

from .conftest import ASL, load_template, sam_transform
from .iam_policy import Need, evaluate
from .rehearsal import (
    COMPONENTS,
    AccessDenied,
    Deployment,
    EmrfsStandIn,
    Rehearsal,
    definition,
    function_environment,
    role_specs,
    spark_needs,
    task_needs,
    task_states,
)
from .test_events import FakeContext, load_module

pytestmark = [pytest.mark.integration, pytest.mark.rehearsal]

# The layouts this branch reads; the compact layout (OWID's current default) joins here when
# its change lands: "compact": <the bundled data rewritten into compact.csv's header>.
LAYOUTS = {
    "split": BUNDLED_DATA / "covid_data.csv",
    "legacy": BUNDLED_DATA / "owid-covid-latest.csv",
}
TRANSFORMED = sam_transform(load_template())
STATEMENTS = [label for spec in role_specs(TRANSFORMED, Deployment()).values() for label, _ in spec.statements()]
# Statements no rehearsed call uses, and why (a new unused statement must be explained here).
NOT_EXERCISED = {
    "state_machine:pipeline/ExecutionLogDelivery": "Step Functions' log delivery, not a Task",
    "state_machine:pipeline/XRayTraces": "tracing of executions, not a Task",
}


# --- running the components ------------------------------------------------------------------


def _db_parts(pg_url: str) -> dict:
    """Host, port and credentials of the test database, as the RDS endpoint and secret hold
    them. The embedded server listens on a Unix socket: its folder, URL-quoted, is the host."""
    url = urlparse(pg_url)
    host, port = url.hostname, url.port
    socket_dir = parse_qs(url.query).get("host", [None])[0]
    if socket_dir:
        host = quote(socket_dir, safe="")
        port = next(Path(socket_dir).glob(".s.PGSQL.*")).suffix.lstrip(".")
    return {"host": host, "port": str(port or 5432), "username": url.username or "", "password": url.password or ""}


def _lambda_env(r: Rehearsal, logical_id: str, **overrides) -> dict[str, str]:
    import certifi

    env = function_environment(r.transformed, r.d, logical_id)
    # The URL built from the secret says verify-full with the layer's RDS CA bundle (fetched at
    # build time, absent here). The embedded server listens on a Unix socket, where libpq uses
    # no TLS, so any CA file that exists lets the real connection code run unchanged.
    ca = {"COVIDLAKE_DB_CA_BUNDLE": certifi.where()}
    return {**env, **ca, "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_DEV": "false", **overrides}


def run_ingest(r: Rehearsal, csv: Path, force: bool = False) -> dict:
    """The ingest Lambda's handler, under its role, with the environment the template gives it."""
    from aws_lambda_powertools.utilities.parameters import base

    base.DEFAULT_PROVIDERS.clear()  # a provider keeps the client (and credentials) it was built with
    base.clear_caches()
    with serve_file(csv) as url, r.as_component("ingest", _lambda_env(r, "IngestFunction", COVIDLAKE_SOURCE_URL=url)):
        get_settings.cache_clear()
        try:
            return load_module("ingest").lambda_handler({"force": force}, FakeContext())
        finally:
            get_settings.cache_clear()


def run_create_emr(r: Rehearsal, ingest_result: dict) -> dict:
    with r.as_component("create_emr", _lambda_env(r, "CreateEmrFunction")):
        return load_module("create_emr").lambda_handler(ingest_result, FakeContext())


def run_emr_jobs(r: Rehearsal, plan: dict, mirror: Path) -> EmrfsStandIn:
    """The plan's two spark-submit steps, their real main() under the instance role."""
    from emr import analytics, etl

    with r.as_component("emr_instance") as session:
        lake = EmrfsStandIn(r.d.bucket, session.client("s3"), mirror)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("covidlake.storage.open_lake", lambda uri, s3_client=None: lake)
            for step, job in (("etl", etl), ("analytics", analytics)):
                args = plan["steps"][step]["HadoopJarStep"]["Args"]
                args = args[args.index(f"s3://{r.d.bucket}/code/emr/{step}.py") + 1 :]
                args = [lake.local_input(a) if a.startswith("s3://") and "/raw/" in a else a for a in args]
                assert job.main(args) == 0, f"{step} failed"
    return lake


def seed_athena(r: Rehearsal, columns: list[tuple[str, str]], rows: list[list[str]]) -> None:
    payload = {
        "account_id": r.d.account,
        "region": r.d.region,
        "results": [
            {
                "rows": [{"Data": [{"VarCharValue": v} for v in row]} for row in [[c for c, _ in columns], *rows]],
                "column_info": [
                    {
                        "Name": c,
                        "Label": c,
                        "Type": t,
                        "CatalogName": "hive",
                        "SchemaName": "",
                        "TableName": "",
                        "Precision": 0,
                        "Scale": 0,
                        "Nullable": "UNKNOWN",
                        "CaseSensitive": False,
                    }
                    for c, t in columns
                ],
            }
        ],
    }
    assert requests.post("http://motoapi.amazonaws.com/moto-api/static/athena/query-results", json=payload).ok


def run_show_results(r: Rehearsal, table: str) -> dict:
    event = json.loads((Path(ASL).parents[1] / "events" / "show_results_api.json").read_text())
    event["body"] = json.dumps({"table": table})
    event["isBase64Encoded"] = False
    with r.as_component("show_results", _lambda_env(r, "ShowResultsFunction")):
        # The handler builds its service from settings at cold start: read this environment.
        get_settings.cache_clear()
        try:
            return load_module("show_results").lambda_handler(event, FakeContext())
        finally:
            get_settings.cache_clear()


def check_state_machine(r: Rehearsal, plan: dict) -> None:
    asl = definition(r.transformed, r.d, json.loads(Path(ASL).read_text()))
    for name, state in task_states(asl):
        for need in task_needs(r, state, plan):
            r.check("state_machine", f"{name} ({state['Resource']})", need)
    for call, need in spark_needs(r.d):
        r.check("emr_instance", call, need)
    # the EMR service role hands the instance role to EC2 when it launches the nodes
    instance_role = r.roles["emr_instance"].arn
    r.check(
        "emr_service",
        "RunJobFlow: launch instances",
        Need.of("iam:PassRole", instance_role, {"iam:PassedToService": "ec2.amazonaws.com"}),
    )


def start_cluster(r: Rehearsal, name: str, stack: str) -> str:
    """A cluster as an interrupted run leaves it (WAITING, tagged as create_emr tags), started as admin."""
    tags = {"project": "covidlake", "covidlake:stack": stack, "for-use-with-amazon-emr-managed-policies": "true"}
    with r.admin():
        return boto3.client("emr").run_job_flow(
            Name=name,
            ReleaseLabel="emr-7.5.0",
            Instances={"MasterInstanceType": "m4.large", "InstanceCount": 1, "KeepJobFlowAliveWhenNoSteps": True},
            JobFlowRole="EMR_EC2_DefaultRole",
            ServiceRole="EMR_DefaultRole",
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )["JobFlowId"]


def cluster_state(r: Rehearsal, cluster_id: str) -> str:
    with r.admin():
        return boto3.client("emr").describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]["State"]


def manifest(r: Rehearsal, key: str) -> bytes:
    with r.admin():
        return boto3.client("s3").get_object(Bucket=r.d.bucket, Key=key)["Body"].read()


# --- the whole run, once ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_run(pg_url, spark, tmp_path_factory):
    """First ingest, create_emr, both EMR jobs, show_results, the state machine's Tasks,
    then an unchanged and a forced ingest: every decision recorded."""
    deployment = Deployment(db_host=_db_parts(pg_url)["host"], parameters={"DbPort": _db_parts(pg_url)["port"]})
    with Rehearsal(TRANSFORMED, deployment) as r:
        db = _db_parts(pg_url)
        r.set_database_secret({"username": db["username"], "password": db["password"]})
        out = {"rehearsal": r}
        out["first"] = run_ingest(r, LAYOUTS["split"])
        out["manifest_before"] = manifest(r, out["first"]["manifest_key"])
        leftover = start_cluster(r, f"{r.d.stack}-covidlake-interrupted", r.d.stack)
        other = start_cluster(r, "another-stack-covidlake-1", "another-stack")
        out["plan"] = run_create_emr(r, out["first"])
        out["leftover"], out["other_cluster"] = cluster_state(r, leftover), cluster_state(r, other)
        out["lake"] = run_emr_jobs(r, out["plan"], tmp_path_factory.mktemp("emrfs"))
        out["manifest_after"] = manifest(r, out["first"]["manifest_key"])
        seed_athena(r, [("continent", "varchar"), ("countries", "bigint")], [["Africa", "57"], ["Europe", "51"]])
        out["api"] = run_show_results(r, "continent_stats")
        check_state_machine(r, out["plan"])
        out["unchanged"] = run_ingest(r, LAYOUTS["split"])
        out["forced"] = run_ingest(r, LAYOUTS["split"], force=True)
    return out  # moto stopped: the tests read the recorded decisions and results only


def test_every_call_of_the_run_is_allowed(full_run):
    r = full_run["rehearsal"]
    denied = [str(c) for c in r.calls if not c.decision.allowed]
    assert not denied, "\n".join(denied)
    assert {c.component for c in r.calls} >= {"ingest", "emr_instance", "show_results", "state_machine", "emr_service"}


def test_create_emr_terminates_the_leftover_cluster_under_its_role(full_run):
    assert full_run["leftover"].startswith("TERMINAT") and full_run["other_cluster"] == "WAITING"
    r = full_run["rehearsal"]
    calls = {c.call for c in r.calls if c.component == "create_emr" and c.decision.allowed}
    assert {"emr:ListClusters", "emr:DescribeCluster", "emr:TerminateJobFlows"} <= calls


def test_ingest_first_unchanged_and_forced_runs(full_run):
    first, unchanged, forced = full_run["first"], full_run["unchanged"], full_run["forced"]
    assert first["changed"] is True
    # A.4: the unchanged rerun reads refined/_version.json (published by analytics) and skips
    assert unchanged["changed"] is False and unchanged["run_id"] == first["run_id"]
    assert forced["changed"] is True and forced["run_id"] != first["run_id"]
    r = full_run["rehearsal"]
    calls = {(c.call, c.need.resource.rsplit(":::", 1)[-1]) for c in r.calls if c.component == "ingest"}
    assert ("s3:HeadObject", f"{r.d.bucket}/refined/_version.json") in calls
    assert any(call == "secretsmanager:GetSecretValue" for call, _ in calls)


def test_etl_leaves_ingests_manifest_alone_and_publishes_last(full_run):
    """A.3: the ETL's bookkeeping is in trusted/ and precedes the publication."""
    assert full_run["manifest_after"] == full_run["manifest_before"]
    r = full_run["rehearsal"]
    emr = [c for c in r.calls if c.component == "emr_instance" and c.call.startswith("s3:")]
    assert not [c for c in emr if "/raw/" in c.need.resource and c.need.action != "s3:GetObject"]
    writes = [
        c.need.resource.split(f"{r.d.bucket}/", 1)[1]
        for c in emr
        if c.call == "s3:PutObject" and "_staging" not in c.need.resource
    ]
    assert writes[0] == "trusted/_quality.json" and writes[-1] == "refined/_version.json"
    quality_at = next(i for i, c in enumerate(emr) if c.need.resource.endswith("trusted/_quality.json"))
    first_publish = next(i for i, c in enumerate(emr) if c.call == "s3:CopyObject")
    assert quality_at < first_publish


def test_spark_paths_are_declared_and_allowed(full_run):
    from .rehearsal import SPARK_PREFIXES

    declared = SPARK_PREFIXES["read"] + SPARK_PREFIXES["write"]
    undeclared = [p for p in full_run["lake"].spark_paths if not p.startswith(declared)]
    assert not undeclared, f"Spark paths outside rehearsal.SPARK_PREFIXES: {undeclared}"


def test_create_emr_plan_validates_and_names_passable_roles(full_run):
    plan, r = full_run["plan"], full_run["rehearsal"]
    emr = boto3.session.Session().client("emr", region_name=r.d.region).meta.service_model
    validator = ParamValidator()
    report = validator.validate(plan["cluster"], emr.operation_model("RunJobFlow").input_shape)
    assert not report.has_errors(), report.generate_report()
    for step in plan["steps"].values():
        request = {"JobFlowId": "j-1", "Steps": [step]}
        report = validator.validate(request, emr.operation_model("AddJobFlowSteps").input_shape)
        assert not report.has_errors(), report.generate_report()
    passes = [c for c in r.calls if c.need.action == "iam:PassRole" and c.component == "state_machine"]
    assert {c.need.resource for c in passes} == {r.roles["emr_service"].arn, r.roles["emr_instance"].arn}
    assert all(c.decision.allowed for c in passes)


def test_show_results_answers_through_athena_under_its_role(full_run):
    response = full_run["api"]
    assert response["statusCode"] == 200, response
    rows = json.loads(response["body"])
    assert rows == [{"continent": "Africa", "countries": 57}, {"continent": "Europe", "countries": 51}]
    calls = {c.call for c in full_run["rehearsal"].calls if c.component == "show_results"}
    assert {"athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults", "s3:GetObject"} <= calls


def test_every_statement_is_exercised_or_explained(full_run):
    used = full_run["rehearsal"].used_statements()
    unexplained = sorted(set(STATEMENTS) - used - set(NOT_EXERCISED))
    assert not unexplained, f"statements no rehearsed call uses: {unexplained}"
    assert not (used & set(NOT_EXERCISED)), "a statement listed as not exercised is used: drop it from NOT_EXERCISED"


@pytest.mark.parametrize("label", [s for s in STATEMENTS if s not in NOT_EXERCISED])
def test_negative_control_each_needed_statement(full_run, label):
    """Without any one statement the run needs, a recorded call is refused, and the refusal
    names the component, the call and the resource."""
    r = full_run["rehearsal"]
    component = label.split(":", 1)[0]
    statements = r.roles[component].statements(frozenset({label}))
    refused = [c for c in r.calls if c.component == component and not evaluate(statements, c.need).allowed]
    assert refused, f"nothing needs {label}"
    first = refused[0]
    message = str(AccessDenied(component, r.roles[component].arn, first.call, first.need))  # what the run raises
    assert f"component {component}" in message and first.call in message and first.need.resource in message


# --- real reruns with a statement removed ------------------------------------------------------


@pytest.fixture
def rehearsal_without(pg_url):
    def start(*labels: str) -> Rehearsal:
        db = _db_parts(pg_url)
        r = Rehearsal(TRANSFORMED, Deployment(db_host=db["host"], parameters={"DbPort": db["port"]}), frozenset(labels))
        r.__enter__()
        r.set_database_secret({"username": db["username"], "password": db["password"]})
        started.append(r)
        return r

    started: list[Rehearsal] = []
    yield start
    for r in started:
        r.__exit__(None, None, None)


@pytest.mark.parametrize(
    "label, call, resource",
    [
        ("ingest:IngestFunctionRolePolicy0/RawZoneReadWrite", "s3:", "/raw/"),
        ("ingest:IngestFunctionRolePolicy0/DatabaseCredentials", "secretsmanager:GetSecretValue", "rds!db-rehearsal"),
        ("ingest:IngestFunctionRolePolicy0/LakeList", "s3:", "covidlake-rehearsal-lake"),
    ],
)
def test_ingest_fails_without_a_needed_statement(rehearsal_without, label, call, resource):
    r = rehearsal_without(label)
    with pytest.raises(Exception) as raised:
        run_ingest(r, LAYOUTS["split"])
    assert r.denied, f"ingest failed for another reason: {raised.value!r}"
    err = r.denied[0]
    assert err.component == "ingest" and err.operation.startswith(call) and resource in err.need.resource
    assert "ingest" in str(err) and err.need.resource in str(err)


def test_a4_ingest_needs_the_version_read(rehearsal_without):
    """Run-blocker A.4: without the read of refined/_version.json every run with unchanged
    sources fails (S3 answers 403 for the key, present or not), naming the key and permission."""
    r = rehearsal_without("ingest:IngestFunctionRolePolicy0/PublishedVersionRead")
    assert run_ingest(r, LAYOUTS["split"])["changed"] is True  # a first run reads no version
    with pytest.raises(LakeAccessDenied, match=r"refined/_version.json: access denied \(403\).*s3:GetObject"):
        run_ingest(r, LAYOUTS["split"])
    assert r.denied[0].need.resource.endswith("/refined/_version.json")


def test_s3_answers_403_and_the_storage_names_it(rehearsal_without):
    """moto's own enforcement (not the evaluator): HeadObject outside the role's grants is 403,
    and S3Storage.exists turns that into an error naming the key and the permissions."""
    r = rehearsal_without()
    with r.as_component("ingest") as session:
        storage = S3Storage(r.d.bucket, client=session.client("s3"))
        with pytest.MonkeyPatch.context() as mp:  # bypass the evaluator: this is moto's answer
            mp.setattr("tests.infrastructure.rehearsal.needs_for", lambda *a: [])
            with pytest.raises(LakeAccessDenied, match=r"trusted/_quality.json.*403.*s3:GetObject"):
                storage.exists("trusted/_quality.json")
            assert storage.exists("raw/nothing-here.csv") is False  # allowed key, missing: 404


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_ingest_each_layout_under_its_role(rehearsal_without, layout):
    r = rehearsal_without()
    first = run_ingest(r, LAYOUTS[layout])
    again = run_ingest(r, LAYOUTS[layout])
    assert first["changed"] is True and again["changed"] is True  # nothing published yet: reprocess
    assert again["run_id"] == first["run_id"]
    assert not [c for c in r.calls if not c.decision.allowed]


def test_components_and_roles_come_from_the_template():
    specs = role_specs(TRANSFORMED, Deployment())
    for component, (_logical_id, service) in COMPONENTS.items():
        principals = [s["Principal"]["Service"] for s in specs[component].trust["Statement"]]
        assert any(service in (p if isinstance(p, list) else [p]) for p in principals), component
    ingest = dict(specs["ingest"].statements())
    assert ingest["ingest:IngestFunctionRolePolicy0/PublishedVersionRead"]["Resource"] == (
        "arn:aws:s3:::covidlake-rehearsal-lake/refined/_version.json"
    )


# --- every component under one existing role (ExistingExecutionRoleName) -----------------------

SHARED = {"ExistingExecutionRoleName": "LabRole"}
TRANSFORMED_SHARED = sam_transform(load_template(), SHARED)


@pytest.fixture(scope="module")
def shared_run(pg_url, spark, tmp_path_factory):
    """The same run with every component under the role its resource names in the single-role
    mode, each holding a LabRole-like broad policy (rehearsal.SHARED_ROLE_POLICY): a resource
    still naming a role of its own, or a call outside the shared roles, fails here."""
    db = _db_parts(pg_url)
    deployment = Deployment(db_host=db["host"], parameters={"DbPort": db["port"], **SHARED})
    with Rehearsal(TRANSFORMED_SHARED, deployment) as r:
        r.set_database_secret({"username": db["username"], "password": db["password"]})
        out = {"rehearsal": r}
        out["first"] = run_ingest(r, LAYOUTS["split"])
        leftover = start_cluster(r, f"{r.d.stack}-covidlake-interrupted", r.d.stack)
        out["plan"] = run_create_emr(r, out["first"])
        out["leftover"] = cluster_state(r, leftover)
        run_emr_jobs(r, out["plan"], tmp_path_factory.mktemp("emrfs-shared"))
        seed_athena(r, [("continent", "varchar"), ("countries", "bigint")], [["Africa", "57"]])
        out["api"] = run_show_results(r, "continent_stats")
        check_state_machine(r, out["plan"])
        out["unchanged"] = run_ingest(r, LAYOUTS["split"])
    return out


def test_single_role_every_component_runs_under_the_shared_role(shared_run):
    r = shared_run["rehearsal"]
    denied = [str(c) for c in r.calls if not c.decision.allowed]
    assert not denied, "\n".join(denied)
    lab = f"arn:aws:iam::{r.d.account}:role/LabRole"
    for component in ("ingest", "create_emr", "show_results", "state_machine"):
        assert r.roles[component].arn == lab, component
    assert r.roles["emr_service"].arn.endswith(":role/EMR_DefaultRole")
    assert r.roles["emr_instance"].arn.endswith(":role/EMR_EC2_DefaultRole")
    assert {c.component for c in r.calls} == set(COMPONENTS)


def test_single_role_run_gives_the_same_results(shared_run):
    assert shared_run["first"]["changed"] is True and shared_run["unchanged"]["changed"] is False
    assert shared_run["leftover"].startswith("TERMINAT")
    assert shared_run["api"]["statusCode"] == 200
    assert json.loads(shared_run["api"]["body"]) == [{"continent": "Africa", "countries": 57}]


def test_single_role_plan_passes_the_shared_emr_roles(shared_run):
    r, plan = shared_run["rehearsal"], shared_run["plan"]
    assert (plan["cluster"]["ServiceRole"], plan["cluster"]["JobFlowRole"]) == (
        "EMR_DefaultRole",
        "EMR_EC2_DefaultRole",
    )
    passes = {c.need.resource for c in r.calls if c.need.action == "iam:PassRole" and c.component == "state_machine"}
    assert passes == {r.roles["emr_service"].arn, r.roles["emr_instance"].arn}
