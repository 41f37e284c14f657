"""Print the `sam deploy` command of the academy profile with the default VPC's network.

    python scripts/academy_network.py [--region us-east-1]

samconfig.toml's [academy] profile holds every parameter but VpcId and SubnetIds (they are
account-specific, and CloudFormation cannot look up a default VPC). This finds the default
VPC and two of its subnets in distinct Availability Zones (those tagged for EMR first) and
the VPC's default security group, allowed into the database as DbClientSecurityGroupId (a
CloudShell VPC environment in that group loads country_data), and prints the whole command:
`--parameter-overrides` on the command line replaces the profile's list, so the command
repeats it with the network added.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def academy_overrides(samconfig: Path = ROOT / "samconfig.toml") -> list[str]:
    config = tomllib.loads(samconfig.read_text())
    return list(config["academy"]["deploy"]["parameters"]["parameter_overrides"])


def default_security_group(ec2, vpc_id: str) -> str:
    groups = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": ["default"]}]
    )["SecurityGroups"]
    return groups[0]["GroupId"]


def deploy_command(vpc_id: str, subnet_ids: list[str], overrides: list[str], client_sg: str = "") -> str:
    network = [f"VpcId={vpc_id}", f"SubnetIds={','.join(subnet_ids)}"]
    network += [f"DbClientSecurityGroupId={client_sg}"] if client_sg else []
    args = ["sam", "deploy", "--config-env", "academy", "--parameter-overrides", *overrides, *network]
    return " ".join(shlex.quote(a) for a in args)


def main(argv: list[str] | None = None, ec2=None) -> int:
    import boto3

    from covidlake.preflight import default_vpc_network

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", default="us-east-1", help="the lab's region (us-east-1 or us-west-2)")
    args = parser.parse_args(argv)
    ec2 = ec2 or boto3.client("ec2", region_name=args.region)
    vpc_id, subnet_ids = default_vpc_network(ec2)
    client_sg = default_security_group(ec2, vpc_id)
    print(f"# default VPC {vpc_id}, subnets {' '.join(subnet_ids)}, database client group {client_sg}")
    print(deploy_command(vpc_id, subnet_ids, academy_overrides(), client_sg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
