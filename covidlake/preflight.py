"""`covidlake preflight --stack NAME`: the prerequisites of a deployment that no template
can create, checked with the user's own AWS credentials. Each failure carries the exact
command that fixes it; any failure makes the command exit non-zero.

Checked: the subnets and the VPC carry the tag EMR's managed policy needs, every subnet
routes 0.0.0.0/0 through a NAT gateway, the job code is uploaded to s3://<bucket>/code/,
table country_data is loaded, and the alert topic has a confirmed subscription.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

from covidlake.defaults import COUNTRY_DB_NAME, DEFAULT_DB_PORT
from covidlake.emr_cluster import EMR_MANAGED_POLICY_TAG, missing_job_code
from covidlake.errors import SourceError
from covidlake.raw.postgres import connect, redact
from covidlake.settings import Settings

TAG_KEY, TAG_VALUE = EMR_MANAGED_POLICY_TAG["Key"], EMR_MANAGED_POLICY_TAG["Value"]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Stack:
    name: str
    parameters: dict[str, str]
    outputs: dict[str, str]


def describe_stack(name: str, cloudformation) -> Stack:
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    params = {p["ParameterKey"]: p.get("ResolvedValue", p["ParameterValue"]) for p in stack.get("Parameters", [])}
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return Stack(name, params, outputs)


def _subnet_ids(stack: Stack) -> list[str]:
    return [s.strip() for s in stack.parameters.get("SubnetIds", "").split(",") if s.strip()]


def _tagged(resource: dict) -> bool:
    return any(t["Key"] == TAG_KEY and t["Value"] == TAG_VALUE for t in resource.get("Tags", []))


def check_emr_tags(stack: Stack, ec2) -> list[Check]:
    """AmazonEMRServicePolicy_v2 launches instances only in tagged subnets (and VPC)."""
    wanted = _subnet_ids(stack)
    subnets = {s["SubnetId"]: s for s in ec2.describe_subnets(SubnetIds=wanted)["Subnets"]}
    resources = [(sid, subnets[sid]) for sid in wanted]  # in the order the stack names them
    resources += [(v["VpcId"], v) for v in ec2.describe_vpcs(VpcIds=[stack.parameters["VpcId"]])["Vpcs"]]
    fix = "aws ec2 create-tags --resources {} --tags Key=" + f"{TAG_KEY},Value={TAG_VALUE}"
    return [
        Check(f"EMR tag on {rid}", True, f"{TAG_KEY}={TAG_VALUE}")
        if _tagged(res)
        else Check(f"EMR tag on {rid}", False, f"no tag {TAG_KEY}={TAG_VALUE}: CreateCluster fails", fix.format(rid))
        for rid, res in resources
    ]


def _route_table(subnet_id: str, vpc_id: str, ec2) -> dict | None:
    """The subnet's own route table, else the VPC's main one (as EC2 routes)."""
    own = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])["RouteTables"]
    if own:
        return own[0]
    main = ec2.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "association.main", "Values": ["true"]}]
    )["RouteTables"]
    return main[0] if main else None


def check_nat_routes(stack: Stack, ec2) -> list[Check]:
    """The ingest download and the EMR bootstrap's pip need the internet through a NAT."""
    vpc_id = stack.parameters["VpcId"]
    nats = ec2.describe_nat_gateways(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "state", "Values": ["available"]}]
    )["NatGateways"]
    nat_id = nats[0]["NatGatewayId"] if nats else "<nat-gateway-id>"
    checks = []
    for subnet_id in _subnet_ids(stack):
        table = _route_table(subnet_id, vpc_id, ec2)
        default = next(
            (r for r in (table or {}).get("Routes", []) if r.get("DestinationCidrBlock") == "0.0.0.0/0"), None
        )
        ok = bool(default and default.get("NatGatewayId") and default.get("State", "active") == "active")
        if ok:
            checks.append(Check(f"NAT route for {subnet_id}", True, f"0.0.0.0/0 via {default['NatGatewayId']}"))
            continue
        verb = "replace-route" if default else "create-route"
        table_id = table["RouteTableId"] if table else "<route-table-id>"
        fix = f"aws ec2 {verb} --route-table-id {table_id} --destination-cidr-block 0.0.0.0/0 --nat-gateway-id {nat_id}"
        if not nats:
            fix = (
                "aws ec2 create-nat-gateway --subnet-id <public-subnet-id> --allocation-id <eip-allocation-id>; then "
                + fix
            )
        found = f"0.0.0.0/0 goes to {_target(default)}" if default else "no 0.0.0.0/0 route"
        checks.append(Check(f"NAT route for {subnet_id}", False, f"{found} in {table_id}", fix))
    return checks


def _target(route: dict) -> str:
    for key in ("NatGatewayId", "GatewayId", "TransitGatewayId", "InstanceId", "NetworkInterfaceId"):
        if route.get(key):
            return f"{route[key]} ({route.get('State', 'active')})"
    return "nothing"


def check_job_code(stack: Stack, s3) -> Check:
    code = stack.outputs.get("CodeUri") or f"s3://{stack.outputs['LakeBucketName']}/code/"
    missing = missing_job_code(code, s3)
    if not missing:
        return Check("job code", True, f"uploaded to {code}")
    return Check("job code", False, f"missing: {', '.join(missing)}", f"make deploy-jobs STACK={stack.name}")


def check_alert_subscription(stack: Stack, sns) -> Check:
    topic = stack.outputs["AlertTopicArn"]
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    confirmed = [s for s in subscriptions if s["SubscriptionArn"].startswith("arn:")]
    if confirmed:
        return Check("alert subscription", True, ", ".join(f"{s['Protocol']}:{s['Endpoint']}" for s in confirmed))
    subscribe = f"aws sns subscribe --topic-arn {topic} --protocol email --notification-endpoint <you@example.com>"
    if subscriptions:
        pending = ", ".join(s["Endpoint"] for s in subscriptions)
        return Check(
            "alert subscription",
            False,
            f"not confirmed yet: {pending}",
            f"open the confirmation mail sent to {pending} (or send it again: {subscribe})",
        )
    return Check(
        "alert subscription",
        False,
        f"nobody is subscribed to {topic}: failures alert no one",
        f"{subscribe}  # then confirm the mail",
    )


def stack_db_url(stack: Stack, secretsmanager) -> str:
    """The database the ingest Lambda reads, with the stack's secret (the user's credentials)."""
    p, o = stack.parameters, stack.outputs
    host = p.get("DbHost") or o.get("DatabaseEndpoint")
    secret_arn = p.get("DbSecretArn") or o.get("DatabaseSecretArn")
    if not host or not secret_arn:
        raise SourceError("the stack names no database host and secret (DbHost/DbSecretArn or DatabaseEndpoint)")
    creds = json.loads(secretsmanager.get_secret_value(SecretId=secret_arn)["SecretString"])
    user, password = quote(creds["username"], safe=""), quote(creds["password"], safe="")
    host = quote(host, safe="") if host.startswith("/") else host  # a Unix socket directory
    return (
        f"postgresql://{user}:{password}@{host}:{p.get('DbPort', DEFAULT_DB_PORT)}/{p.get('DbName', COUNTRY_DB_NAME)}"
    )


def check_country_data(stack: Stack, secretsmanager, settings: Settings, db_url: str | None = None) -> Check:
    import psycopg2.errors

    try:
        db_url = db_url or stack_db_url(stack, secretsmanager)
    except SourceError as err:
        return Check("country_data", False, str(err), "give --db-url postgresql://USER:PASSWORD@HOST:PORT/DB")
    load = f"covidlake load-country-data --db-url '{redact(db_url)}'  # the real password for ***"
    try:
        conn = connect(db_url, settings)
    except SourceError as err:
        return Check(
            "country_data",
            False,
            f"{err}. The database is private to the VPC unless you made it "
            "reachable: this machine may simply not reach it",
            _tunnel_hint(stack, db_url),
        )
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM country_data")
            rows = cur.fetchone()[0]
    except psycopg2.errors.UndefinedTable:
        return Check("country_data", False, f"table country_data does not exist in {redact(db_url)}", load)
    finally:
        conn.close()
    if not rows:
        return Check("country_data", False, f"table country_data in {redact(db_url)} is empty", load)
    return Check("country_data", True, f"{rows} rows in {redact(db_url)}")


def _tunnel_hint(stack: Stack, db_url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(db_url)
    return (
        "from a host in the VPC (e.g. in DbClientSecurityGroupId), forward a local port: "
        "aws ssm start-session --target <instance-id> --document-name AWS-StartPortForwardingSessionToRemoteHost "
        f"--parameters host={parts.hostname},portNumber={parts.port or DEFAULT_DB_PORT},localPortNumber=15432; then "
        f"covidlake preflight --stack {stack.name} --db-url "
        f"postgresql://USER:PASSWORD@127.0.0.1:15432{parts.path}"
    )


def run_preflight(stack_name: str, session=None, settings: Settings | None = None, db_url: str | None = None):
    """Every check, in the order a first deployer meets them."""
    import boto3

    session = session or boto3.session.Session()
    settings = settings or Settings()
    stack = describe_stack(stack_name, session.client("cloudformation"))
    ec2 = session.client("ec2")
    return [
        *check_emr_tags(stack, ec2),
        *check_nat_routes(stack, ec2),
        check_job_code(stack, session.client("s3")),
        check_country_data(stack, session.client("secretsmanager"), settings, db_url),
        check_alert_subscription(stack, session.client("sns")),
    ]


def format_checks(checks: list[Check]) -> str:
    lines = []
    for check in checks:
        lines.append(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
        if not check.ok:
            lines.append(f"     fix: {check.fix}")
    failed = sum(not c.ok for c in checks)
    lines.append(f"{len(checks) - failed} passed, {failed} failed")
    return "\n".join(lines)


def default_vpc_network(ec2, count: int = 2) -> tuple[str, list[str]]:
    """The account's default VPC and `count` of its subnets in distinct Availability Zones
    (those already tagged for EMR first): CloudFormation cannot look them up itself, so they
    become the VpcId and SubnetIds parameters."""
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise SourceError("this region has no default VPC: give VpcId and SubnetIds yourself")
    vpc_id = vpcs[0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    subnets.sort(key=lambda s: (not _tagged(s), s["AvailabilityZone"], s["SubnetId"]))
    chosen: dict[str, str] = {}
    for subnet in subnets:
        chosen.setdefault(subnet["AvailabilityZone"], subnet["SubnetId"])
    if len(chosen) < count:
        raise SourceError(f"the default VPC {vpc_id} has subnets in {len(chosen)} Availability Zones, {count} needed")
    return vpc_id, list(chosen.values())[:count]
