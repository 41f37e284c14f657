"""scripts/deploy_jobs.py uploads exactly what the cluster request points at."""

from __future__ import annotations

import importlib.util
import json
import zipfile

import boto3
from moto import mock_aws

from .conftest import ROOT


def load():
    spec = importlib.util.spec_from_file_location("deploy_jobs", ROOT / "scripts" / "deploy_jobs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zip_holds_the_packages_and_is_reproducible(tmp_path):
    jobs = load()
    a = jobs.build_zip(tmp_path / "a" / "covidlake.zip")
    b = jobs.build_zip(tmp_path / "b" / "covidlake.zip")
    assert a.read_bytes() == b.read_bytes()
    names = zipfile.ZipFile(a).namelist()
    assert "covidlake/schemas.py" in names and "covidlake/storage.py" in names and "emr/__init__.py" in names
    assert not [n for n in names if "__pycache__" in n or not n.endswith(".py")]


def test_upload_covers_every_s3_path_the_plan_uses(tmp_path, aws, monkeypatch):
    jobs = load()
    files = jobs.artifacts(jobs.build_zip(tmp_path / "covidlake.zip"))
    assert any(k.startswith("code/emr/") for k in files), "the EMR entry points are not uploaded"
    for key, value in {
        "COVIDLAKE_LAKE_URI": "s3://deploy-test",
        "COVIDLAKE_EMR_SERVICE_ROLE": "svc",
        "COVIDLAKE_EMR_INSTANCE_PROFILE": "prof",
    }.items():
        monkeypatch.setenv(key, value)
    from covidlake.emr_cluster import build_run_plan

    plan = build_run_plan(json.loads((ROOT / "events" / "create_emr.json").read_text()))
    referenced = {plan["cluster"]["BootstrapActions"][0]["ScriptBootstrapAction"]["Path"]}
    for step in plan["steps"].values():
        args = step["HadoopJarStep"]["Args"]
        referenced |= {args[args.index("--py-files") + 1], args[args.index("--py-files") + 2]}
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="deploy-test")
        jobs.upload("deploy-test", files, s3=s3)
        uploaded = {f"s3://deploy-test/{o['Key']}" for o in s3.list_objects_v2(Bucket="deploy-test")["Contents"]}
    assert referenced <= uploaded, referenced - uploaded


def test_bucket_is_read_from_the_stack_output(aws):
    jobs = load()

    class FakeCfn:
        def describe_stacks(self, StackName):
            assert StackName == "covidlake"
            return {"Stacks": [{"Outputs": [{"OutputKey": "LakeBucketName", "OutputValue": "the-bucket"}]}]}

    assert jobs.bucket_from_stack("covidlake", cloudformation=FakeCfn()) == "the-bucket"


def test_bootstrap_is_minimal_pinned_and_valid_bash():
    import subprocess

    script = ROOT / "emr" / "bootstrap.sh"
    text = script.read_text()
    assert text.startswith("#!/bin/bash") and "set -euo pipefail" in text
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert installs and all("==" in line for line in installs), "every pip install must be pinned"
