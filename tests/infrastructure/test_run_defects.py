"""Defects once found in the AWS path: each fails a test here when it
comes back (the ETL's metrics region and the missing-prerequisite errors are tested in
tests/integration/test_run_prerequisites.py, preflight in test_preflight.py)."""

from __future__ import annotations

import ast
import itertools
import json
import re

import pytest

from covidlake.emr_cluster import EmrSettings
from covidlake.settings import Settings

from .conftest import ROOT, function_env, sam_transform

# --- the schedule ----------------------------------------------------------------------


def schedules(transformed: dict) -> dict:
    return {k: r for k, r in transformed["Resources"].items() if r["Type"] == "AWS::Scheduler::Schedule"}


def test_the_schedule_is_named_per_stack(template, transformed):
    """Schedule names are unique per account and region: a fixed one collides between stacks."""
    (schedule,) = schedules(transformed).values()
    name = schedule["Properties"]["Name"]
    assert "${AWS::StackName}" in json.dumps(name), name
    assert len(re.sub(r"\$\{AWS::StackName\}", "x" * 55, name["Fn::Sub"])) <= 64
    # negative control: without the Name property SAM names it after the logical ids only
    bare = json.loads(json.dumps(template))
    del bare["Resources"]["PipelineStateMachine"]["Properties"]["Events"]["Schedule"]["Properties"]["Name"]
    (default,) = schedules(sam_transform(bare)).values()
    assert "AWS::StackName" not in json.dumps(default["Properties"].get("Name", "fixed"))


def test_the_schedule_is_off_until_the_prerequisites_exist(template):
    assert template["Parameters"]["ScheduleEnabled"]["Default"] == "false"
    assert "preflight" in template["Parameters"]["ScheduleEnabled"]["Description"]


# --- parameters that only work together ------------------------------------------------


def evaluate(expr, params: dict):
    """The rule functions the template's Rules use."""
    if not isinstance(expr, dict):
        return expr
    ((fn, arg),) = expr.items()
    if fn == "Ref":
        return params[arg]
    if fn == "Fn::Equals":
        return evaluate(arg[0], params) == evaluate(arg[1], params)
    if fn == "Fn::Not":
        return not evaluate(arg[0], params)
    if fn == "Fn::And":
        return all(evaluate(a, params) for a in arg)
    if fn == "Fn::Or":
        return any(evaluate(a, params) for a in arg)
    raise ValueError(f"unsupported rule function {fn}")


def rule_failures(template: dict, **values) -> list[str]:
    """AssertDescriptions CloudFormation would answer for these parameter values."""
    params = {k: v.get("Default", "") for k, v in template["Parameters"].items()} | values
    out = []
    for rule in template["Rules"].values():
        if "RuleCondition" in rule and not evaluate(rule["RuleCondition"], params):
            continue
        out += [a["AssertDescription"] for a in rule["Assertions"] if not evaluate(a["Assert"], params)]
    return out


@pytest.mark.parametrize(("host", "secret"), list(itertools.product(["", "db.example.org"], ["", "arn:secret"])))
def test_db_host_and_secret_come_together_or_not_at_all(template, host, secret):
    failures = rule_failures(template, DbHost=host, DbSecretArn=secret)
    if bool(host) == bool(secret):
        assert failures == []
    else:
        assert len(failures) == 1 and "DbHost and DbSecretArn go together" in failures[0]


ROLE_PARAMS = ("ExistingEmrServiceRoleArn", "ExistingEmrInstanceProfileArn", "ExistingEmrInstanceRoleArn")


@pytest.mark.parametrize("given", list(itertools.product([False, True], repeat=3)))
def test_existing_emr_roles_all_or_none(template, given):
    failures = rule_failures(template, **{p: f"arn:{p}" if g else "" for p, g in zip(ROLE_PARAMS, given, strict=True)})
    if len(set(given)) == 1:
        assert failures == []
    else:
        assert len(failures) == 1 and all(p in failures[0] for p in ROLE_PARAMS)


def test_sam_keeps_the_rules(transformed, template):
    assert transformed["Rules"] == template["Rules"]


# --- timeouts, storage, logging --------------------------------------------------------


def test_ingest_state_waits_longer_than_the_lambda_may_run(template, asl):
    lambda_timeout = template["Resources"]["IngestFunction"]["Properties"]["Timeout"]
    assert asl["States"]["Ingest"]["TimeoutSeconds"] >= lambda_timeout + 30, (
        "a state timeout at or under the Lambda's cuts a run that is about to succeed"
    )


def test_ingest_tmp_holds_the_largest_download_allowed(template):
    props = template["Resources"]["IngestFunction"]["Properties"]
    tmp_bytes = props["EphemeralStorage"]["Size"] * 1024**2
    env = function_env(template, "IngestFunction")
    limit = Settings(max_download_bytes=env["COVIDLAKE_MAX_DOWNLOAD_BYTES"]).max_download_bytes
    assert tmp_bytes >= limit + 64 * 1024**2, "the download limit must fail first, not a full /tmp"
    # negative control: without the explicit limit the default (2 GiB) would not fit
    assert tmp_bytes < Settings().max_download_bytes


def test_handlers_leave_event_logging_to_the_globals(template):
    assert template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"
    for app in sorted((ROOT / "functions").glob("*/app.py")):
        for node in ast.walk(ast.parse(app.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "log_event":
                pytest.fail(f"{app.relative_to(ROOT)} sets log_event= and overrides POWERTOOLS_LOGGER_LOG_EVENT")


# --- a stuck execution -----------------------------------------------------------------

MAIN_PATH = ("CheckRunningExecutions", "Ingest", "BuildRunPlan", "CreateCluster", "TerminateCluster", "NotifyFailure")


def test_a_stuck_execution_times_out_before_the_next_scheduled_run(template, asl):
    timeout = asl["TimeoutSeconds"]
    rate = re.fullmatch(r"rate\((\d+) days?\)", template["Parameters"]["ScheduleExpression"]["Default"])
    assert timeout < int(rate.group(1)) * 86400
    # ... and after the longest healthy run: every state's own timeout, the steps at their maximum
    step_max = template["Parameters"]["EmrStepTimeoutSeconds"]["MaxValue"]
    assert EmrSettings.model_fields["emr_step_timeout_seconds"].metadata[-1].le == step_max
    tables = asl["States"]["CreateRefinedTables"]
    athena = tables["ItemProcessor"]["States"]["CreateTable"]["TimeoutSeconds"] * -(-7 // tables["MaxConcurrency"])
    longest = sum(asl["States"][s]["TimeoutSeconds"] for s in MAIN_PATH) + 2 * step_max + athena
    assert timeout >= longest


def pattern_terms(pattern: str) -> dict[str, str]:
    """`{ ($.a.b = "x") && ($.c = "y") }` -> {"a.b": "x", "c": "y"} (the form the filter uses)."""
    terms = re.findall(r'\(\$\.([\w.]+) = "([^"]*)"\)', pattern)
    assert pattern.count("&&") == len(terms) - 1 and "||" not in pattern
    return dict(terms)


def matches(terms: dict[str, str], event: dict) -> bool:
    def get(path):
        value = event
        for part in path.split("."):
            value = value.get(part, {}) if isinstance(value, dict) else {}
        return value

    return all(get(path) == want for path, want in terms.items())


def log_event(state: str, state_type: str) -> dict:
    """A Step Functions execution log event at level ALL without execution data."""
    return {
        "id": "7",
        "type": f"{state_type}StateEntered",
        "details": {"name": state},
        "execution_arn": "arn:aws:states:us-east-1:000000000000:execution:sm:run",
    }


def test_every_skipped_run_is_counted_and_alarms(template, asl):
    resources = template["Resources"]
    machine = resources["PipelineStateMachine"]["Properties"]
    assert machine["Logging"]["Level"] == "ALL" and machine["Logging"]["IncludeExecutionData"] is False
    skip_state = asl["States"]["RecordSkipReason"]["Next"]
    assert asl["States"][skip_state]["Type"] == "Succeed"
    flt = resources["SkippedRunsFilter"]["Properties"]
    assert flt["LogGroupName"] == {"Ref": "PipelineLogGroup"}
    terms = pattern_terms(flt["FilterPattern"])
    assert matches(terms, log_event(skip_state, "Succeed"))
    assert not matches(terms, log_event("NoNewData", "Succeed"))
    assert not matches(terms, log_event("Succeeded", "Succeed"))
    (metric,) = flt["MetricTransformations"]
    alarm = resources["SkippedRunsAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (metric["MetricNamespace"], metric["MetricName"])
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["AlarmActions"] == [{"Ref": "AlertTopic"}]
    assert "${AWS::StackName}" in json.dumps(metric["MetricNamespace"]), "two stacks must not share the count"


# --- networking --------------------------------------------------------------------------


def test_subnet_description_names_what_needs_the_nat_route_and_the_tag(template):
    text = " ".join(template["Parameters"]["SubnetIds"]["Description"].split())
    for needed in (
        "NAT gateway",
        "SourceUrl",
        "pip install",
        "for-use-with-amazon-emr-managed-policies=true",
        "make preflight",
    ):
        assert needed in text, needed


# --- the first-deploy guide ----------------------------------------------------------------

FIRST_DEPLOY_ORDER = (
    "Tag the subnets",
    "NAT route",
    "Deploy",
    "Upload the jobs",
    "Load `country_data`",
    "Check",
    "enable the schedule",
)


def test_the_guide_lists_prerequisites_in_the_order_a_first_deployer_meets_them(template):
    text = (ROOT / "docs" / "deploy.md").read_text()
    section = text.split("## First deployment, in order", 1)[1].split("\n## ", 1)[0]
    steps = re.findall(r"^\d+\. \*\*(.+?)\*\*", section, flags=re.M)
    assert len(steps) == len(FIRST_DEPLOY_ORDER), steps
    for step, expected in zip(steps, FIRST_DEPLOY_ORDER, strict=True):
        assert expected in step, (step, expected)
    deploy = next(i for i, s in enumerate(steps) if s.startswith("Deploy"))
    assert "`ScheduleEnabled` defaults to `false`" in section.split(f"{deploy + 1}. **", 1)[1].split("\n4. ")[0]
    assert "make preflight STACK=" in section
