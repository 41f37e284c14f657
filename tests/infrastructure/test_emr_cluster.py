"""covidlake.emr_cluster: the createCluster request is a valid RunJobFlow request (botocore's
model and moto's EMR accept it), the steps carry s3:// paths, and settings come from the
template's environment, never from code."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ParamValidationError
from moto import mock_aws
from pydantic import ValidationError

from covidlake.athena_ddl import refined_table_ddl
from covidlake.emr_cluster import EmrSettings, build_run_plan
from covidlake.schemas import REFINED_TABLES

from .conftest import ROOT, function_env

EVENT = json.loads((ROOT / "events" / "create_emr.json").read_text())


@pytest.fixture
def emr_env(template, monkeypatch, aws):
    """The create_emr function's environment exactly as template.yaml sets it."""
    env = function_env(template, "CreateEmrFunction")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def plan(emr_env):
    return build_run_plan(EVENT, EmrSettings())


def test_the_template_environment_is_valid_settings(emr_env):
    s = EmrSettings()
    assert s.lake_uri == "s3://lake-bucket-for-tests"
    assert s.emr_release_label.startswith("emr-7.")
    assert s.emr_subnet_ids == "subnet-aaaa1111,subnet-bbbb2222"
    assert s.athena_database == "covid_analytics"


def test_request_shape(plan, emr_env):
    req = plan["cluster"]
    assert req["ReleaseLabel"].startswith("emr-7.")
    assert req["Applications"] == [{"Name": "Spark"}, {"Name": "Hadoop"}]
    assert "Steps" not in req, "createCluster does not allow Steps"
    inst = req["Instances"]
    assert inst["KeepJobFlowAliveWhenNoSteps"] is True, "required by the Step Functions integration"
    assert inst["Ec2SubnetIds"] == ["subnet-aaaa1111", "subnet-bbbb2222"]
    assert req["AutoTerminationPolicy"] == {"IdleTimeout": 3600}
    assert req["LogUri"] == "s3://lake-bucket-for-tests/emr-logs/"
    assert req["BootstrapActions"][0]["ScriptBootstrapAction"]["Path"] == "s3://lake-bucket-for-tests/code/bootstrap.sh"
    assert req["ServiceRole"] == "covidlake-EmrServiceRole-TEST"
    assert req["JobFlowRole"] == "covidlake-EmrInstanceProfile-TEST"
    tags = {t["Key"]: t["Value"] for t in req["Tags"]}
    assert tags["for-use-with-amazon-emr-managed-policies"] == "true"
    assert tags["covidlake:stack"] == "covidlake-tests", "the state machine's RunJobFlow permission needs this tag"
    assert tags["covidlake:run-id"] == EVENT["run_id"]


def test_core_fleet_is_spot_with_on_demand_fallback(plan):
    fleets = {f["InstanceFleetType"]: f for f in plan["cluster"]["Instances"]["InstanceFleets"]}
    assert set(fleets) == {"MASTER", "CORE"}
    core = fleets["CORE"]
    assert core["TargetSpotCapacity"] == 2 and core["TargetOnDemandCapacity"] == 0
    spot = core["LaunchSpecifications"]["SpotSpecification"]
    assert spot["TimeoutAction"] == "SWITCH_TO_ON_DEMAND"
    assert len(core["InstanceTypeConfigs"]) >= 2, "several types improve spot availability"
    primary = fleets["MASTER"]
    assert primary["TargetOnDemandCapacity"] == 1 and primary["TargetSpotCapacity"] == 0


def test_sizes_and_counts_follow_settings(emr_env, monkeypatch):
    monkeypatch.setenv("COVIDLAKE_EMR_CORE_CAPACITY", "5")
    monkeypatch.setenv("COVIDLAKE_EMR_CORE_ON_DEMAND_CAPACITY", "2")
    monkeypatch.setenv("COVIDLAKE_EMR_CORE_INSTANCE_TYPES", "r5.2xlarge")
    monkeypatch.setenv("COVIDLAKE_EMR_PRIMARY_ON_DEMAND", "false")
    request = build_run_plan(EVENT, EmrSettings())["cluster"]
    fleets = {f["InstanceFleetType"]: f for f in request["Instances"]["InstanceFleets"]}
    assert (fleets["CORE"]["TargetOnDemandCapacity"], fleets["CORE"]["TargetSpotCapacity"]) == (2, 3)
    assert [c["InstanceType"] for c in fleets["CORE"]["InstanceTypeConfigs"]] == ["r5.2xlarge"]
    assert (fleets["MASTER"]["TargetOnDemandCapacity"], fleets["MASTER"]["TargetSpotCapacity"]) == (0, 1)


def test_steps_spark_submit_with_s3_paths(plan):
    etl = plan["steps"]["etl"]["HadoopJarStep"]
    assert etl["Jar"] == "command-runner.jar"
    assert etl["Args"] == [
        "spark-submit",
        "--deploy-mode",
        "cluster",
        "--py-files",
        "s3://lake-bucket-for-tests/code/covidlake.zip",
        "s3://lake-bucket-for-tests/code/emr/etl.py",
        "--lake",
        "s3://lake-bucket-for-tests",
        "--covid-csv",
        EVENT["inputs"]["covid_csv"],
        "--country-csv",
        EVENT["inputs"]["country_csv"],
        "--run-id",
        EVENT["run_id"],
        "--manifest-key",
        f"raw/_manifests/{EVENT['run_id']}.json",
        "--metrics-region",
        "us-east-1",  # the Lambda's AWS_REGION: EMR nodes have none
        "--metrics-namespace",
        "covidlake",
    ]
    analytics = plan["steps"]["analytics"]["HadoopJarStep"]["Args"]
    assert analytics[5:] == [
        "s3://lake-bucket-for-tests/code/emr/analytics.py",
        "--lake",
        "s3://lake-bucket-for-tests",
        "--run-id",
        EVENT["run_id"],
    ]
    for step in plan["steps"].values():
        assert step["ActionOnFailure"] == "CONTINUE", "the state machine, not EMR, handles failures"


def test_botocore_model_accepts_the_request(plan):
    """Client-side validation against EMR's own API model: every field name and type."""
    from botocore.session import get_session
    from botocore.validate import ParamValidator

    model = get_session().get_service_model("emr")
    report = ParamValidator().validate(plan["cluster"], model.operation_model("RunJobFlow").input_shape)
    assert not report.has_errors(), report.generate_report()
    for step in plan["steps"].values():
        report = ParamValidator().validate(
            {"JobFlowId": "j-1", "Steps": [step]}, model.operation_model("AddJobFlowSteps").input_shape
        )
        assert not report.has_errors(), report.generate_report()


def test_moto_run_job_flow_accepts_the_request_and_the_steps(plan):
    with mock_aws():
        emr = boto3.client("emr", region_name="us-east-1")
        cluster_id = emr.run_job_flow(**plan["cluster"])["JobFlowId"]
        desc = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
        assert desc["Name"] == plan["cluster"]["Name"]
        assert desc["ReleaseLabel"] == plan["cluster"]["ReleaseLabel"]
        assert {a["Name"] for a in desc["Applications"]} == {"Spark", "Hadoop"}
        assert desc["AutoTerminate"] is False, "KeepJobFlowAliveWhenNoSteps must reach the cluster"
        emr.add_job_flow_steps(JobFlowId=cluster_id, Steps=[plan["steps"]["etl"], plan["steps"]["analytics"]])
        steps = emr.list_steps(ClusterId=cluster_id)["Steps"]
        assert {s["Name"] for s in steps} == {"covidlake-etl", "covidlake-analytics"}
        emr.terminate_job_flows(JobFlowIds=[cluster_id])


def test_a_wrong_field_is_rejected_by_the_client(plan):
    bad = json.loads(json.dumps(plan["cluster"]))
    bad["Instances"]["InstanceFleets"][1]["TargetSpotCapacity"] = "two"
    bad["AutoTerminationPolicy"] = {"IdleTimeoutSeconds": 60}
    with mock_aws():
        emr = boto3.client("emr", region_name="us-east-1")
        with pytest.raises(ParamValidationError):
            emr.run_job_flow(**bad)


def test_athena_queries_are_the_committed_ddl_for_this_bucket(plan):
    athena = plan["athena"]
    assert athena["database"] == "covid_analytics"
    assert athena["workgroup"] == "covidlake-tests-covidlake"
    assert [q["table"] for q in athena["queries"]] == list(REFINED_TABLES)
    for q in athena["queries"]:
        committed = (ROOT / "athena" / f"{q['table']}.sql").read_text()
        expected = committed.split("\n", 1)[1].replace("${LakeBucket}", "lake-bucket-for-tests").rstrip().rstrip(";")
        assert q["query"] == expected


def test_timeouts_come_from_settings(emr_env, monkeypatch):
    monkeypatch.setenv("COVIDLAKE_EMR_STEP_TIMEOUT_SECONDS", "5400")
    assert build_run_plan(EVENT, EmrSettings())["timeouts"] == {"etl": 5400, "analytics": 5400}


def _instance_role_statement(template, sid: str) -> dict:
    policies = template["Resources"]["EmrInstanceRole"]["Properties"]["Policies"]
    return next(s for p in policies for s in p["PolicyDocument"]["Statement"] if s.get("Sid") == sid)


def test_etl_publishes_metrics_to_the_namespace_the_instance_role_may_write(template, plan, emr_env):
    """RowsRejected on AWS: create_emr passes the Powertools namespace to emr/etl.py, and
    the EMR instance role may call PutMetricData for exactly that namespace."""
    args = plan["steps"]["etl"]["HadoopJarStep"]["Args"]
    namespace = args[args.index("--metrics-namespace") + 1]
    assert namespace == emr_env["POWERTOOLS_METRICS_NAMESPACE"] == "covidlake"
    statement = _instance_role_statement(template, "PublishQualityMetrics")
    assert statement["Action"] == "cloudwatch:PutMetricData"
    assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": namespace}}
    dashboard_vars = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][1]
    assert dashboard_vars["Namespace"] == namespace, "the dashboard's RowsRejected line searches this namespace"
    assert "--metrics-namespace" not in plan["steps"]["analytics"]["HadoopJarStep"]["Args"]


def test_metrics_namespace_settings(emr_env, monkeypatch):
    monkeypatch.setenv("COVIDLAKE_METRICS_NAMESPACE", "covidlake-dev")
    args = build_run_plan(EVENT, EmrSettings())["steps"]["etl"]["HadoopJarStep"]["Args"]
    assert args[-2:] == ["--metrics-namespace", "covidlake-dev"], "COVIDLAKE_ wins over POWERTOOLS_"
    for key in ("COVIDLAKE_METRICS_NAMESPACE", "POWERTOOLS_METRICS_NAMESPACE"):
        monkeypatch.delenv(key)
    args = build_run_plan(EVENT, EmrSettings())["steps"]["etl"]["HadoopJarStep"]["Args"]
    assert "--metrics-namespace" not in args and args[-2:] == [
        "--manifest-key",
        f"raw/_manifests/{EVENT['run_id']}.json",
    ]
    for bad in ("AWS/EMR", "name;with;semicolons", "x" * 256):
        with pytest.raises(ValidationError):
            EmrSettings(metrics_namespace=bad)


@pytest.mark.parametrize(
    "env",
    [
        {"COVIDLAKE_LAKE_URI": "./lake"},
        {"COVIDLAKE_EMR_CORE_ON_DEMAND_CAPACITY": "9"},
        {"COVIDLAKE_EMR_IDLE_TIMEOUT_SECONDS": "10"},
        {"COVIDLAKE_EMR_CORE_INSTANCE_TYPES": " , "},
    ],
)
def test_bad_settings_are_refused(emr_env, monkeypatch, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        EmrSettings()


def test_missing_settings_are_refused(monkeypatch):
    for key in ("COVIDLAKE_LAKE_URI", "COVIDLAKE_EMR_SERVICE_ROLE", "COVIDLAKE_EMR_INSTANCE_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ValidationError):
        EmrSettings()


@pytest.mark.parametrize(
    "event",
    [
        {"run_id": "x"},
        {**EVENT, "run_id": "../../etc"},
        {**EVENT, "inputs": {"covid_csv": "/tmp/a.csv", "country_csv": EVENT["inputs"]["country_csv"]}},
    ],
)
def test_bad_ingest_results_are_refused(emr_env, event):
    with pytest.raises(ValueError):
        build_run_plan(event, EmrSettings())


def test_ddl_comes_from_the_schema_registry():
    ddl = refined_table_ddl("db", "s3://b/p/")
    assert set(ddl) == set(REFINED_TABLES)
    for name, schema in REFINED_TABLES.items():
        for column in schema.columns:
            assert f"`{column.name}` {column.type.athena}" in ddl[name]
        assert f"LOCATION 's3://b/p/refined/{name}/'" in ddl[name]
        assert "STORED AS PARQUET" in ddl[name]


def test_no_sql_file_is_stale():
    committed = {p.stem for p in Path(ROOT / "athena").glob("*.sql")}
    assert committed == set(REFINED_TABLES)


# --- instance groups, for accounts without EC2 Fleet (the academy profile) -----------------------


@pytest.fixture
def groups_plan(emr_env, monkeypatch):
    monkeypatch.setenv("COVIDLAKE_EMR_INSTANCE_LAYOUT", "groups")
    monkeypatch.setenv("COVIDLAKE_EMR_CORE_ON_DEMAND_CAPACITY", emr_env["COVIDLAKE_EMR_CORE_CAPACITY"])
    return build_run_plan(EVENT, EmrSettings())


def test_groups_layout_asks_for_on_demand_groups_in_one_subnet(groups_plan, emr_env):
    instances = groups_plan["cluster"]["Instances"]
    assert "InstanceFleets" not in instances and "Ec2SubnetIds" not in instances
    assert instances["Ec2SubnetId"] == emr_env["COVIDLAKE_EMR_SUBNET_IDS"].split(",")[0]
    groups = {g["InstanceRole"]: g for g in instances["InstanceGroups"]}
    assert groups["MASTER"]["InstanceCount"] == 1
    assert groups["CORE"]["InstanceCount"] == int(emr_env["COVIDLAKE_EMR_CORE_CAPACITY"])
    assert {g["Market"] for g in groups.values()} == {"ON_DEMAND"}
    assert groups["CORE"]["InstanceType"] == emr_env["COVIDLAKE_EMR_CORE_INSTANCE_TYPES"].split(",")[0]


def test_groups_layout_is_a_request_botocore_and_moto_accept(groups_plan):
    from botocore.session import get_session
    from botocore.validate import ParamValidator

    shape = get_session().get_service_model("emr").operation_model("RunJobFlow").input_shape
    report = ParamValidator().validate(groups_plan["cluster"], shape)
    assert not report.has_errors(), report.generate_report()
    with mock_aws():
        emr = boto3.client("emr", region_name="us-east-1")
        cluster_id = emr.run_job_flow(**groups_plan["cluster"])["JobFlowId"]
        groups = emr.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]
        assert sorted(g["InstanceGroupType"] for g in groups) == ["CORE", "MASTER"]


def test_groups_layout_refuses_spot_capacity(emr_env, monkeypatch):
    monkeypatch.setenv("COVIDLAKE_EMR_INSTANCE_LAYOUT", "groups")
    monkeypatch.setenv("COVIDLAKE_EMR_CORE_ON_DEMAND_CAPACITY", "0")
    with pytest.raises(ValidationError, match="instance groups run on-demand only"):
        EmrSettings()
