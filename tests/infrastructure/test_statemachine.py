"""statemachine/pipeline.asl.json: statelint accepts it, and its structure keeps the
pipeline's promises (no cluster for unchanged data, every failure terminates the cluster
and alerts, timeouts everywhere, no blind retries of Spark)."""

from __future__ import annotations

import json
import re
import subprocess
from collections import deque

import pytest

from .conftest import ASL, ROOT, tool

LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
ERROR_PATH = {"TerminateClusterOnError", "NotifyFailure", "PipelineFailed"}


def statelint(path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("statelint"), str(path)], capture_output=True, text=True)


def test_statelint_accepts_the_definition():
    proc = statelint(ASL)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_statelint_rejects_a_broken_definition(tmp_path, asl):
    broken = json.loads(json.dumps(asl))
    broken["States"]["RunEtl"]["Next"] = "NoSuchState"
    del broken["States"]["PipelineFailed"]["Type"]
    bad = tmp_path / "bad.asl.json"
    bad.write_text(json.dumps(broken))
    proc = statelint(bad)
    assert proc.returncode != 0
    assert "NoSuchState" in proc.stdout + proc.stderr


def successors(state: dict) -> list[str]:
    nxt = [state["Next"]] if "Next" in state else []
    nxt += [c["Next"] for c in state.get("Choices", [])]
    nxt += [state["Default"]] if "Default" in state else []
    nxt += [c["Next"] for c in state.get("Catch", [])]
    return nxt


def happy_successors(state: dict) -> list[str]:
    nxt = [state["Next"]] if "Next" in state else []
    nxt += [c["Next"] for c in state.get("Choices", [])]
    nxt += [state["Default"]] if "Default" in state else []
    return nxt


def reachable(states: dict, start: str, follow=happy_successors) -> list[str]:
    seen, queue = [], deque([start])
    while queue:
        name = queue.popleft()
        if name in seen:
            continue
        seen.append(name)
        queue.extend(follow(states[name]))
    return seen


GUARD = ["CheckRunningExecutions", "CountRunningExecutions", "AnotherRunInProgress"]


def test_the_guard_comes_first_and_lists_only_running_executions_of_itself(asl):
    states = asl["States"]
    assert asl["StartAt"] == GUARD[0]
    check = states["CheckRunningExecutions"]
    assert check["Type"] == "Task"
    assert check["Resource"] == "arn:aws:states:::aws-sdk:sfn:listExecutions"
    assert check["Parameters"] == {
        "StateMachineArn.$": "$$.StateMachine.Id",
        "StatusFilter": "RUNNING",
        "MaxResults": 2,
    }
    assert check["Next"] == "CountRunningExecutions"
    # fails closed: an unreadable list alerts and runs nothing
    assert check["Catch"][0]["ErrorEquals"] == ["States.ALL"] and check["Catch"][0]["Next"] == "NotifyFailure"
    count = states["CountRunningExecutions"]
    assert count["Type"] == "Pass"
    assert count["Parameters"]["running.$"] == "States.ArrayLength($.guard.Executions)"
    assert count["Next"] == "AnotherRunInProgress"
    # the guard's states touch nothing but ListExecutions
    assert [s for s in reachable(states, GUARD[0], successors) if s in GUARD] == GUARD


def test_the_guard_leads_to_ingest_only_when_alone(asl):
    states = asl["States"]
    choice = states["AnotherRunInProgress"]
    assert choice["Type"] == "Choice"
    assert choice["Choices"] == [
        {"Variable": "$.guard.running", "NumericGreaterThan": 1, "Next": "RecordSkipReason"}
    ], "more than one RUNNING (this one included) means another run is in progress"
    assert choice["Default"] == "Ingest"
    # with another run in progress: a Pass recording why, then a Succeed; no Task at all
    skip = reachable(states, "RecordSkipReason", successors)
    assert skip == ["RecordSkipReason", "SkippedAnotherRunInProgress"]
    assert [states[s]["Type"] for s in skip] == ["Pass", "Succeed"]
    reason = states["RecordSkipReason"]["Parameters"]
    assert reason["error"] == "AnotherRunInProgress"
    assert reason["cause.$"].startswith("States.Format('AnotherRunInProgress: execution {} is still running")
    # Ingest is reached from the guard only through the Choice's Default
    into_ingest = [n for n, s in states.items() if "Ingest" in successors(s)]
    assert into_ingest == ["AnotherRunInProgress"]


def evaluate_guard(asl, running: list[str], me: str) -> tuple[str, dict]:
    """A tiny interpreter of the guard's states for given RUNNING executions (newest
    first, as ListExecutions returns them): where the execution goes, and its data."""
    states = asl["States"]
    data = {"force": False}
    listed = {"Executions": [{"Name": n, "ExecutionArn": f"arn:aws:states:r:a:execution:sm:{n}"} for n in running]}
    check = states["CheckRunningExecutions"]
    data["guard"] = {k.removesuffix(".$"): listed[v.removeprefix("$.")] for k, v in check["ResultSelector"].items()}
    count = states["CountRunningExecutions"]["Parameters"]
    computed = {}
    for key, expr in count.items():
        m = re.fullmatch(r"States\.ArrayLength\(\$\.guard\.(\w+)\)", expr)
        computed[key.removesuffix(".$")] = len(data["guard"][m.group(1)]) if m else data["guard"][expr.split(".")[-1]]
    data["guard"] = computed
    choice = states["AnotherRunInProgress"]
    rule = choice["Choices"][0]
    value = data["guard"][rule["Variable"].split(".")[-1]]
    nxt = rule["Next"] if value > rule["NumericGreaterThan"] else choice["Default"]
    if nxt != "RecordSkipReason":
        return nxt, data
    params = states[nxt]["Parameters"]
    # on AWS, Executions[1] of a shorter list is a States.Runtime error, not a skip
    assert len(running) >= 2, f"skipped with only {running} RUNNING"
    fmt = re.fullmatch(
        r"States\.Format\('(.*)', \$\.guard\.Executions\[(\d)\]\.Name, \$\$\.Execution\.Name\)", params["cause.$"]
    )
    cause = fmt.group(1).replace("{}", data["guard"]["Executions"][int(fmt.group(2))]["Name"], 1).replace("{}", me, 1)
    return states[nxt]["Next"], {"error": params["error"], "cause": cause}


@pytest.mark.parametrize(
    ("running", "expected"),
    [
        ([], "Ingest"),  # ListExecutions is eventually consistent: this one may not be listed yet
        (["me"], "Ingest"),
        (["me", "yesterday"], "SkippedAnotherRunInProgress"),
    ],
)
def test_the_guard_decides_by_the_number_of_running_executions(asl, running, expected):
    where, data = evaluate_guard(asl, running, "me")
    assert where == expected
    if expected == "Ingest":
        assert data["force"] is False, "the original input reaches Ingest"
    else:
        assert data == {
            "error": "AnotherRunInProgress",
            "cause": "AnotherRunInProgress: execution yesterday is still running; "
            "execution me started nothing and touched no resource",
        }


def test_changed_choice_skips_the_cluster(asl):
    states = asl["States"]
    assert states["Ingest"]["Next"] == "SourcesChanged"
    choice = states["SourcesChanged"]
    assert choice["Type"] == "Choice"
    assert choice["Choices"] == [{"Variable": "$.ingest.changed", "BooleanEquals": True, "Next": "BuildRunPlan"}]
    # changed == false takes the Default branch: a terminal Succeed, no EMR state on the way
    skip = reachable(states, choice["Default"], successors)
    assert [states[s]["Type"] for s in skip] == ["Succeed"]
    assert not any("elasticmapreduce" in states[s].get("Resource", "") for s in skip)
    # and the changed branch does reach the cluster
    assert "CreateCluster" in reachable(states, "BuildRunPlan")


def test_every_state_after_the_cluster_exists_catches_into_termination(asl):
    states = asl["States"]
    after = [s for s in reachable(states, states["CreateCluster"]["Next"]) if states[s]["Type"] not in ("Succeed",)]
    assert after == ["RunEtl", "RunAnalytics", "TerminateCluster", "CreateRefinedTables"]
    for name in after:
        catches = states[name].get("Catch", [])
        assert catches, f"{name} has no Catch"
        assert catches[0]["ErrorEquals"] == ["States.ALL"]
        assert catches[0]["Next"] == "TerminateClusterOnError", name
        assert catches[0]["ResultPath"] == "$.error", f"{name} must keep $.cluster for the termination"


def test_the_error_path_terminates_then_notifies_then_fails(asl):
    states = asl["States"]
    term = states["TerminateClusterOnError"]
    assert term["Resource"] == "arn:aws:states:::elasticmapreduce:terminateCluster.sync"
    assert term["Parameters"] == {"ClusterId.$": "$.cluster.ClusterId"}
    assert term["Next"] == "NotifyFailure" and term["Catch"][0]["Next"] == "NotifyFailure"
    notify = states["NotifyFailure"]
    assert notify["Resource"] == "arn:aws:states:::sns:publish"
    assert notify["Parameters"]["TopicArn"] == "${AlertTopicArn}"
    assert notify["Next"] == "PipelineFailed" and notify["Catch"][0]["Next"] == "PipelineFailed"
    assert states["PipelineFailed"]["Type"] == "Fail"
    # states before the cluster exists alert without terminating anything
    for name in ("CheckRunningExecutions", "Ingest", "BuildRunPlan", "CreateCluster"):
        assert states[name]["Catch"][0]["Next"] == "NotifyFailure", name


def test_every_failure_reaches_the_fail_state(asl):
    states = asl["States"]
    for name, state in states.items():
        for catch in state.get("Catch", []):
            assert "PipelineFailed" in reachable(states, catch["Next"]), f"{name} catch does not end in Fail"


def all_tasks(asl):
    for name, state in asl["States"].items():
        yield name, state
        yield from state.get("ItemProcessor", {}).get("States", {}).items()


def test_every_task_has_a_timeout(asl):
    tasks = [(n, s) for n, s in all_tasks(asl) if s["Type"] == "Task"]
    assert len(tasks) >= 9
    for name, state in tasks:
        assert "TimeoutSeconds" in state or "TimeoutSecondsPath" in state, name


def test_spark_steps_are_never_retried(asl):
    for name in ("RunEtl", "RunAnalytics"):
        state = asl["States"][name]
        assert state["Resource"] == "arn:aws:states:::elasticmapreduce:addStep.sync"
        assert "Retry" not in state, name
        assert state["TimeoutSecondsPath"].startswith("$.plan.timeouts.")


def test_lambda_tasks_retry_only_lambda_service_errors(asl):
    lambda_tasks = [s for _, s in all_tasks(asl) if s.get("Resource") == "arn:aws:states:::lambda:invoke"]
    assert len(lambda_tasks) == 2
    for state in lambda_tasks:
        retried = {e for r in state["Retry"] for e in r["ErrorEquals"]}
        assert retried == LAMBDA_SERVICE_ERRORS


def test_the_pipeline_order(asl):
    states = asl["States"]
    order = reachable(states, asl["StartAt"])
    assert order == [
        *GUARD,
        "RecordSkipReason",
        "Ingest",
        "SkippedAnotherRunInProgress",
        "SourcesChanged",
        "BuildRunPlan",
        "NoNewData",
        "CreateCluster",
        "RunEtl",
        "RunAnalytics",
        "TerminateCluster",
        "CreateRefinedTables",
        "Succeeded",
    ]
    assert states["CreateCluster"]["Resource"] == "arn:aws:states:::elasticmapreduce:createCluster.sync"
    inner = states["CreateRefinedTables"]["ItemProcessor"]["States"]["CreateTable"]
    assert inner["Resource"] == "arn:aws:states:::athena:startQueryExecution.sync"
    assert states["CreateRefinedTables"]["ItemsPath"] == "$.plan.athena.queries"


def test_create_cluster_passes_the_whole_request_built_by_create_emr(asl, monkeypatch):
    from covidlake.emr_cluster import EmrSettings, build_run_plan

    monkeypatch.setenv("COVIDLAKE_LAKE_URI", "s3://lake")
    monkeypatch.setenv("COVIDLAKE_EMR_SERVICE_ROLE", "svc")
    monkeypatch.setenv("COVIDLAKE_EMR_INSTANCE_PROFILE", "prof")
    monkeypatch.setenv("COVIDLAKE_EMR_SUBNET_IDS", "subnet-1,subnet-2")
    monkeypatch.setenv("COVIDLAKE_EMR_ADDITIONAL_SECURITY_GROUP_IDS", "sg-1")
    event = json.loads((ROOT / "events" / "create_emr.json").read_text())
    plan = build_run_plan(event, EmrSettings())
    params = asl["States"]["CreateCluster"]["Parameters"]
    assert {k.removesuffix(".$") for k in params} == set(plan["cluster"]), "a request field would be dropped"
    for key, path in params.items():
        assert path == f"$.plan.cluster.{key.removesuffix('.$')}"
    selector = asl["States"]["BuildRunPlan"]["ResultSelector"]
    assert {k.removesuffix(".$") for k in selector} == set(plan) - {"run_id"}
    assert set(plan["steps"]) == {"etl", "analytics"} == set(plan["timeouts"])


def test_every_substitution_is_defined_in_the_template(asl, template):
    used = set(re.findall(r"\$\{(\w+)\}", ASL.read_text()))
    defined = set(template["Resources"]["PipelineStateMachine"]["Properties"]["DefinitionSubstitutions"])
    assert used == defined == {"IngestFunctionArn", "CreateEmrFunctionArn", "AlertTopicArn"}


def test_every_lambda_the_definition_names_exists(asl, template):
    subs = template["Resources"]["PipelineStateMachine"]["Properties"]["DefinitionSubstitutions"]
    named = [
        s["Parameters"]["FunctionName"]
        for _, s in all_tasks(asl)
        if s.get("Resource", "").startswith("arn:aws:states:::lambda")
    ]
    assert named
    for placeholder in named:
        value = subs[placeholder.strip("${}")]
        logical_id = value["Fn::GetAtt"][0]
        res = template["Resources"][logical_id]
        assert res["Type"] == "AWS::Serverless::Function"
        assert res["Properties"]["CodeUri"].startswith("functions/")
    assert "def lambda_handler" in (ROOT / "functions" / "create_emr" / "app.py").read_text()


@pytest.mark.parametrize("mutation", ["drop_catch", "retry_spark", "no_timeout", "guard_not_first", "guard_off_by_one"])
def test_the_structural_checks_fail_on_a_bad_definition(asl, mutation):
    """The checks above are not vacuous: each catches the defect it exists for."""
    bad = json.loads(json.dumps(asl))
    if mutation == "drop_catch":
        del bad["States"]["RunAnalytics"]["Catch"]
        check = test_every_state_after_the_cluster_exists_catches_into_termination
    elif mutation == "retry_spark":
        bad["States"]["RunEtl"]["Retry"] = [{"ErrorEquals": ["States.ALL"]}]
        check = test_spark_steps_are_never_retried
    elif mutation == "no_timeout":
        del bad["States"]["TerminateCluster"]["TimeoutSeconds"]
        check = test_every_task_has_a_timeout
    elif mutation == "guard_not_first":
        bad["StartAt"] = "Ingest"
        check = test_the_guard_comes_first_and_lists_only_running_executions_of_itself
    else:  # "more than zero" would skip every run: this one is always RUNNING
        bad["States"]["AnotherRunInProgress"]["Choices"][0]["NumericGreaterThan"] = 0
        with pytest.raises(AssertionError):
            test_the_guard_decides_by_the_number_of_running_executions(bad, ["me"], "Ingest")
        check = test_the_guard_leads_to_ingest_only_when_alone
    with pytest.raises(AssertionError):
        check(bad)
