"""Shared fixtures for the offline checks of the AWS deployment (template, ASL, Lambdas)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
ASL = ROOT / "statemachine" / "pipeline.asl.json"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A console script of this venv (cfn-lint, statelint), else from PATH."""
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


def load_template(path: Path = TEMPLATE) -> dict:
    from cfnlint.decode import decode

    tpl, matches = decode(str(path))
    assert not matches, f"template does not parse: {matches}"
    return json.loads(json.dumps(tpl, default=str))


@pytest.fixture(scope="session")
def template() -> dict:
    return load_template()


@pytest.fixture(scope="session")
def asl() -> dict:
    return json.loads(ASL.read_text())


def sam_transform(tpl: dict, parameters: dict | None = None) -> dict:
    """Run aws-sam-translator as CloudFormation would, with local paths standing in for
    the S3 locations `sam package` uploads. `parameters`: the values `sam deploy` passes
    (SAM resolves some of them, e.g. in a function's Role, while it transforms)."""
    from samtranslator.translator.transform import transform

    tpl = json.loads(json.dumps(tpl))
    for res in tpl["Resources"].values():
        props = res.get("Properties", {})
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(props.get(key), str):
                props[key] = {"Bucket": "artifact-bucket", "Key": props[key]}

    class NoManagedPolicies:
        def load(self):
            return {}

    old = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = old or "us-east-1"
    try:
        return transform(tpl, dict(parameters or {}), NoManagedPolicies())
    finally:
        if old is None:
            del os.environ["AWS_DEFAULT_REGION"]


@pytest.fixture(scope="session")
def transformed(template) -> dict:
    return sam_transform(template)


@pytest.fixture
def aws(monkeypatch):
    """Fake credentials and a region, so nothing can reach a real account."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


# Values standing in for what CloudFormation resolves, used to evaluate the template's
# environment variables offline.
FAKE_REFS = {
    "LakeBucket": "lake-bucket-for-tests",
    "GlueDatabase": "covid_analytics",
    "AthenaWorkGroup": "covidlake-tests-covidlake",
    "EmrServiceRole": "covidlake-EmrServiceRole-TEST",
    "EmrInstanceProfile": "covidlake-EmrInstanceProfile-TEST",
    "AWS::StackName": "covidlake-tests",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "000000000000",
    "AWS::Partition": "aws",
}
FAKE_GETATTS = {
    "EmrInstanceProfile.Arn": "arn:aws:iam::000000000000:instance-profile/covidlake-EmrInstanceProfile-TEST",
    "Database.MasterUserSecret.SecretArn": "arn:aws:secretsmanager:us-east-1:000000000000:secret:rds!db-test",
    "Database.Endpoint.Address": "covidlake-test.rds.local",
}


def resolve(value, template: dict, conditions: dict[str, bool] | None = None):
    """Evaluate the few intrinsics the template's env vars use, with parameter defaults."""
    conditions = conditions or {"CreateEmrRoles": True, "CreateDatabase": True}
    params = {k: v.get("Default") for k, v in template.get("Parameters", {}).items()}
    params["SubnetIds"] = params.get("SubnetIds") or ["subnet-aaaa1111", "subnet-bbbb2222"]
    if isinstance(value, (str, int, float, bool)):
        return str(value)
    if isinstance(value, dict) and len(value) == 1:
        fn, arg = next(iter(value.items()))
        if fn == "Ref":
            if arg in FAKE_REFS:
                return FAKE_REFS[arg]
            if arg in params:
                value = params[arg]
                return value if isinstance(value, list) else str(value)
            raise KeyError(f"no fake value for Ref {arg}")
        if fn == "Fn::GetAtt":
            key = arg if isinstance(arg, str) else ".".join(arg)
            return FAKE_GETATTS[key]
        if fn == "Fn::If":
            cond, yes, no = arg
            return resolve(yes if conditions[cond] else no, template, conditions)
        if fn == "Fn::Select":
            index, items = arg
            items = resolve(items, template, conditions)
            items = items.split(",") if isinstance(items, str) else items
            return items[int(index)]
        if fn == "Fn::Join":
            sep, items = arg
            items = resolve(items, template, conditions) if isinstance(items, dict) else items
            return sep.join(resolve(i, template, conditions) if not isinstance(i, str) else i for i in items)
        if fn == "Fn::Sub":
            text = arg if isinstance(arg, str) else arg[0]
            return re.sub(r"\$\{([^}]+)\}", lambda m: resolve({"Ref": m.group(1)}, template, conditions), text)
    raise ValueError(f"cannot resolve {value!r}")


def function_env(template: dict, logical_id: str, **conditions) -> dict[str, str]:
    """The environment a function gets: Globals plus its own variables, resolved."""
    glob = template["Globals"]["Function"]["Environment"]["Variables"]
    own = template["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {})
    conds = {"CreateEmrRoles": True, "CreateDatabase": True, **conditions}
    return {k: resolve(v, template, conds) for k, v in {**glob, **own}.items()}
