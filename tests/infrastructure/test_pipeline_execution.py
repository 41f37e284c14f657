"""statemachine/pipeline.asl.json executed (asl_engine.py) with template.yaml's substitutions:
the real ingest and create_emr handlers against moto S3 and a real PostgreSQL, moto EMR,
Athena and SNS behind the `.sync` and publish tasks. Every state's input and output is
asserted, so a wrong JSONPath or ResultPath fails; the negative controls prove that on
mutated copies of the definition."""

from __future__ import annotations

import copy
import json

import pytest
from moto import mock_aws

from .conftest import ROOT
from .pipeline_rig import STATE_MACHINE_ARN, Rig, default_session

SM_EXECUTION = STATE_MACHINE_ARN.replace(":stateMachine:", ":execution:")
NEW_DATA_PATH = [
    "CheckRunningExecutions",
    "CountRunningExecutions",
    "AnotherRunInProgress",
    "Ingest",
    "SourcesChanged",
    "BuildRunPlan",
    "CreateCluster",
    "RunEtl",
    "RunAnalytics",
    "TerminateCluster",
    "CreateRefinedTables",
    *[f"CreateRefinedTables/{i}/CreateTable" for i in range(7)],
    "Succeeded",
]


@pytest.fixture
def source_url():
    from covidlake.local import serve_file

    with serve_file(ROOT / "data" / "covid_data.csv") as url:
        yield url


@pytest.fixture
def make_rig(template, aws, pg_url, source_url):
    """make_rig() -> a Rig in a fresh moto account: the ingest function reads the bundled CSV
    over HTTP and country_data from the embedded PostgreSQL."""
    overrides = {"IngestFunction": {"COVIDLAKE_SOURCE_URL": source_url, "COVIDLAKE_DB_URL": pg_url}}
    with mock_aws():
        yield lambda **kwargs: Rig(template, function_overrides=overrides, **kwargs)


def assert_io(execution, name: str, expected_input, expected_output) -> None:
    run = execution.run(name)
    assert run.input == expected_input, f"{name}: input differs"
    assert run.output == expected_output, f"{name}: output differs"


def guard_passes(execution, start: dict, me: str) -> dict:
    """The guard's three states with this execution alone: returns the data after them."""
    executions = [
        {
            "ExecutionArn": f"{SM_EXECUTION}:{me}",
            "StateMachineArn": STATE_MACHINE_ARN,
            "Name": me,
            "Status": "RUNNING",
            "StartDate": "2026-11-28T00:00:00Z",
        }
    ]
    listed = {**start, "guard": {"Executions": executions}}
    assert_io(execution, "CheckRunningExecutions", start, listed)
    counted = {**start, "guard": {"running": 1, "Executions": executions}}
    assert_io(execution, "CountRunningExecutions", listed, counted)
    assert_io(execution, "AnotherRunInProgress", counted, counted)
    return counted


def check_new_data_run(rig: Rig, name: str = "run-1") -> dict:
    """New data: every state's input and output, and what each integration was asked."""
    start = {"force": False}
    execution = rig.start(start, name)
    assert execution.path() == NEW_DATA_PATH, execution.path()
    assert execution.status == "SUCCEEDED"
    data = guard_passes(execution, start, name)

    assert rig.calls.lambdas[0] == ("IngestFunction", data), "Ingest gets the whole state as its event"
    ingest = rig.calls.lambda_results["IngestFunction"][-1]
    assert ingest["changed"] is True and ingest["inputs"]["covid_csv"].startswith(f"s3://{rig.bucket}/raw/")
    after_ingest = {**data, "ingest": {"changed": True, "run_id": ingest["run_id"], "result": ingest}}
    assert_io(execution, "Ingest", data, after_ingest)
    assert_io(execution, "SourcesChanged", after_ingest, after_ingest)

    assert rig.calls.lambdas[1] == ("CreateEmrFunction", ingest), "create_emr gets the ingest result"
    plan = rig.calls.lambda_results["CreateEmrFunction"][-1]
    assert plan["run_id"] == ingest["run_id"]
    after_plan = {**after_ingest, "plan": {k: plan[k] for k in ("cluster", "steps", "athena", "timeouts")}}
    assert_io(execution, "BuildRunPlan", after_ingest, after_plan)

    assert rig.calls.run_job_flow == [plan["cluster"]], "RunJobFlow gets the plan's whole request"
    cluster_id = execution.run("CreateCluster").output["cluster"]["ClusterId"]
    with_cluster = {**after_plan, "cluster": {"ClusterId": cluster_id}}
    assert_io(execution, "CreateCluster", after_plan, with_cluster)
    assert rig.calls.add_steps == [
        (cluster_id, plan["steps"]["etl"], plan["timeouts"]["etl"]),
        (cluster_id, plan["steps"]["analytics"], plan["timeouts"]["analytics"]),
    ]
    for name_ in ("RunEtl", "RunAnalytics", "TerminateCluster", "CreateRefinedTables"):
        assert_io(execution, name_, with_cluster, with_cluster)  # ResultPath null: input passes through
    assert rig.calls.terminate == [cluster_id]
    assert rig.cluster_states()[cluster_id] == "TERMINATED"

    queries = plan["athena"]["queries"]
    assert [q["table"] for q in queries] == sorted_tables()
    for i, query in enumerate(queries):
        item = {
            "table": query["table"],
            "query": query["query"],
            "database": plan["athena"]["database"],
            "workgroup": plan["athena"]["workgroup"],
        }
        state = execution.run(f"CreateRefinedTables/{i}/CreateTable")
        assert state.input == item
        assert state.output["QueryExecution"]["Query"] == query["query"]
        assert rig.calls.athena[i] == {
            "QueryString": query["query"],
            "WorkGroup": item["workgroup"],
            "QueryExecutionContext": {"Database": item["database"]},
        }
    assert_io(execution, "Succeeded", with_cluster, with_cluster)
    assert execution.output == with_cluster
    assert rig.alerts() == []
    return ingest


def sorted_tables() -> list[str]:
    from covidlake.schemas import REFINED_TABLES

    return list(REFINED_TABLES)


def test_new_data_succeeds_and_terminates_the_cluster(make_rig):
    used = []

    def session_factory(component: str):
        """The hook the IAM rehearsal fills in: here plain moto sessions, recorded."""
        used.append(component)
        return default_session(component)

    check_new_data_run(make_rig(session_factory=session_factory))
    assert set(used) == {"state_machine", "ingest", "create_emr"}


def test_unchanged_data_ends_in_no_new_data_without_a_cluster(make_rig):
    rig = make_rig()
    first = check_new_data_run(rig)
    # what analytics writes last on EMR: the refined zone now holds this run
    import boto3

    boto3.client("s3").put_object(
        Bucket=rig.bucket, Key="refined/_version.json", Body=json.dumps({"run_id": first["run_id"]})
    )
    clusters_before = rig.cluster_states()
    start = {"force": False}
    execution = rig.start(start, "run-2")
    assert execution.path() == [*NEW_DATA_PATH[:5], "NoNewData"]
    assert execution.status == "SUCCEEDED"
    data = guard_passes(execution, start, "run-2")
    ingest = rig.calls.lambda_results["IngestFunction"][-1]
    assert (ingest["changed"], ingest["run_id"]) == (False, first["run_id"])
    after = {**data, "ingest": {"changed": False, "run_id": first["run_id"], "result": ingest}}
    assert_io(execution, "Ingest", data, after)
    assert_io(execution, "SourcesChanged", after, after)
    assert_io(execution, "NoNewData", after, after)
    assert rig.cluster_states() == clusters_before, "no cluster created"
    assert [c[0] for c in rig.calls.lambdas].count("CreateEmrFunction") == 1

    # the forced run of `covidlake smoke` processes the same data again
    forced = rig.start({"force": True}, "run-3")
    assert forced.status == "SUCCEEDED" and "CreateCluster" in forced.path()
    assert rig.calls.lambdas[-2] == ("IngestFunction", forced.run("Ingest").input)
    assert rig.calls.lambda_results["IngestFunction"][-1]["changed"] is True


@pytest.mark.parametrize(
    ("fault", "failed_state", "terminates"),
    [
        ("etl", "RunEtl", True),
        ("analytics", "RunAnalytics", True),
        ("athena", "CreateRefinedTables", True),
        ("ingest", "Ingest", False),
        ("guard", "CheckRunningExecutions", False),
    ],
)
def test_a_failure_terminates_the_cluster_alerts_and_fails(make_rig, fault, failed_state, terminates):
    rig = make_rig()
    if fault in ("etl", "analytics"):
        rig.step_outcomes[f"covidlake-{fault}"] = "FAILED"
    elif fault == "athena":
        rig.athena_errors["clusters"] = "Athena.InvalidRequestException"
    elif fault == "ingest":
        rig.lambda_errors["IngestFunction"] = ValueError("COVIDLAKE_SOURCE_URL is not set")
    else:
        rig.list_executions_error = "Sfn.SfnException"
    execution = rig.start({"force": False}, "run-f")
    assert (execution.status, execution.error) == ("FAILED", "PipelineFailed")
    path = execution.path()
    failed = execution.run(failed_state)
    error = failed.error
    caught = {**failed.input, "error": error}
    assert failed.output == caught, "the Catch keeps the state input and adds $.error"
    tail = ["TerminateClusterOnError", "NotifyFailure", "PipelineFailed"]
    assert path[-3:] == tail if terminates else path[-2:] == tail[1:]
    if terminates:
        assert_io(execution, "TerminateClusterOnError", caught, caught)
        cluster_id = caught["cluster"]["ClusterId"]
        assert rig.calls.terminate[-1] == cluster_id
        assert rig.cluster_states()[cluster_id] == "TERMINATED"
    else:
        assert "TerminateClusterOnError" not in path and rig.cluster_states() == {}
    assert_io(execution, "NotifyFailure", caught, caught)
    expected_message = f"covidlake execution {SM_EXECUTION}:run-f failed: {json.dumps(error, separators=(',', ':'))}"
    assert rig.calls.published == [
        {"TopicArn": rig.topic_arn, "Subject": "covidlake pipeline failed", "Message": expected_message}
    ]
    [alert] = rig.alerts()
    assert alert["Subject"] == "covidlake pipeline failed" and alert["Message"] == expected_message
    if fault in ("etl", "analytics"):
        assert error["Error"] == "States.TaskFailed"
        assert json.loads(error["Cause"])["Step"]["Name"] == f"covidlake-{fault}"
        assert "RunAnalytics" not in path if fault == "etl" else "TerminateCluster" not in path
    if fault == "ingest":
        assert error["Error"] == "ValueError" and "CreateCluster" not in path
        assert failed.retries == [], "a function error is not a Lambda service error: no retry"
    if fault == "guard":
        assert failed.retries == [2, 4, 8] and len(rig.calls.list_executions) == 4
        assert rig.calls.lambdas == [], "fails closed: nothing runs"


def test_another_run_in_progress_is_skipped_without_touching_anything(make_rig):
    rig = make_rig()
    rig.other_running = ["yesterday"]
    start = {"force": False}
    execution = rig.start(start, "today")
    assert execution.path() == [*NEW_DATA_PATH[:3], "RecordSkipReason", "SkippedAnotherRunInProgress"]
    assert execution.status == "SUCCEEDED"
    executions = [
        {
            "ExecutionArn": f"{SM_EXECUTION}:{n}",
            "StateMachineArn": STATE_MACHINE_ARN,
            "Name": n,
            "Status": "RUNNING",
            "StartDate": "2026-11-28T00:00:00Z",
        }
        for n in ("today", "yesterday")
    ]
    counted = {**start, "guard": {"running": 2, "Executions": executions}}
    assert_io(execution, "AnotherRunInProgress", counted, counted)
    skipped = {
        "skipped": True,
        "error": "AnotherRunInProgress",
        "cause": "AnotherRunInProgress: execution yesterday is still running; "
        "execution today started nothing and touched no resource",
        "running": ["today", "yesterday"],
        "input": start,
    }
    assert_io(execution, "RecordSkipReason", counted, skipped)
    assert_io(execution, "SkippedAnotherRunInProgress", skipped, skipped)
    assert execution.output == skipped
    assert rig.calls.lambdas == [] and rig.cluster_states() == {} and rig.calls.published == []


def test_a_run_not_yet_listed_by_list_executions_still_runs(make_rig):
    """ListExecutions is eventually consistent: an empty list is no reason to skip."""
    rig = make_rig()
    rig.list_self = False
    execution = rig.start({"force": False}, "fresh")
    assert execution.run("CountRunningExecutions").output["guard"] == {"running": 0, "Executions": []}
    assert execution.path() == NEW_DATA_PATH and execution.status == "SUCCEEDED"


def test_lambda_throttling_is_retried_with_backoff(make_rig):
    rig = make_rig()
    rig.lambda_service_errors["IngestFunction"] = ["Lambda.TooManyRequestsException"] * 2
    execution = rig.start({"force": False}, "throttled")
    assert execution.run("Ingest").retries == [2, 4], "IntervalSeconds 2, BackoffRate 2"
    assert execution.status == "SUCCEEDED" and execution.path() == NEW_DATA_PATH
    assert [c[0] for c in rig.calls.lambdas].count("IngestFunction") == 3


def mutate(definition: dict, mutation: str) -> dict:
    bad = copy.deepcopy(definition)
    states = bad["States"]
    if mutation == "plan_steps_from_cluster":
        states["BuildRunPlan"]["ResultSelector"]["steps.$"] = "$.Payload.cluster"
    elif mutation == "cluster_result_path":
        states["CreateCluster"]["ResultPath"] = "$.clusters"
    elif mutation == "etl_result_kept":
        states["RunEtl"]["ResultPath"] = "$.etl"
    elif mutation == "ingest_payload":
        states["Ingest"]["Parameters"]["Payload.$"] = "$.guard"
    elif mutation == "map_item_database":
        states["CreateRefinedTables"]["ItemSelector"]["database.$"] = "$.plan.athena.workgroup"
    elif mutation == "output_path":
        states["TerminateCluster"]["OutputPath"] = "$.plan"
    return bad


@pytest.mark.parametrize(
    "mutation",
    [
        "plan_steps_from_cluster",
        "cluster_result_path",
        "etl_result_kept",
        "ingest_payload",
        "map_item_database",
        "output_path",
    ],
)
def test_a_wrong_path_in_the_definition_fails_the_new_data_check(make_rig, mutation):
    """Negative control: one JSONPath/ResultPath/OutputPath changed in a copy of the ASL."""
    rig = make_rig()
    rig.definition = mutate(rig.substituted_definition(), mutation)
    with pytest.raises(AssertionError):
        check_new_data_run(rig)


def test_the_unmutated_definition_passes_the_same_check_in_the_same_rig(make_rig):
    """The control's control: the same rig, the definition as committed, passes."""
    rig = make_rig()
    assert rig.definition == rig.substituted_definition()
    check_new_data_run(rig)
