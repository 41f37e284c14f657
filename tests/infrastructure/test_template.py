"""template.yaml: lints clean, transforms with the SAM translator, and has the properties
a deployment needs (secure bucket, least privilege, nothing account-specific)."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from .conftest import ROOT, TEMPLATE, sam_transform, tool


def run_cfn_lint(path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("cfn-lint"), "--format", "parseable", "--", str(path)], capture_output=True, text=True)


def test_cfn_lint_reports_no_errors_or_warnings():
    proc = run_cfn_lint(TEMPLATE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cfn_lint_does_catch_a_broken_template(tmp_path):
    """Guards the test above against a linter that silently checks nothing."""
    broken = TEMPLATE.read_text().replace("Runtime: python3.12", "Runtime: python2.0", 1)
    broken = broken.replace("Type: AWS::Glue::Database", "Type: AWS::Glue::Databse", 1)
    bad = tmp_path / "template.yaml"
    bad.write_text(broken)
    proc = run_cfn_lint(bad)
    assert proc.returncode != 0
    assert "Databse" in proc.stdout


def test_sam_translator_transforms_the_template(transformed):
    res = transformed["Resources"]
    types = {r["Type"] for r in res.values()}
    assert not any(t.startswith("AWS::Serverless::") for t in types), "untranslated SAM resources remain"
    for expected in (
        "AWS::Lambda::Function",
        "AWS::Lambda::LayerVersion",
        "AWS::StepFunctions::StateMachine",
        "AWS::Scheduler::Schedule",
        "AWS::ApiGatewayV2::Api",
        "AWS::Glue::Database",
        "AWS::Athena::WorkGroup",
        "AWS::CloudWatch::Dashboard",
        "AWS::RDS::DBInstance",
    ):
        assert expected in types, expected
    functions = [r for r in res.values() if r["Type"] == "AWS::Lambda::Function"]
    assert len(functions) == 3
    for fn in functions:
        props = fn["Properties"]
        assert props["Runtime"] == "python3.12"
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert len(props["Layers"]) == 1


def test_sam_translator_rejects_an_invalid_template(template):
    from samtranslator.model.exceptions import InvalidDocumentException

    bad = json.loads(json.dumps(template))
    bad["Resources"]["PipelineStateMachine"]["Properties"]["Events"]["Schedule"]["Properties"]["State"] = 42
    bad["Resources"]["ShowResultsFunction"]["Properties"]["Events"]["ShowResults"]["Properties"]["Method"] = {"x": 1}
    with pytest.raises(InvalidDocumentException):
        sam_transform(bad)


def resources_of(template, type_):
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def test_bucket_is_private_encrypted_versioned_with_lifecycle(template):
    bucket = template["Resources"]["LakeBucket"]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = bucket["LifecycleConfiguration"]["Rules"]
    raw = [r for r in rules if r.get("Prefix") == "raw/"]
    assert raw and raw[0]["Transitions"][0]["TransitionInDays"] == {"Ref": "RawTransitionDays"}
    assert any("NoncurrentVersionExpiration" in r for r in rules)
    assert "BucketName" in bucket and "Fn::If" in bucket["BucketName"], "bucket name must come from a parameter"


def test_bucket_policy_denies_non_tls(template):
    statements = template["Resources"]["LakeBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    deny = [s for s in statements if s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool")]
    assert deny and deny[0]["Condition"]["Bool"] == {"aws:SecureTransport": "false"}
    assert deny[0]["Action"] == "s3:*"


def test_globals_set_powertools_and_the_layer(template):
    glob = template["Globals"]["Function"]
    env = glob["Environment"]["Variables"]
    assert glob["Runtime"] == "python3.12"
    assert glob["Layers"] == [{"Ref": "CovidlakeLayer"}]
    assert "POWERTOOLS_METRICS_NAMESPACE" in env and "POWERTOOLS_LOG_LEVEL" in env
    for logical_id in resources_of(template, "AWS::Serverless::Function"):
        own = template["Resources"][logical_id]["Properties"]["Environment"]["Variables"]
        assert own.get("POWERTOOLS_SERVICE_NAME"), logical_id


def test_layer_is_built_by_its_makefile(template):
    layer = template["Resources"]["CovidlakeLayer"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    content = ROOT / layer["Properties"]["ContentUri"]
    makefile = (content / "Makefile").read_text()
    assert "build-CovidlakeLayer:" in makefile
    assert "--python-version 3.12" in makefile and "--only-binary=:all:" in makefile
    assert (content / "covidlake" / "schemas.py").exists(), "layer/covidlake must point at the package"


def test_every_function_has_a_log_group_with_retention(template):
    groups = resources_of(template, "AWS::Logs::LogGroup")
    named = {json.dumps(g["Properties"].get("LogGroupName")) for g in groups.values()}
    for logical_id in resources_of(template, "AWS::Serverless::Function"):
        assert json.dumps({"Fn::Sub": f"/aws/lambda/${{{logical_id}}}"}) in named, logical_id
    for g in groups.values():
        assert g["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def _statements(policy_holder) -> list[dict]:
    out = []
    for policy in policy_holder:
        if isinstance(policy, dict) and "Statement" in policy:
            out.extend(policy["Statement"])
        elif isinstance(policy, dict) and "PolicyDocument" in policy:
            out.extend(policy["PolicyDocument"]["Statement"])
    return out


# "*" is allowed only where the service has no resource-level permission, and then
# only for these statement ids (each has a comment in the template saying why):
# RunJobFlow (no cluster ARN before it exists; restricted by the stack tag), the
# CloudWatch Logs delivery APIs and X-Ray (no resource types at all), and
# cloudwatch:PutMetricData (no resource types; restricted by the cloudwatch:namespace
# condition to the pipeline's namespace), and elasticmapreduce:ListClusters (no resource
# types; create_emr then describes and terminates only clusters with the stack's tag).
STAR_ALLOWED = {
    "CreateTaggedCluster",
    "ExecutionLogDelivery",
    "XRayTraces",
    "PublishQualityMetrics",
    "FindLeftoverClusters",
}
# ...and those that can be narrowed by a condition must be.
STAR_CONDITIONS = {
    "CreateTaggedCluster": "aws:RequestTag/covidlake:stack",
    "PublishQualityMetrics": "cloudwatch:namespace",
}


def test_no_star_resource_where_a_narrower_one_exists(template):
    checked = 0
    for logical_id, res in template["Resources"].items():
        props = res.get("Properties", {})
        holders = props.get("Policies", [])
        if not isinstance(holders, list):
            continue
        for st in _statements(holders):
            checked += 1
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            if "*" in resources:
                assert st.get("Sid") in STAR_ALLOWED, f"{logical_id}: {st}"
                key = STAR_CONDITIONS.get(st["Sid"])
                if key:
                    assert key in st.get("Condition", {}).get("StringEquals", {}), f"{logical_id}: {st}"
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            assert not any(a == "*" or a.endswith(":*") for a in actions), f"{logical_id}: wildcard action {actions}"
    assert checked > 15
    tagged = [
        s
        for s in _statements(template["Resources"]["PipelineStateMachineRole"]["Properties"]["Policies"])
        if s.get("Sid") == "CreateTaggedCluster"
    ]
    assert tagged[0]["Condition"]["StringEquals"], "RunJobFlow on * must be restricted by the stack tag"


def test_state_machine_may_list_only_its_own_executions(template, transformed):
    """The one-run-at-a-time guard: states:ListExecutions on this state machine's ARN,
    built from its fixed name (no !Ref/!GetAtt of itself: that would be circular)."""
    sm = template["Resources"]["PipelineStateMachine"]["Properties"]
    assert sm["Name"] == {"Fn::Sub": "${AWS::StackName}-pipeline"}
    statements = _statements(template["Resources"]["PipelineStateMachineRole"]["Properties"]["Policies"])
    listing = [s for s in statements if "states:ListExecutions" in json.dumps(s["Action"])]
    assert len(listing) == 1
    st = listing[0]
    assert st["Sid"] == "ListOwnRunningExecutions" and st["Effect"] == "Allow"
    assert st["Action"] == "states:ListExecutions"
    arn = st["Resource"]["Fn::Sub"]
    assert "*" not in arn and "PipelineStateMachine" not in arn
    assert arn == "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:" + sm["Name"]["Fn::Sub"]
    # after the SAM transform: the name is on the CloudFormation resource and the policy
    # still names exactly that ARN
    res = transformed["Resources"]
    assert res["PipelineStateMachine"]["Properties"]["StateMachineName"] == sm["Name"]
    role_policies = json.dumps(res["PipelineStateMachineRole"]["Properties"]["Policies"])
    assert json.dumps(st["Resource"]) in role_policies


def test_nothing_account_specific_is_hard_coded():
    text = TEMPLATE.read_text()
    assert not re.search(r"(?<![\d.])\d{12}(?![\d.])", text), "an account id"
    assert not re.search(r"\b(subnet|sg|vpc)-[0-9a-f]{8,}", text), "a subnet/security group/VPC id"
    assert not re.search(r"arn:aws:(?!iam::aws:policy)", text), "a literal ARN: use ${AWS::Partition} and parameters"
    mine = ("covidlake/emr_cluster.py", "covidlake/athena_ddl.py", "functions/create_emr/app.py")
    code = "\n".join((ROOT / p).read_text() for p in mine)
    assert not re.search(r"\d{12}|subnet-[0-9a-f]|sg-[0-9a-f]|s3://(?!bucket\b)[a-z0-9]", code)


def test_database_is_either_existing_or_created_private_encrypted_managed(template):
    db = template["Resources"]["Database"]
    assert db["Condition"] == "CreateDatabase"
    assert template["Conditions"]["CreateDatabase"] == {"Fn::Equals": [{"Ref": "DbHost"}, ""]}
    props = db["Properties"]
    assert props["StorageEncrypted"] is True
    assert props["PubliclyAccessible"] is False
    assert props["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in props
    assert props["DBInstanceClass"] == {"Ref": "DbInstanceClass"}
    assert template["Parameters"]["DbInstanceClass"]["Default"].endswith(".micro")
    env = template["Resources"]["IngestFunction"]["Properties"]["Environment"]["Variables"]
    assert env["COVIDLAKE_DB_SECRET_ARN"]["Fn::If"][0] == "CreateDatabase"
    created_host = {"Fn::GetAtt": ["Database", "Endpoint.Address"]}
    assert env["COVIDLAKE_DB_HOST"]["Fn::If"] == ["CreateDatabase", created_host, {"Ref": "DbHost"}]
    assert template["Resources"]["IngestFunction"]["Properties"]["VpcConfig"]["SubnetIds"] == {"Ref": "SubnetIds"}


def test_state_machine_schedule_and_substitutions(template):
    sm = template["Resources"]["PipelineStateMachine"]["Properties"]
    assert sm["DefinitionUri"] == "statemachine/pipeline.asl.json"
    schedule = sm["Events"]["Schedule"]
    assert schedule["Type"] == "ScheduleV2"
    assert schedule["Properties"]["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    # on only when enabled and not replaced by the EventBridge rule (ScheduleService=rule)
    assert schedule["Properties"]["State"] == {"Fn::If": ["SchedulerOn", "ENABLED", "DISABLED"]}
    assert template["Conditions"]["SchedulerOn"] == {
        "Fn::And": [{"Condition": "ScheduleOn"}, {"Fn::Not": [{"Condition": "ScheduleByRule"}]}]
    }
    rule = template["Resources"]["PipelineScheduleRule"]
    assert rule["Condition"] == "ScheduleByRule"
    assert rule["Properties"]["State"] == {"Fn::If": ["ScheduleOn", "ENABLED", "DISABLED"]}
    assert rule["Properties"]["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    assert sm["Tracing"] == {"Enabled": True}


def test_http_api_route_cors_and_throttling(template, transformed):
    api = template["Resources"]["HttpApi"]["Properties"]
    assert {"POST", "OPTIONS"} <= set(api["CorsConfiguration"]["AllowMethods"])
    assert api["DefaultRouteSettings"]["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    assert api["DefaultRouteSettings"]["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}
    body = transformed["Resources"]["HttpApi"]["Properties"]["Body"]
    assert "post" in body["paths"]["/showResults"]


def test_athena_workgroup_encrypted_with_cutoff(template):
    wg = template["Resources"]["AthenaWorkGroup"]["Properties"]["WorkGroupConfiguration"]
    assert wg["EnforceWorkGroupConfiguration"] is True
    assert wg["BytesScannedCutoffPerQuery"] == {"Ref": "AthenaBytesScannedCutoff"}
    assert wg["ResultConfiguration"]["EncryptionConfiguration"]["EncryptionOption"] in ("SSE_S3", "SSE_KMS")
    assert wg["ResultConfiguration"]["OutputLocation"] == {"Fn::Sub": "s3://${LakeBucket}/athena-results/"}
    assert template["Parameters"]["AthenaDatabaseName"]["Default"] == "covid_analytics"


def test_emr_roles_are_created_or_taken_from_parameters(template):
    for logical_id in ("EmrServiceRole", "EmrInstanceRole", "EmrInstanceProfile"):
        assert template["Resources"][logical_id]["Condition"] == "CreateEmrRoles"
    env = template["Resources"]["CreateEmrFunction"]["Properties"]["Environment"]["Variables"]
    service, profile = env["COVIDLAKE_EMR_SERVICE_ROLE"]["Fn::If"], env["COVIDLAKE_EMR_INSTANCE_PROFILE"]["Fn::If"]
    assert service[:2] == ["CreateEmrRoles", {"Ref": "EmrServiceRole"}]
    assert profile[:2] == ["CreateEmrRoles", {"Ref": "EmrInstanceProfile"}]
    # not created: the shared EMR roles under ExistingExecutionRoleName, else the given ones
    assert service[2] == {
        "Fn::If": ["UseExecutionRole", {"Ref": "SharedEmrServiceRole"}, {"Ref": "ExistingEmrServiceRoleArn"}]
    }
    assert profile[2] == {
        "Fn::If": ["UseExecutionRole", {"Ref": "SharedEmrInstanceProfile"}, {"Ref": "ExistingEmrInstanceProfileArn"}]
    }


def _dashboard(template) -> dict:
    body, variables = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    fake = {
        "AWS::Region": "us-east-1",
        "PipelineStateMachine": "arn:sm",
        "IngestFunction": "fn-ingest",
        "CreateEmrFunction": "fn-emr",
        "ShowResultsFunction": "fn-show",
        "HttpApi": "api123",
        **variables,
    }
    text = re.sub(r"\$\{([^}!]+)\}", lambda m: fake[m.group(1)], body)
    return json.loads(text)


def test_dashboard_is_valid_json_with_the_required_metrics(template):
    dash = _dashboard(template)
    flat = json.dumps(dash)
    for metric in (
        "ExecutionsFailed",
        "ExecutionTime",
        '"Errors"',
        '"Duration"',
        '"Count"',
        '"4xx"',
        '"5xx"',
        '"Latency"',
        "RowsIngested_covid_data",
        "RowsRejected",
        'MetricName=\\"Changed\\"',
    ):
        assert metric in flat, metric
    assert '"ApiId", "api123"' in flat


def test_alarms_publish_to_the_alert_topic(template):
    alarms = resources_of(template, "AWS::CloudWatch::Alarm")
    assert {"PipelineFailedAlarm", "Api5xxAlarm", "LambdaErrorsAlarm"} <= set(alarms)
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlertTopic"}]
    lambda_errors = json.dumps(alarms["LambdaErrorsAlarm"]["Properties"]["Metrics"])
    for fn in ("IngestFunction", "CreateEmrFunction", "ShowResultsFunction"):
        assert fn in lambda_errors


def test_every_parameter_is_used_and_documented(template):
    text = json.dumps(template["Resources"]) + json.dumps(template["Conditions"]) + json.dumps(template.get("Globals"))
    docs = (ROOT / "docs" / "deploy.md").read_text()
    for name in template["Parameters"]:
        assert re.search(rf'"Ref": "{name}"|\$\{{{name}\}}', text), f"parameter {name} is unused"
        assert f"`{name}`" in docs, f"parameter {name} is not documented in docs/deploy.md"


def test_samconfig_has_no_account_specific_values():
    text = (ROOT / "samconfig.toml").read_text()
    assert 'stack_name = "covidlake"' in text
    assert not re.search(r"\d{12}|subnet-|vpc-|sg-", text)


def test_functions_carry_no_dependencies_of_their_own():
    """Everything comes from the layer. A requirements.txt in a function folder (even one
    holding only a comment) makes `sam build` insist on a local python3.12 or Docker."""
    extra = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "functions").glob("*/requirements.txt"))
    assert not extra, f"delete {extra}: the Lambda dependencies belong in layer/requirements.txt"
