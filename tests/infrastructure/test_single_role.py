"""One existing role, no IAM resources: with ExistingExecutionRoleName (an AWS Academy Learner
Lab's LabRole) every function, the state machine and the schedule run under that role, EMR
uses the shared EMR roles, and CloudFormation creates no AWS::IAM::* resource. Without it,
each component keeps its own least-privilege role."""

from __future__ import annotations

import copy
import tomllib

import pytest

from .conftest import ROOT, load_template, sam_transform
from .rehearsal import COMPONENTS, Deployment, Resolver, created_resources, named_role_arns, role_specs

LAB = {"ExistingExecutionRoleName": "LabRole"}


def iam_resources(template: dict, parameters: dict) -> list[str]:
    """The AWS::IAM::* resources a stack with these parameters creates (the SAM transform as
    CloudFormation runs it, then the conditions evaluated for the parameters)."""
    transformed = sam_transform(template, parameters)
    created = created_resources(transformed, Deployment(parameters=parameters))
    return sorted(k for k, r in created.items() if r["Type"].startswith("AWS::IAM::"))


def test_the_single_role_mode_creates_no_iam_resource(template):
    assert iam_resources(template, LAB) == []


def test_the_default_mode_keeps_one_role_per_component(template):
    assert iam_resources(template, {}) == [
        "CreateEmrFunctionRole",
        "EmrInstanceProfile",
        "EmrInstanceRole",
        "EmrServiceRole",
        "IngestFunctionRole",
        "PipelineScheduleRole",
        "PipelineStateMachineRole",
        "ShowResultsFunctionRole",
    ]


@pytest.mark.parametrize(
    "logical_id, path",
    [
        ("ShowResultsFunction", ("Properties", "Role")),
        ("PipelineStateMachine", ("Properties", "Events", "Schedule", "Properties", "RoleArn")),
    ],
)
def test_negative_control_a_resource_without_the_shared_role_creates_one(template, logical_id, path):
    """SAM generates a role for a function without Role and for a schedule without RoleArn."""
    broken = copy.deepcopy(template)
    holder = broken["Resources"][logical_id]
    for key in path[:-1]:
        holder = holder[key]
    del holder[path[-1]]
    assert iam_resources(broken, LAB)


def test_every_resource_names_the_shared_role(template):
    named = named_role_arns(sam_transform(template, LAB), Deployment(parameters=LAB))
    lab = "arn:aws:iam::123456789012:role/LabRole"
    assert named == {
        "ingest": lab,
        "create_emr": lab,
        "show_results": lab,
        "state_machine": lab,
        "schedule": lab,
        "emr_service": "arn:aws:iam::123456789012:role/EMR_DefaultRole",
        "emr_instance": "arn:aws:iam::123456789012:role/EMR_EC2_DefaultRole",
    }


def test_the_shared_emr_roles_are_parameters(template):
    params = {**LAB, "SharedEmrServiceRole": "MyEmrRole", "SharedEmrInstanceProfile": "LabInstanceProfile"}
    named = named_role_arns(sam_transform(template, params), Deployment(parameters=params))
    assert named["emr_service"].endswith(":role/MyEmrRole")
    assert named["emr_instance"].endswith(":role/LabInstanceProfile")


def test_in_the_default_mode_every_resource_names_its_own_role(transformed):
    deployment = Deployment()
    named = named_role_arns(transformed, deployment)
    specs = role_specs(transformed, deployment)
    assert {c: named[c] for c in COMPONENTS} == {c: s.arn for c, s in specs.items()}
    assert len({s.arn for s in specs.values()}) == len(COMPONENTS), "one role per component"
    assert named["schedule"].endswith("-PipelineScheduleRole")


def test_the_rule_schedule_replaces_the_scheduler_and_names_the_shared_role(template):
    """ScheduleService=rule: an EventBridge rule starts the runs (EventBridge may assume LabRole
    where Scheduler perhaps may not); the Scheduler schedule stays, disabled."""
    params = {**LAB, "ScheduleService": "rule", "ScheduleEnabled": "true"}
    transformed = sam_transform(template, params)
    deployment = Deployment(parameters=params)
    assert iam_resources(template, params) == []
    assert named_role_arns(transformed, deployment)["schedule_rule"] == "arn:aws:iam::123456789012:role/LabRole"
    resolve = Resolver(transformed, deployment)
    res = transformed["Resources"]
    assert resolve(res["PipelineScheduleRule"]["Properties"]["State"]) == "ENABLED"
    assert resolve(res["PipelineStateMachineSchedule"]["Properties"]["State"]) == "DISABLED"
    # and by default the Scheduler runs, no rule exists
    default = Deployment(parameters={"ScheduleEnabled": "true"})
    assert "PipelineScheduleRule" not in created_resources(transformed, default)
    assert Resolver(transformed, default)(res["PipelineStateMachineSchedule"]["Properties"]["State"]) == "ENABLED"


def test_the_rule_schedule_in_the_default_mode_uses_the_schedule_role(template):
    params = {"ScheduleService": "rule"}
    transformed = sam_transform(template, params)
    named = named_role_arns(transformed, Deployment(parameters=params))
    assert named["schedule_rule"] == named["schedule"] and named["schedule"].endswith("-PipelineScheduleRole")
    trust = transformed["Resources"]["PipelineScheduleRole"]["Properties"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"]["Service"] == ["scheduler.amazonaws.com", "events.amazonaws.com"]


# --- the academy profile of samconfig.toml ------------------------------------------------------


def academy_overrides() -> dict[str, str]:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    text = config["academy"]["deploy"]["parameters"]["parameter_overrides"]
    pairs = text if isinstance(text, list) else text.split()
    return dict(p.split("=", 1) for p in pairs)


def test_the_academy_profile_deploys_without_iam(template):
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())["academy"]
    deploy = config["deploy"]["parameters"]
    overrides = academy_overrides()
    assert overrides["ExistingExecutionRoleName"] == "LabRole"
    assert overrides["ScheduleService"] == "rule", "EventBridge is documented to assume LabRole, Scheduler is not"
    assert set(overrides) <= set(template["Parameters"]), "every override is a template parameter"
    assert "CAPABILITY_IAM" not in deploy.get("capabilities", ""), "nothing to acknowledge: no IAM resource"
    assert config["global"]["parameters"]["region"] in ("us-east-1", "us-west-2")
    params = {k: v.strip('"') for k, v in overrides.items() if k not in ("VpcId", "SubnetIds")}
    assert iam_resources(load_template(), params) == []


def test_the_academy_profile_uses_on_demand_small_nodes():
    overrides = academy_overrides()
    assert overrides["EmrCoreOnDemandCapacity"] == overrides["EmrCoreCapacity"], "no spot in the profile"
    assert overrides["EmrPrimaryOnDemand"].strip('"') == "true"
    assert overrides["EmrInstanceLayout"].strip('"') == "groups", "the lab does not support EC2 Fleet"
    for key in ("EmrPrimaryInstanceTypes", "EmrCoreInstanceTypes"):
        types = overrides[key].strip('"').split(",")
        assert all(t.endswith(".large") for t in types), f"the lab terminates nodes above large: {types}"
