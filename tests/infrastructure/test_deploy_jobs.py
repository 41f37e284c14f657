"""scripts/deploy_jobs.py uploads exactly what the cluster request points at."""

from __future__ import annotations

import importlib.util
import json
import zipfile

import boto3
import pytest
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
    # emr/etl.py is only an entry point: the trusted transforms it runs travel in the zip
    assert {"covidlake/trusted/__init__.py", "covidlake/trusted/job.py", "covidlake/observability.py"} <= set(names)
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


def test_one_command_uploads_the_jobs_and_loads_country_data(tmp_path, aws, pg_url, monkeypatch):
    """`--load-country-data` after the upload: the bundled table lands in the database."""
    import psycopg2

    with psycopg2.connect(pg_url) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE country_data")  # loaded again below, the same content
    jobs = load()
    monkeypatch.setattr(jobs, "upload", lambda bucket, files, s3=None: sorted(files))
    assert jobs.main(["--bucket", "b", "--dist", str(tmp_path), "--load-country-data", "--db-url", pg_url]) == 0
    with psycopg2.connect(pg_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM country_data")
        assert cur.fetchone()[0] > 200


def test_loading_country_data_needs_a_stack_or_a_url(tmp_path):
    with pytest.raises(SystemExit):
        load().main(["--bucket", "b", "--dist", str(tmp_path), "--load-country-data"])


def _academy_network():
    spec = importlib.util.spec_from_file_location("academy_network", ROOT / "scripts" / "academy_network.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_default_vpc_gives_the_academy_network(aws, capsys):
    from covidlake.preflight import default_vpc_network

    net = _academy_network()
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        vpc_id, subnet_ids = default_vpc_network(ec2)
        subnets = ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]
        assert {s["VpcId"] for s in subnets} == {vpc_id} and len({s["AvailabilityZone"] for s in subnets}) == 2
        assert net.main([], ec2=ec2) == 0
        sg = net.default_security_group(ec2, vpc_id)
    command = capsys.readouterr().out.splitlines()[-1]
    assert command.startswith("sam deploy --config-env academy --parameter-overrides ")
    network = [f"VpcId={vpc_id}", f"SubnetIds={','.join(subnet_ids)}", f"DbClientSecurityGroupId={sg}"]
    for override in [*net.academy_overrides(), *network]:
        assert override in command


def test_no_default_vpc_says_so(aws):
    from covidlake.errors import SourceError
    from covidlake.preflight import default_vpc_network

    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        for vpc in ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]:
            for subnet in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]:
                ec2.delete_subnet(SubnetId=subnet["SubnetId"])
            ec2.delete_vpc(VpcId=vpc["VpcId"])
        with pytest.raises(SourceError, match="no default VPC"):
            default_vpc_network(ec2)
