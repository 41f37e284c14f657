"""``covidlake smoke --stack NAME``: run a real deployment once and verify it.

With the caller's own AWS credentials: read the stack's outputs, start the state machine
with ``{"force": true}`` (ingest then reprocesses even unchanged sources), print every state
as the execution enters and leaves it, then POST /showResults for every refined table and
check that each answers non-empty rows typed as covidlake/schemas.py declares. Finally the
cluster's minutes (EMR's own timeline) and an *estimate* of what the run cost.

Every check runs even after one fails; the command exits non-zero naming each failure.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import click

REQUIRED_OUTPUTS = ("StateMachineArn", "ApiUrl")
FORCED_INPUT = {"force": True}
CREATE_CLUSTER_STATE = "CreateCluster"
# Estimates from docs/deploy.md ("What one run costs"): assumed us-east-1 m5.xlarge prices,
# EC2 plus the EMR uplift, per node-hour; Step Functions standard transitions.
NODE_HOUR_USD = {"ON_DEMAND": 0.240, "SPOT": 0.118}
PRICED_INSTANCE_TYPE = "m5.xlarge"
TRANSITION_USD = 0.025 / 1000

Echo = Callable[[str], None]


class SmokeFailure(Exception):
    """One or more checks failed; the message names each."""


@dataclass
class ExecutionResult:
    arn: str
    status: str
    states: list[str] = field(default_factory=list)  # in the order they were entered
    outputs: dict[str, Any] = field(default_factory=dict)  # last output of each state
    failure: str | None = None
    transitions: int = 0


@dataclass
class SmokeReport:
    outputs: dict[str, str]
    execution: ExecutionResult
    tables: dict[str, int] = field(default_factory=dict)  # rows returned per table
    cluster_id: str | None = None
    cluster_minutes: float | None = None
    cost_usd: float | None = None
    failures: list[str] = field(default_factory=list)


def stack_outputs(cloudformation, stack: str) -> dict[str, str]:
    from botocore.exceptions import BotoCoreError, ClientError

    from covidlake.preflight import describe_stack

    try:
        outputs = describe_stack(stack, cloudformation).outputs
    except (BotoCoreError, ClientError) as err:  # no such stack, no access, no credentials
        raise SmokeFailure(f"stack {stack}: cannot describe it ({err})") from None
    missing = [k for k in REQUIRED_OUTPUTS if k not in outputs]
    if missing:
        raise SmokeFailure(f"stack {stack}: missing output(s) {', '.join(missing)} (is it a covidlake stack?)")
    return outputs


def _details(event: dict) -> dict:
    return next((v for k, v in event.items() if k.endswith("EventDetails")), {})


def describe_event(event: dict, entered_at: dict[str, datetime]) -> str | None:
    """One line for the events a person follows: states entered and left, and failures."""
    kind, details = event["type"], _details(event)
    name = details.get("name", "")
    if kind.endswith("StateEntered"):
        entered_at[name] = event["timestamp"]
        return f"  -> {name}"
    if kind.endswith("StateExited"):
        seconds = (event["timestamp"] - entered_at.get(name, event["timestamp"])).total_seconds()
        return f"  <- {name} ({seconds:.0f} s)"
    if kind.endswith(("Failed", "TimedOut")) or kind == "ExecutionAborted":
        return f"  !! {kind}: {details.get('error', '')} {details.get('cause', '')}".rstrip()
    return None


def follow_execution(
    sfn,
    execution_arn: str,
    echo: Echo,
    poll_seconds: float = 15.0,
    timeout_seconds: float = 4 * 3600,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ExecutionResult:
    """Print the execution state by state (get_execution_history) until it ends."""
    result = ExecutionResult(execution_arn, "RUNNING")
    seen, entered_at, deadline = 0, {}, clock() + timeout_seconds
    while True:
        status = sfn.describe_execution(executionArn=execution_arn)["status"]
        events = _history(sfn, execution_arn)
        for event in events[seen:]:
            _record(event, result)
            line = describe_event(event, entered_at)
            if line:
                echo(line)
        seen = len(events)
        if status != "RUNNING":
            result.status = status
            return result
        if clock() > deadline:
            result.failure = f"execution still RUNNING after {timeout_seconds / 60:.0f} minutes: {execution_arn}"
            return result
        sleep(poll_seconds)


def _history(sfn, execution_arn: str) -> list[dict]:
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn, includeExecutionData=True)
    return [event for page in pages for event in page["events"]]


def _record(event: dict, result: ExecutionResult) -> None:
    kind, details = event["type"], _details(event)
    if kind.endswith("StateEntered"):
        result.states.append(details["name"])
        result.transitions += 1
    elif kind.endswith("StateExited") and "output" in details:
        with contextlib.suppress(TypeError, ValueError):
            result.outputs[details["name"]] = json.loads(details["output"])
    elif kind in ("ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"):
        where = result.states[-1] if result.states else "start"
        result.failure = f"{kind} at {where}: {details.get('error', '?')}: {details.get('cause', '')}".rstrip(": ")


def execution_failures(result: ExecutionResult) -> list[str]:
    """A forced run must reach Succeeded through the cluster; anything else is named."""
    if result.failure:
        return [f"state machine: {result.failure}"]
    if result.status != "SUCCEEDED":
        return [f"state machine: execution ended {result.status} after {result.states[-1:] or 'no state'}"]
    last = result.states[-1] if result.states else "?"
    if last == "SkippedAnotherRunInProgress":
        cause = result.outputs.get(last, {}).get("cause", "another execution is running")
        return [f"state machine: the run was skipped: {cause}"]
    if CREATE_CLUSTER_STATE not in result.states:
        return [f"state machine: the forced run ended at {last} without starting a cluster"]
    return []


def cluster_id_of(result: ExecutionResult) -> str | None:
    output = result.outputs.get(CREATE_CLUSTER_STATE)
    return (output.get("cluster") or {}).get("ClusterId") if isinstance(output, dict) else None


def check_tables(api_url: str, post: Callable[..., Any] | None = None) -> tuple[dict[str, int], list[str]]:
    """POST /showResults for every refined table: non-empty rows, typed as the schema says."""
    import requests
    from pydantic import ValidationError

    from covidlake.api import ROW_MODELS

    post = post or requests.post
    counts, failures = {}, []
    for table, model in ROW_MODELS.items():
        try:
            response = post(api_url, json={"table": table}, timeout=60)
        except requests.RequestException as err:
            failures.append(f"api {table}: request failed: {err}")
            continue
        if response.status_code != 200:
            failures.append(f"api {table}: HTTP {response.status_code}: {response.text[:200]}")
            continue
        try:
            rows = response.json()
        except ValueError:
            failures.append(f"api {table}: not JSON: {response.text[:200]}")
            continue
        if not isinstance(rows, list) or not rows:
            failures.append(f"api {table}: no rows (got {str(rows)[:100]})")
            continue
        try:
            for row in rows:
                model.model_validate(row, strict=True)
        except ValidationError as err:
            failures.append(f"api {table}: row not typed as the schema says: {err.errors()[0]}")
            continue
        counts[table] = len(rows)
    return counts, failures


def cluster_minutes(emr, cluster_id: str, now: datetime | None = None) -> tuple[float, str]:
    """Minutes from creation to end (or to now, if still up) and the cluster's state."""
    status = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]
    timeline = status.get("Timeline", {})
    end = timeline.get("EndDateTime") or now or datetime.now(UTC)
    return (end - timeline["CreationDateTime"]).total_seconds() / 60, status["State"]


def cost_estimate(emr, cluster_id: str, minutes: float, transitions: int) -> tuple[float, list[str]]:
    """An estimate, not a bill: each node at the assumed m5.xlarge price of its market for the
    cluster's minutes (EMR bills per second, one minute minimum), plus the transitions."""
    pages = emr.get_paginator("list_instances").paginate(ClusterId=cluster_id)
    instances = [i for page in pages for i in page["Instances"]]
    hours = max(minutes, 1.0) / 60
    cost = sum(NODE_HOUR_USD.get(i.get("Market", "ON_DEMAND"), NODE_HOUR_USD["ON_DEMAND"]) for i in instances) * hours
    kinds = sorted({f"{i.get('InstanceType')} {i.get('Market')}" for i in instances})
    notes = [f"{len(instances)} node(s): " + ", ".join(kinds)]
    other = sorted({i.get("InstanceType") for i in instances} - {PRICED_INSTANCE_TYPE})
    if other:
        notes.append(f"priced as {PRICED_INSTANCE_TYPE}: {', '.join(map(str, other))}")
    return cost + transitions * TRANSITION_USD, notes


def run_smoke(
    session,
    stack: str,
    echo: Echo = click.echo,
    poll_seconds: float = 15.0,
    timeout_seconds: float = 4 * 3600,
    post: Callable[..., Any] | None = None,
) -> SmokeReport:
    """The whole smoke test against a deployed stack; raises SmokeFailure naming every failure."""
    outputs = stack_outputs(session.client("cloudformation"), stack)
    sfn = session.client("stepfunctions")
    name = f"smoke-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    started = sfn.start_execution(stateMachineArn=outputs["StateMachineArn"], name=name, input=json.dumps(FORCED_INPUT))
    arn = started["executionArn"]
    echo(f"execution {arn} (input {json.dumps(FORCED_INPUT)})")
    execution = follow_execution(sfn, arn, echo, poll_seconds, timeout_seconds)
    report = SmokeReport(outputs, execution, failures=execution_failures(execution))
    echo(f"execution {execution.status}: {' -> '.join(execution.states)}")

    report.tables, failures = check_tables(outputs["ApiUrl"], post)
    report.failures += failures
    for table, rows in report.tables.items():
        echo(f"  {table}: {rows} rows")

    report.cluster_id = cluster_id_of(execution)
    if report.cluster_id:
        emr = session.client("emr")
        report.cluster_minutes, state = cluster_minutes(emr, report.cluster_id)
        echo(f"cluster {report.cluster_id}: {report.cluster_minutes:.1f} minutes, {state}")
        if not state.startswith("TERMINATED"):
            report.failures.append(f"cluster {report.cluster_id} is still {state} after the execution ended")
        report.cost_usd, notes = cost_estimate(emr, report.cluster_id, report.cluster_minutes, execution.transitions)
        echo(
            f"cost estimate for this run: ${report.cost_usd:.3f} (ESTIMATE from the assumed prices in "
            f"docs/deploy.md, not a bill; {'; '.join(notes)})"
        )
    if report.failures:
        raise SmokeFailure("smoke test failed:\n  " + "\n  ".join(report.failures))
    echo("smoke test passed")
    return report


@click.command("smoke")
@click.option("--stack", required=True, help="the deployed CloudFormation stack name")
@click.option("--region", default=None, help="AWS region [default: your AWS configuration's]")
@click.option("--poll-seconds", type=click.FloatRange(0), default=15.0, show_default=True)
@click.option("--timeout-minutes", type=click.FloatRange(1), default=240.0, show_default=True)
def smoke(stack: str, region: str | None, poll_seconds: float, timeout_minutes: float) -> None:
    """Run a deployed stack once ({"force": true}) and verify it: every state, every refined
    table through the API, cluster minutes and a cost estimate. Uses your AWS credentials."""
    import boto3

    try:
        run_smoke(boto3.Session(region_name=region), stack, click.echo, poll_seconds, timeout_minutes * 60)
    except SmokeFailure as err:
        raise click.ClickException(str(err)) from None
