"""IAM scope and API exposure in the SAM-transformed template; every test marked ``attack``
is a row of docs/security.md. Each check is also run on a copy of the template with the
guard removed, to show it catches what it is meant to (the negative controls)."""

from __future__ import annotations

import copy
import json

import pytest

from .conftest import sam_transform

attack = pytest.mark.attack


def role_statements(transformed: dict, role: str) -> list[dict]:
    policies = transformed["Resources"][role]["Properties"]["Policies"]
    return [st for p in policies for st in p["PolicyDocument"]["Statement"]]


def emr_cluster_statements_without_tag_condition(transformed: dict) -> list[dict]:
    """Statements on cluster/* of the state machine's role that any cluster in the account matches."""
    loose = []
    for st in role_statements(transformed, "PipelineStateMachineRole"):
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if any(a.startswith("elasticmapreduce:") for a in actions) and st["Resource"] != "*":
            tag = st.get("Condition", {}).get("StringEquals", {}).get("aws:ResourceTag/covidlake:stack")
            if tag != {"Ref": "AWS::StackName"}:
                loose.append(st)
    return loose


@attack(
    10,
    "the state machine's role used on another cluster in the account (terminate, add steps)",
    "denied: every EMR cluster statement needs the stack's `covidlake:stack` tag",
)
def test_state_machine_emr_statements_need_the_stack_tag(transformed, template):
    statements = role_statements(transformed, "PipelineStateMachineRole")
    manage = [st for st in statements if st.get("Sid") == "ManageClusters"]
    assert manage and "elasticmapreduce:TerminateJobFlows" in manage[0]["Action"]
    assert emr_cluster_statements_without_tag_condition(transformed) == []
    loose = copy.deepcopy(template)
    for policy in loose["Resources"]["PipelineStateMachineRole"]["Properties"]["Policies"]:
        for st in policy["PolicyDocument"]["Statement"]:
            if st.get("Sid") == "ManageClusters":
                del st["Condition"]
    assert len(emr_cluster_statements_without_tag_condition(sam_transform(loose))) == 1


def bucket_listing(transformed: dict, role: str) -> list[dict]:
    return [st for st in role_statements(transformed, role) if "s3:ListBucket" in json.dumps(st["Action"])]


@attack(
    10,
    "the show_results role listing the whole lake (raw zone, manifests)",
    "denied: s3:ListBucket only under `refined/` (and Athena's `athena-results/`)",
)
def test_show_results_lists_only_refined(transformed):
    listing = bucket_listing(transformed, "ShowResultsFunctionRole")
    assert len(listing) == 1
    prefixes = listing[0]["Condition"]["StringLike"]["s3:prefix"]
    assert sorted(prefixes) == ["athena-results", "athena-results/*", "refined", "refined/*"]
    assert not any(p.startswith(("raw", "trusted", "_locks", "*")) or p == "" for p in prefixes)


def db_port_egress(transformed: dict) -> list[dict]:
    """Every egress rule of the ingest Lambda's security group on the database port."""
    res = transformed["Resources"]
    rules = [dict(r) for r in res["LambdaSecurityGroup"]["Properties"].get("SecurityGroupEgress", [])]
    rules += [
        r["Properties"]
        for r in res.values()
        if r["Type"] == "AWS::EC2::SecurityGroupEgress" and r["Properties"]["GroupId"] == {"Ref": "LambdaSecurityGroup"}
    ]
    return [r for r in rules if r.get("FromPort") == {"Ref": "DbPort"}]


@attack(
    10,
    "the ingest Lambda reaching the database port anywhere (0.0.0.0/0)",
    "egress on the database port to the database's security group only",
)
def test_ingest_reaches_the_database_port_of_its_group_only(transformed, template):
    rules = db_port_egress(transformed)
    assert not any("CidrIp" in r or "CidrIpv6" in r for r in rules)
    assert sorted(json.dumps(r["DestinationSecurityGroupId"]) for r in rules) == [
        '{"Ref": "DatabaseSecurityGroup"}',
        '{"Ref": "ExistingDbSecurityGroupId"}',
    ]
    wide = copy.deepcopy(template)
    wide["Resources"]["LambdaSecurityGroup"]["Properties"]["SecurityGroupEgress"].append(
        {"IpProtocol": "tcp", "FromPort": {"Ref": "DbPort"}, "ToPort": {"Ref": "DbPort"}, "CidrIp": "0.0.0.0/0"}
    )
    assert any("CidrIp" in r for r in db_port_egress(sam_transform(wide)))


def route_security(transformed: dict) -> dict[str, object]:
    api = next(r for r in transformed["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Api")
    body = api["Properties"]["Body"]
    return {f"{m.upper()} {p}": op.get("security") for p, item in body["paths"].items() for m, op in item.items()}


@attack(
    11,
    "ApiAuth=IAM: an unsigned call to any route",
    "every route has the IAM (SigV4) authorizer; with NONE (default) none has",
)
def test_api_auth_parameter_switches_every_route(transformed, template):
    assert template["Parameters"]["ApiAuth"]["Default"] == "NONE"
    assert template["Parameters"]["ApiAuth"]["AllowedValues"] == ["NONE", "IAM"]
    assert template["Conditions"]["ApiIamAuth"] == {"Fn::Equals": [{"Ref": "ApiAuth"}, "IAM"]}
    security = route_security(transformed)
    assert set(security) == {"POST /showResults", "GET /tables", "GET /openapi.json", "GET /swagger"}
    for route, value in security.items():
        assert value == {"Fn::If": ["ApiIamAuth", [{"AWS_IAM": []}], {"Ref": "AWS::NoValue"}]}, route
    api = next(r for r in transformed["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Api")
    scheme = api["Properties"]["Body"]["components"]["securitySchemes"]["AWS_IAM"]
    assert scheme["x-amazon-apigateway-authtype"] == "awsSigv4"
