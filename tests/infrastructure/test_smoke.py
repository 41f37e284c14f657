"""`covidlake smoke --stack NAME` against moto: stack outputs from moto CloudFormation, the
execution run by moto's Step Functions executor (a stand-in definition with the pipeline's
state names: moto cannot run the real one's .sync tasks), the cluster in moto EMR, and the
API a real HTTP server on 127.0.0.1 (covidlake serve over a sample lake)."""

from __future__ import annotations

import json
import shutil
import threading

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from covidlake.cli import cli
from covidlake.schemas import REFINED_TABLES
from covidlake.smoke import SmokeFailure, run_smoke
from tests.unit.api.sample_lake import write_sample_lake

REGION = "us-east-1"
STACK = "covidlake-smoke"


@pytest.fixture
def lake(tmp_path):
    rows = write_sample_lake(tmp_path / "lake")
    return tmp_path / "lake", rows


@pytest.fixture
def api_url(lake):
    """POST /showResults of a real local server over the sample lake."""
    from covidlake.api.serve import make_server

    server = make_server(str(lake[0]), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}/showResults"
    server.shutdown()
    server.server_close()


def pass_state(next_state: str | None, result: dict | None = None, result_path: str | None = None) -> dict:
    state: dict = {"Type": "Pass", **({"Next": next_state} if next_state else {"End": True})}
    if result is not None:
        state.update(Result=result, ResultPath=result_path)
    return state


def stand_in(cluster_id: str, ending: str = "Succeeded") -> dict:
    """The pipeline's states on the new-data path as Pass states (and the same output shape
    at CreateCluster), ending as asked: Succeeded, PipelineFailed (Fail) or NoNewData."""
    states = {
        "CheckRunningExecutions": pass_state("Ingest"),
        "Ingest": pass_state("SourcesChanged", {"changed": ending != "NoNewData"}, "$.ingest"),
        "SourcesChanged": {
            "Type": "Choice",
            "Default": "NoNewData",
            "Choices": [{"Variable": "$.ingest.changed", "BooleanEquals": True, "Next": "CreateCluster"}],
        },
        "NoNewData": {"Type": "Succeed"},
        "CreateCluster": pass_state("RunEtl", {"ClusterId": cluster_id}, "$.cluster"),
        "RunEtl": pass_state("PipelineFailed" if ending == "PipelineFailed" else "TerminateCluster"),
        "TerminateCluster": pass_state("Succeeded"),
        "Succeeded": {"Type": "Succeed"},
        "PipelineFailed": {"Type": "Fail", "Error": "PipelineFailed", "Cause": "RunEtl: States.TaskFailed"},
    }
    return {"StartAt": "CheckRunningExecutions", "States": states}


@pytest.fixture
def deploy(aws, api_url):
    """deploy(ending=..., terminate=True, outputs=None) -> a moto 'stack' to smoke-test."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):

        def make(ending: str = "Succeeded", terminate: bool = True, outputs: dict | None = None) -> boto3.Session:
            session = boto3.Session(region_name=REGION)
            emr = session.client("emr")
            cluster_id = emr.run_job_flow(
                Name="covidlake-run",
                ReleaseLabel="emr-7.5.0",
                ServiceRole="svc",
                JobFlowRole="prof",
                Instances={
                    "KeepJobFlowAliveWhenNoSteps": True,
                    "InstanceGroups": [
                        {
                            "InstanceRole": "MASTER",
                            "InstanceType": "m5.xlarge",
                            "InstanceCount": 1,
                            "Market": "ON_DEMAND",
                        },
                        {"InstanceRole": "CORE", "InstanceType": "m5.xlarge", "InstanceCount": 2, "Market": "SPOT"},
                    ],
                },
            )["JobFlowId"]
            if terminate:
                emr.terminate_job_flows(JobFlowIds=[cluster_id])
            sfn = session.client("stepfunctions")
            definition = json.dumps(stand_in(cluster_id, ending))
            machine = sfn.create_state_machine(
                name=f"{STACK}-pipeline", definition=definition, roleArn="arn:aws:iam::123456789012:role/sfn"
            )["stateMachineArn"]
            values = outputs if outputs is not None else {"StateMachineArn": machine, "ApiUrl": api_url}
            template = {
                "Resources": {"AlertTopic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {k: {"Value": v} for k, v in values.items()},
            }
            session.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(template))
            make.cluster_id, make.machine = cluster_id, machine
            return session

        yield make


def smoke(session, lines: list[str] | None = None, **kwargs):
    out = lines if lines is not None else []
    return run_smoke(session, STACK, out.append, poll_seconds=0.05, timeout_seconds=120, **kwargs)


def test_a_healthy_stack_passes_state_by_state(deploy, lake):
    session = deploy()
    lines: list[str] = []
    report = smoke(session, lines)
    path = [
        "CheckRunningExecutions",
        "Ingest",
        "SourcesChanged",
        "CreateCluster",
        "RunEtl",
        "TerminateCluster",
        "Succeeded",
    ]
    assert report.execution.status == "SUCCEEDED" and report.execution.states == path
    followed = [line.strip() for line in lines if line.strip().startswith(("->", "<-"))]
    assert followed[::2] == [f"-> {s}" for s in path], "each state printed as it is entered"
    assert [line.split(" (")[0] for line in followed[1::2]] == [f"<- {s}" for s in path], "and as it is left"
    started = session.client("stepfunctions").describe_execution(executionArn=report.execution.arn)
    assert json.loads(started["input"]) == {"force": True}
    assert started["name"].startswith("smoke-") and report.execution.arn.endswith(started["name"])
    assert report.tables == {t: len(rows) for t, rows in lake[1].items()}
    assert set(report.tables) == set(REFINED_TABLES)
    assert report.cluster_id == deploy.cluster_id and report.cluster_minutes is not None
    # 3 m5.xlarge nodes (1 on-demand, 2 spot) for at least the one-minute minimum
    assert report.cost_usd >= (0.240 + 2 * 0.118) / 60
    assert any("cost estimate" in line and "ESTIMATE" in line for line in lines)
    assert lines[-1] == "smoke test passed"


def test_the_cli_command_exits_zero_on_a_healthy_stack(deploy):
    deploy()
    result = CliRunner().invoke(cli, ["smoke", "--stack", STACK, "--poll-seconds", "0.05", "--region", REGION])
    assert result.exit_code == 0, result.output
    assert "-> CreateCluster" in result.output and "smoke test passed" in result.output


@pytest.mark.parametrize(
    ("case", "named"),
    [
        ("execution_failed", "ExecutionFailed at PipelineFailed: PipelineFailed: RunEtl: States.TaskFailed"),
        ("no_new_data", "the forced run ended at NoNewData without starting a cluster"),
        ("cluster_left_running", "is still WAITING after the execution ended"),
        ("table_missing", "api clusters: HTTP"),
        ("missing_output", "missing output(s) ApiUrl"),
    ],
)
def test_each_failure_exits_non_zero_naming_it(deploy, lake, case, named):
    if case == "execution_failed":
        deploy(ending="PipelineFailed")
    elif case == "no_new_data":
        deploy(ending="NoNewData")
    elif case == "cluster_left_running":
        deploy(terminate=False)
    elif case == "table_missing":
        deploy()
        shutil.rmtree(lake[0] / "refined" / "clusters")
    else:
        deploy(outputs={"StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:x"})
    result = CliRunner().invoke(cli, ["smoke", "--stack", STACK, "--poll-seconds", "0.05", "--region", REGION])
    assert result.exit_code != 0
    assert named in result.output, result.output


class FakeResponse:
    status_code = 200

    def __init__(self, rows):
        self.rows, self.text = rows, json.dumps(rows)

    def json(self):
        return self.rows


def test_numbers_as_strings_fail_the_typed_row_check(deploy):
    """The API must answer typed values: "57" where the schema says bigint is a failure."""
    session = deploy()

    def post(url, json, timeout):
        if json["table"] == "continent_stats":
            return FakeResponse([{"continent": "Africa", "countries": "57"}])
        import requests

        return requests.post(url, json=json, timeout=timeout)

    with pytest.raises(SmokeFailure, match=r"api continent_stats: row not typed as the schema says"):
        smoke(session, post=post)
