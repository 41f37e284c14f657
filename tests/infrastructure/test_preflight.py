"""`covidlake preflight`: each check passes on a ready deployment and fails, with its fix,
when its prerequisite is taken away. AWS is moto; country_data is a real PostgreSQL."""

from __future__ import annotations

import json
import socket
from urllib.parse import parse_qs, urlsplit

import boto3
import psycopg2
import pytest
from click.testing import CliRunner
from moto import mock_aws

from covidlake.cli import cli
from covidlake.emr_cluster import JOB_CODE_FILES
from covidlake.preflight import TAG_KEY, TAG_VALUE, run_preflight

STACK = "covidlake-preflight"
BUCKET = "preflight-lake"
REGION = "us-east-1"

# A stand-in for the deployed stack: the parameters and outputs preflight reads.
STACK_TEMPLATE = {
    "Parameters": {k: {"Type": "String"} for k in ("VpcId", "SubnetIds", "DbHost", "DbPort", "DbName", "DbSecretArn")},
    "Resources": {
        "LakeBucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": BUCKET}},
        "AlertTopic": {"Type": "AWS::SNS::Topic"},
    },
    "Outputs": {
        "LakeBucketName": {"Value": {"Ref": "LakeBucket"}},
        "CodeUri": {"Value": f"s3://{BUCKET}/code/"},
        "AlertTopicArn": {"Value": {"Ref": "AlertTopic"}},
    },
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def deployment(aws, pg_url):
    """A ready deployment: tagged subnets and VPC, NAT routes, job code, country_data
    loaded (the session's embedded PostgreSQL), a confirmed e-mail subscription."""
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
        public = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.9.0/24")["Subnet"]["SubnetId"]
        eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
        nat = ec2.create_nat_gateway(SubnetId=public, AllocationId=eip)["NatGateway"]["NatGatewayId"]
        table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
        for subnet in subnets:
            ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
        ec2.create_tags(Resources=[*subnets, vpc], Tags=[{"Key": TAG_KEY, "Value": TAG_VALUE}])

        db = urlsplit(pg_url)
        secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="covidlake-db", SecretString=json.dumps({"username": db.username, "password": db.password or ""})
        )["ARN"]
        # the embedded server listens on a Unix socket: its directory is the host
        host = db.hostname or parse_qs(db.query)["host"][0]
        params = {
            "VpcId": vpc,
            "SubnetIds": ",".join(subnets),
            "DbHost": host,
            "DbPort": str(db.port or 5432),
            "DbName": db.path.lstrip("/"),
            "DbSecretArn": secret,
        }
        cfn = boto3.client("cloudformation", region_name=REGION)
        cfn.create_stack(
            StackName=STACK,
            TemplateBody=json.dumps(STACK_TEMPLATE),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        )
        s3 = boto3.client("s3", region_name=REGION)
        for name in JOB_CODE_FILES:
            s3.put_object(Bucket=BUCKET, Key=f"code/{name}", Body=b"job code")
        stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        sns = boto3.client("sns", region_name=REGION)
        sns.subscribe(TopicArn=outputs["AlertTopicArn"], Protocol="email", Endpoint="ops@example.com")
        yield {
            "ec2": ec2,
            "s3": s3,
            "sns": sns,
            "cfn": cfn,
            "subnets": subnets,
            "vpc": vpc,
            "nat": nat,
            "table": table,
            "topic": outputs["AlertTopicArn"],
            "secret": secret,
            "pg_url": pg_url,
        }


def checks(settings, **kwargs) -> dict:
    session = boto3.session.Session(region_name=REGION)
    return {c.name: c for c in run_preflight(STACK, session, settings, **kwargs)}


def failed(result: dict) -> dict:
    return {name: c for name, c in result.items() if not c.ok}


def test_a_ready_deployment_passes_every_check(deployment, settings):
    result = checks(settings)
    assert not failed(result), failed(result)
    names = list(result)
    assert names == [
        *(f"EMR tag on {s}" for s in deployment["subnets"]),
        f"EMR tag on {deployment['vpc']}",
        *(f"NAT route for {s}" for s in deployment["subnets"]),
        "job code",
        "country_data",
        "alert subscription",
    ]
    assert result["country_data"].detail.startswith("247 rows")


def test_cli_exits_zero_when_ready_and_non_zero_with_the_fix_when_not(deployment, settings):
    runner = CliRunner()
    ok = runner.invoke(cli, ["preflight", "--stack", STACK, "--region", REGION])
    assert ok.exit_code == 0, ok.output
    assert "0 failed" in ok.output
    deployment["s3"].delete_object(Bucket=BUCKET, Key="code/emr/analytics.py")
    bad = runner.invoke(cli, ["preflight", "--stack", STACK, "--region", REGION])
    assert bad.exit_code == 1
    assert f"FAIL job code: missing: s3://{BUCKET}/code/emr/analytics.py" in bad.output
    assert f"fix: make deploy-jobs STACK={STACK}" in bad.output


def test_an_untagged_subnet_or_vpc_fails_with_the_tag_command(deployment, settings):
    subnet, vpc = deployment["subnets"][1], deployment["vpc"]
    deployment["ec2"].delete_tags(Resources=[subnet, vpc], Tags=[{"Key": TAG_KEY}])
    bad = failed(checks(settings))
    assert set(bad) == {f"EMR tag on {subnet}", f"EMR tag on {vpc}"}
    assert bad[f"EMR tag on {subnet}"].fix == (
        f"aws ec2 create-tags --resources {subnet} --tags Key=for-use-with-amazon-emr-managed-policies,Value=true"
    )


def test_a_subnet_without_a_nat_route_fails_with_the_route_command(deployment, settings):
    ec2, subnet = deployment["ec2"], deployment["subnets"][0]
    lonely = ec2.create_route_table(VpcId=deployment["vpc"])["RouteTable"]["RouteTableId"]
    association = next(
        a["RouteTableAssociationId"]
        for a in ec2.describe_route_tables(RouteTableIds=[deployment["table"]])["RouteTables"][0]["Associations"]
        if a.get("SubnetId") == subnet
    )
    ec2.replace_route_table_association(AssociationId=association, RouteTableId=lonely)
    bad = failed(checks(settings))
    assert set(bad) == {f"NAT route for {subnet}"}
    assert bad[f"NAT route for {subnet}"].fix == (
        f"aws ec2 create-route --route-table-id {lonely} --destination-cidr-block 0.0.0.0/0 "
        f"--nat-gateway-id {deployment['nat']}"
    )
    # an internet gateway is not enough: private subnets need the NAT
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.create_route(RouteTableId=lonely, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    bad = failed(checks(settings))
    assert bad[f"NAT route for {subnet}"].fix.startswith(f"aws ec2 replace-route --route-table-id {lonely}")
    assert igw in bad[f"NAT route for {subnet}"].detail


@pytest.mark.parametrize("absent", JOB_CODE_FILES)
def test_each_missing_job_file_fails_by_name(deployment, settings, absent):
    deployment["s3"].delete_object(Bucket=BUCKET, Key=f"code/{absent}")
    bad = failed(checks(settings))
    assert set(bad) == {"job code"}
    assert bad["job code"].detail == f"missing: s3://{BUCKET}/code/{absent}"


def test_missing_or_empty_country_data_fails_with_the_load_command(deployment, settings):
    url = deployment["pg_url"]
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("ALTER TABLE country_data RENAME TO country_data_hidden")
        bad = failed(checks(settings))
        assert set(bad) == {"country_data"}
        assert "does not exist" in bad["country_data"].detail
        assert bad["country_data"].fix.startswith("covidlake load-country-data --db-url")
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE country_data (LIKE country_data_hidden)")
        assert "is empty" in failed(checks(settings))["country_data"].detail
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS country_data")
            cur.execute("ALTER TABLE country_data_hidden RENAME TO country_data")
        conn.close()


def test_an_unreachable_database_says_so_and_how_to_check(deployment, settings):
    quick = settings.model_copy(update={"db_connect_timeout": 1})
    unreachable = f"postgresql://u:p@127.0.0.1:{free_port()}/covid_data"
    bad = failed(checks(quick, db_url=unreachable))
    assert set(bad) == {"country_data"}
    assert "private to the VPC" in bad["country_data"].detail
    assert "AWS-StartPortForwardingSessionToRemoteHost" in bad["country_data"].fix
    assert f"covidlake preflight --stack {STACK} --db-url" in bad["country_data"].fix


def test_an_unconfirmed_or_absent_alert_subscription_fails(deployment, settings):
    sns, topic = deployment["sns"], deployment["topic"]
    for sub in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]:
        sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
    bad = failed(checks(settings))
    assert set(bad) == {"alert subscription"}
    assert bad["alert subscription"].fix.startswith(f"aws sns subscribe --topic-arn {topic} --protocol email")


def test_a_pending_subscription_is_not_confirmed():
    from covidlake.preflight import Stack, check_alert_subscription

    class PendingSns:
        def list_subscriptions_by_topic(self, TopicArn):  # noqa: N803 - boto3's name
            return {
                "Subscriptions": [
                    {"SubscriptionArn": "PendingConfirmation", "Protocol": "email", "Endpoint": "ops@example.com"}
                ]
            }

    check = check_alert_subscription(Stack("s", {}, {"AlertTopicArn": "arn:aws:sns:r:a:t"}), PendingSns())
    assert not check.ok and "ops@example.com" in check.fix and "not confirmed" in check.detail


def test_the_checked_job_code_is_exactly_what_deploy_jobs_uploads(tmp_path):
    from .test_deploy_jobs import load

    uploaded = load().artifacts(tmp_path / "covidlake.zip")
    assert sorted(uploaded) == sorted(f"code/{name}" for name in JOB_CODE_FILES)


def test_make_preflight_runs_the_command_for_the_stack():
    import subprocess

    from .conftest import ROOT

    dry = subprocess.run(
        ["make", "-n", "preflight", "STACK=my-stack"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert dry.returncode == 0, dry.stderr
    assert "covidlake preflight --stack my-stack" in dry.stdout
