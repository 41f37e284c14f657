"""The deployment rehearsed offline under its own IAM roles.

Every role and policy comes from the SAM-transformed template.yaml, its intrinsics resolved
for the rehearsal's account, region, stack and bucket (:func:`resolve`). Inside
:class:`Rehearsal` (moto), each role exists in IAM and is assumed; :meth:`Rehearsal.session_for`
/ :meth:`Rehearsal.credentials_for` give a component its role's credentials and
:meth:`Rehearsal.as_component` runs code the way Lambda or EMR would (credentials in the
environment, the default boto3 session).

Two checks guard every call a component makes:
* moto's IAM enforcement, on for S3: object calls outside the role's grants get 403 as
  on AWS;
* :mod:`iam_policy` on every call of every service (moto ignores Conditions and checks
  other services against resource "*"): each API call is translated into the IAM actions
  and resources AWS authorizes for it (:func:`needs_for`, including what S3 needs to answer
  404 rather than 403 and what Athena reads with the caller's credentials), evaluated
  against the role's statements, and refused with AccessDenied naming the component,
  the call and the resource. Every decision is kept in :attr:`Rehearsal.calls`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from covidlake.storage import S3Storage
from tests.infrastructure.iam_policy import Decision, Need, evaluate
from tests.infrastructure.job_code import upload_job_code

# component -> (logical id of its role in the transformed template, the service that assumes it)
COMPONENTS: dict[str, tuple[str, str]] = {
    "ingest": ("IngestFunctionRole", "lambda.amazonaws.com"),
    "create_emr": ("CreateEmrFunctionRole", "lambda.amazonaws.com"),
    "show_results": ("ShowResultsFunctionRole", "lambda.amazonaws.com"),
    "emr_instance": ("EmrInstanceRole", "ec2.amazonaws.com"),
    "emr_service": ("EmrServiceRole", "elasticmapreduce.amazonaws.com"),
    "state_machine": ("PipelineStateMachineRole", "states.amazonaws.com"),
}


@dataclass(frozen=True)
class Deployment:
    """The stack the rehearsal stands in for."""

    account: str = "123456789012"
    region: str = "us-east-1"
    stack: str = "covidlake-rehearsal"
    bucket: str = "covidlake-rehearsal-lake"
    db_host: str = "127.0.0.1"
    # the RDS-managed secret's ARN (Secrets Manager adds a random suffix: known once created)
    db_secret_arn: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def bucket_arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}"

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{resource}"


# --- the template, resolved ------------------------------------------------------------------

NO_VALUE = object()


class Resolver:
    """Evaluates CloudFormation intrinsics of the transformed template for one Deployment."""

    def __init__(self, template: dict, deployment: Deployment):
        self.template = template
        self.d = deployment
        self.params = {k: v.get("Default") for k, v in template.get("Parameters", {}).items()}
        self.params.update({"VpcId": "vpc-0rehearsal", "SubnetIds": ["subnet-0aaa", "subnet-0bbb"]})
        self.params.update(deployment.parameters)
        self.conditions = {name: self._condition(expr) for name, expr in template.get("Conditions", {}).items()}

    def _condition(self, expr) -> bool:
        fn, arg = next(iter(expr.items()))
        if fn == "Fn::Equals":
            left, right = (self(v) for v in arg)
            return str(left) == str(right)
        if fn == "Fn::Not":
            return not self._condition(arg[0])
        if fn == "Fn::And":
            return all(self._condition(a) for a in arg)
        if fn == "Fn::Or":
            return any(self._condition(a) for a in arg)
        if fn == "Condition":
            return self._condition(self.template["Conditions"][arg])
        raise ValueError(f"condition function {fn} not modelled")

    def ref(self, name: str) -> Any:
        d = self.d
        pseudo = {
            "AWS::AccountId": d.account,
            "AWS::Region": d.region,
            "AWS::StackName": d.stack,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.params:
            value = self.params[name]
            return value if isinstance(value, list) else str(value)
        res = self.template["Resources"][name]
        kind, props = res["Type"], res.get("Properties", {})
        if kind == "AWS::S3::Bucket":
            return d.bucket
        if kind == "AWS::SNS::Topic":
            return d.arn("sns", f"{d.stack}-{name}")
        if kind == "AWS::Glue::Database":
            return self(props["DatabaseInput"]["Name"])
        if kind == "AWS::Athena::WorkGroup":
            return self(props["Name"])
        if kind == "AWS::StepFunctions::StateMachine":
            return d.arn("states", f"stateMachine:{self(props['StateMachineName'])}")
        return f"{d.stack}-{name}"

    def get_att(self, name: str, attr: str) -> str:
        d = self.d
        kind = self.template["Resources"][name]["Type"]
        if attr == "Arn":
            if kind == "AWS::S3::Bucket":
                return d.bucket_arn
            if kind == "AWS::IAM::Role":
                return f"arn:aws:iam::{d.account}:role/{self.ref(name)}"
            if kind == "AWS::IAM::InstanceProfile":
                return f"arn:aws:iam::{d.account}:instance-profile/{self.ref(name)}"
            if kind == "AWS::Lambda::Function":
                return d.arn("lambda", f"function:{self.ref(name)}")
            if kind == "AWS::Logs::LogGroup":
                return d.arn("logs", f"log-group:{self.ref(name)}:*")
        if kind == "AWS::SNS::Topic" and attr == "TopicName":
            return self.ref(name).rsplit(":", 1)[1]
        if (name, attr) == ("Database", "MasterUserSecret.SecretArn"):
            return d.db_secret_arn or d.arn("secretsmanager", "secret:rds!db-rehearsal")
        if (name, attr) == ("Database", "Endpoint.Address"):
            return d.db_host
        raise KeyError(f"rehearsal has no value for !GetAtt {name}.{attr}")

    def __call__(self, value: Any, variables: dict | None = None) -> Any:
        if isinstance(value, list):
            items = [self(v, variables) for v in value]
            return [i for i in items if i is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) != 1 or not next(iter(value)).startswith(("Fn::", "Ref")):
            items = {k: self(v, variables) for k, v in value.items()}
            return {k: v for k, v in items.items() if v is not NO_VALUE}
        fn, arg = next(iter(value.items()))
        if fn == "Ref":
            return self.ref(arg)
        if fn == "Fn::GetAtt":
            name, attr = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.get_att(name, attr)
        if fn == "Fn::If":
            cond, yes, no = arg
            return self(yes if self.conditions[cond] else no, variables)
        if fn == "Fn::Join":
            sep, items = arg
            return sep.join(str(i) for i in self(items, variables))
        if fn == "Fn::Select":
            index, items = arg
            return self(items, variables)[int(index)]
        if fn == "Fn::Sub":
            text, own = (arg, {}) if isinstance(arg, str) else (arg[0], {k: self(v) for k, v in arg[1].items()})
            return re.sub(r"\$\{([^}!][^}]*)\}", lambda m: str(self._sub_var(m.group(1), own)), text)
        raise ValueError(f"intrinsic {fn} not modelled")

    def _sub_var(self, name: str, own: dict) -> Any:
        if name in own:
            return own[name]
        if "." in name and not name.startswith("AWS::"):
            return self.get_att(*name.split(".", 1))
        return self.ref(name)


@dataclass
class RoleSpec:
    component: str
    logical_id: str
    name: str
    arn: str
    trust: dict
    policies: dict[str, dict]  # inline policy name -> document, resolved
    managed: list[str]

    def statements(self, drop: frozenset[str] = frozenset()) -> list[tuple[str, dict]]:
        """(label, statement) of every inline statement; label = policy/Sid or policy/#index."""
        out = []
        for policy, doc in self.policies.items():
            statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
            for i, st in enumerate(statements):
                label = f"{self.component}:{policy}/{st.get('Sid', f'#{i}')}"
                if label not in drop:
                    out.append((label, st))
        return out


def role_specs(transformed: dict, deployment: Deployment) -> dict[str, RoleSpec]:
    """Every component's role, from the transformed template (never a hand copy); with
    ExistingExecutionRoleName, the existing roles the resources name (shared_role_specs)."""
    if uses_execution_role(transformed, deployment):
        return shared_role_specs(transformed, deployment)
    resolve = Resolver(transformed, deployment)
    specs = {}
    for component, (logical_id, _) in COMPONENTS.items():
        props = transformed["Resources"][logical_id]["Properties"]
        name = resolve.ref(logical_id)
        specs[component] = RoleSpec(
            component=component,
            logical_id=logical_id,
            name=name,
            arn=resolve.get_att(logical_id, "Arn"),
            trust=resolve(props["AssumeRolePolicyDocument"]),
            policies={p["PolicyName"]: resolve(p["PolicyDocument"]) for p in props.get("Policies", [])},
            managed=resolve(props.get("ManagedPolicyArns", [])),
        )
    return specs


# The single existing role of ExistingExecutionRoleName (an AWS Academy Learner Lab's LabRole),
# as the rehearsal stands it in: broad service-wide grants on the services the stack uses, assumable
# by every service that runs a component. Not a copy of LabRole (its exact policy is not
# published): it proves the wiring (each resource names that role), not least privilege.
SHARED_ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "LabRoleLike",
            "Effect": "Allow",
            "Action": [
                "s3:*",
                "secretsmanager:*",
                "athena:*",
                "glue:*",
                "elasticmapreduce:*",
                "states:*",
                "lambda:*",
                "sns:*",
                "events:*",
                "logs:*",
                "xray:*",
                "cloudwatch:*",
                "ec2:*",
                "iam:PassRole",
                "iam:CreateServiceLinkedRole",
            ],
            "Resource": "*",
        }
    ],
}
SHARED_ROLE_SERVICES = [
    "lambda.amazonaws.com",
    "states.amazonaws.com",
    "scheduler.amazonaws.com",
    "elasticmapreduce.amazonaws.com",
    "ec2.amazonaws.com",
]


def uses_execution_role(transformed: dict, deployment: Deployment) -> bool:
    return Resolver(transformed, deployment).conditions.get("UseExecutionRole", False)


def created_resources(transformed: dict, deployment: Deployment) -> dict[str, dict]:
    """The resources CloudFormation creates for the deployment's parameters (conditions evaluated)."""
    conditions = Resolver(transformed, deployment).conditions
    return {k: r for k, r in transformed["Resources"].items() if conditions.get(r.get("Condition"), True)}


def named_role_arns(transformed: dict, deployment: Deployment) -> dict[str, str]:
    """The role each runtime resource names, resolved as CloudFormation would: the three
    functions' Role, the state machine's RoleArn, the schedule's target RoleArn, and the EMR
    service role and instance profile (the role inside it) create_emr puts in the plan."""
    resolve = Resolver(transformed, deployment)
    res = transformed["Resources"]
    functions = {"ingest": "IngestFunction", "create_emr": "CreateEmrFunction", "show_results": "ShowResultsFunction"}
    out = {c: resolve(res[logical_id]["Properties"]["Role"]) for c, logical_id in functions.items()}
    out["state_machine"] = resolve(res["PipelineStateMachine"]["Properties"]["RoleArn"])
    schedules = [r for r in res.values() if r["Type"] == "AWS::Scheduler::Schedule"]
    out["schedule"] = resolve(schedules[0]["Properties"]["Target"]["RoleArn"])
    rules = [r for r in created_resources(transformed, deployment).values() if r["Type"] == "AWS::Events::Rule"]
    for rule in rules:  # ScheduleService=rule
        out["schedule_rule"] = resolve(rule["Properties"]["Targets"][0]["RoleArn"])
    env = function_environment(transformed, deployment, "CreateEmrFunction")
    out["emr_service"] = role_arn_of(transformed, deployment, env["COVIDLAKE_EMR_SERVICE_ROLE"])
    out["emr_instance"] = role_arn_of(transformed, deployment, env["COVIDLAKE_EMR_INSTANCE_PROFILE"])
    return out


def shared_role_specs(transformed: dict, deployment: Deployment) -> dict[str, RoleSpec]:
    """With ExistingExecutionRoleName: each component gets the role its resource names, every
    one of them holding SHARED_ROLE_POLICY (the lab's EMR roles too)."""
    named = named_role_arns(transformed, deployment)
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": SHARED_ROLE_SERVICES}, "Action": "sts:AssumeRole"}],
    }
    return {
        component: RoleSpec(
            component=component,
            logical_id="",
            name=named[component].split(":role/", 1)[1],
            arn=named[component],
            trust=trust,
            policies={"shared": SHARED_ROLE_POLICY},
            managed=[],
        )
        for component in COMPONENTS
    }


def function_environment(transformed: dict, deployment: Deployment, logical_id: str) -> dict[str, str]:
    """A function's environment variables as Lambda would set them (Globals merged by SAM)."""
    props = transformed["Resources"][logical_id]["Properties"]
    variables = Resolver(transformed, deployment)(props.get("Environment", {}).get("Variables", {}))
    return {k: str(v) for k, v in variables.items()}


# --- what AWS authorizes for each call ------------------------------------------------------


@dataclass
class World:
    """What the permission model needs to know of the fake account (read from moto's backends)."""

    deployment: Deployment

    def object_exists(self, bucket: str, key: str) -> bool:
        from moto.s3.models import s3_backends

        b = s3_backends[self.deployment.account]["aws"].buckets.get(bucket)
        return b is not None and key in b.keys

    def query(self, query_id: str):
        from moto.athena.models import athena_backends

        return athena_backends[self.deployment.account][self.deployment.region].executions[query_id]

    def cluster_tags(self, cluster_id: str) -> dict[str, str]:
        from moto.emr.models import emr_backends

        cluster = emr_backends[self.deployment.account][self.deployment.region].clusters.get(cluster_id)
        tags = cluster.tags if cluster else {}
        return {t["Key"]: t["Value"] for t in tags} if isinstance(tags, list) else dict(tags)

    def workgroup_output(self, workgroup: str) -> str:
        from moto.athena.models import athena_backends

        wg = athena_backends[self.deployment.account][self.deployment.region].work_groups[workgroup]
        return wg.configuration["ResultConfiguration"]["OutputLocation"]


def _s3_object(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def _s3_read(world: World, bucket: str, key: str) -> list[Need]:
    """GetObject/HeadObject: s3:GetObject; for a missing key S3 answers 404 only to a caller
    that may s3:ListBucket (a request with no s3:prefix), else 403."""
    needs = [Need.of("s3:GetObject", _s3_object(bucket, key))]
    if not world.object_exists(bucket, key):
        needs.append(Need.of("s3:ListBucket", f"arn:aws:s3:::{bucket}"))
    return needs


_TABLE_IN_SQL = re.compile(r'(?:FROM|TABLE(?: IF NOT EXISTS)?)\s+[`"]?(\w+)[`"]?\.[`"]?(\w+)[`"]?', re.IGNORECASE)
_LOCATION_IN_SQL = re.compile(r"LOCATION\s+'s3://([^/']+)/([^']*)'", re.IGNORECASE)


def athena_query_needs(world: World, sql: str, workgroup: str, query_id: str) -> list[Need]:
    """What Athena does with the caller's credentials for one query (Athena user guide,
    "Identity and access management in Athena"): the Glue catalog objects it reads or
    creates, the table's S3 location, and the result object in the workgroup's location."""
    d = world.deployment
    needs = [Need.of("athena:StartQueryExecution", d.arn("athena", f"workgroup/{workgroup}"))]
    found = _TABLE_IN_SQL.search(sql)
    if found:
        db, table = found.groups()
        glue = [d.arn("glue", "catalog"), d.arn("glue", f"database/{db}"), d.arn("glue", f"table/{db}/{table}")]
        needs += [Need.of("glue:GetDatabase", r) for r in glue[:2]]
        needs += [Need.of("glue:GetTable", r) for r in glue]
        if sql.lstrip().upper().startswith("CREATE"):
            needs += [Need.of("glue:CreateTable", r) for r in glue]
            location = _LOCATION_IN_SQL.search(sql)
            bucket, prefix = location.groups() if location else (d.bucket, f"refined/{table}/")
        else:
            bucket, prefix = d.bucket, f"refined/{table}/"
            needs.append(Need.of("s3:GetObject", _s3_object(bucket, f"{prefix}part-00000.snappy.parquet")))
        needs.append(Need.of("s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": prefix}))
    out_bucket, _, out_prefix = world.workgroup_output(workgroup).removeprefix("s3://").partition("/")
    needs += [
        Need.of("s3:GetBucketLocation", f"arn:aws:s3:::{out_bucket}"),
        Need.of("s3:PutObject", _s3_object(out_bucket, f"{out_prefix}{query_id}.csv")),
    ]
    return needs


def needs_for(world: World, service: str, operation: str, params: dict) -> list[Need]:
    """The IAM actions and resources AWS authorizes for one API call (before it runs)."""
    d = world.deployment
    p = params
    if service == "s3":
        bucket = p.get("Bucket", "")
        if operation in ("GetObject", "HeadObject"):
            return _s3_read(world, bucket, p["Key"])
        if operation in ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
            return [Need.of("s3:PutObject", _s3_object(bucket, p["Key"]))]
        if operation == "AbortMultipartUpload":
            return [Need.of("s3:AbortMultipartUpload", _s3_object(bucket, p["Key"]))]
        if operation in ("ListObjectsV2", "ListObjects"):
            return [Need.of("s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": p.get("Prefix", "")})]
        if operation == "CopyObject":
            src = p["CopySource"]
            src_bucket, src_key = (src["Bucket"], src["Key"]) if isinstance(src, dict) else src.split("/", 1)
            return [
                Need.of("s3:GetObject", _s3_object(src_bucket, src_key)),
                Need.of("s3:PutObject", _s3_object(bucket, p["Key"])),
            ]
        if operation == "DeleteObject":
            return [Need.of("s3:DeleteObject", _s3_object(bucket, p["Key"]))]
        if operation == "DeleteObjects":
            return [Need.of("s3:DeleteObject", _s3_object(bucket, o["Key"])) for o in p["Delete"]["Objects"]]
        if operation == "GetBucketLocation":
            return [Need.of("s3:GetBucketLocation", f"arn:aws:s3:::{bucket}")]
    if service == "athena":
        if operation == "StartQueryExecution":
            workgroup = p.get("WorkGroup", "primary")
            return [Need.of("athena:StartQueryExecution", d.arn("athena", f"workgroup/{workgroup}"))]
        if operation in ("GetQueryExecution", "GetQueryResults", "StopQueryExecution"):
            execution = world.query(p["QueryExecutionId"])
            needs = [Need.of(f"athena:{operation}", d.arn("athena", f"workgroup/{execution.workgroup.name}"))]
            if operation == "GetQueryResults":
                output = world.workgroup_output(execution.workgroup.name)
                out_bucket, _, prefix = output.removeprefix("s3://").partition("/")
                needs.append(Need.of("s3:GetObject", _s3_object(out_bucket, f"{prefix}{p['QueryExecutionId']}.csv")))
            return needs
        if operation == "GetWorkGroup":
            return [Need.of("athena:GetWorkGroup", d.arn("athena", f"workgroup/{p['WorkGroup']}"))]
    if service == "emr":
        if operation == "ListClusters":  # no resource-level permission
            return [Need.of("elasticmapreduce:ListClusters", "*")]
        if operation in ("DescribeCluster", "TerminateJobFlows"):
            ids = [p["ClusterId"]] if operation == "DescribeCluster" else p["JobFlowIds"]
            return [
                Need.of(
                    f"elasticmapreduce:{operation}",
                    d.arn("elasticmapreduce", f"cluster/{cluster_id}"),
                    {f"aws:ResourceTag/{k}": v for k, v in world.cluster_tags(cluster_id).items()},
                )
                for cluster_id in ids
            ]
    if service == "secretsmanager" and operation == "GetSecretValue":
        return [Need.of("secretsmanager:GetSecretValue", p["SecretId"])]
    if service == "cloudwatch" and operation == "PutMetricData":
        return [Need.of("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": p["Namespace"]})]
    if service == "sts" and operation == "GetCallerIdentity":
        return []
    raise NotImplementedError(f"the rehearsal does not model the permissions of {service}:{operation} (needs_for)")


def _after_call(world: World, service: str, operation: str, params: dict, response: dict) -> list[Need]:
    """Permissions only known once the call ran (Athena's own reads and writes for a query)."""
    if service == "athena" and operation == "StartQueryExecution":
        qid = response["QueryExecutionId"]
        return athena_query_needs(world, params["QueryString"], params.get("WorkGroup", "primary"), qid)[1:]
    return []


# --- the rehearsal ---------------------------------------------------------------------------


@dataclass
class Call:
    component: str
    call: str  # service:Operation
    need: Need
    decision: Decision

    def __str__(self) -> str:
        verdict = f"allowed by {', '.join(self.decision.allowed_by)}" if self.decision.allowed else "DENIED"
        return f"{self.component}: {self.call} needs {self.need}: {verdict}"


class AccessDenied(ClientError):
    """A call the role's policies do not allow, as AWS would refuse it (403 AccessDenied)."""

    def __init__(self, component: str, role_arn: str, operation: str, need: Need):
        message = (
            f"[rehearsal] component {component} (role {role_arn}) is not authorized to perform "
            f"{need.action} on resource {need.resource} for {operation}"
        )
        response = {"Error": {"Code": "AccessDenied", "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 403}}
        super().__init__(response, operation.split(":")[-1])
        self.component, self.need, self.operation = component, need, operation


class Rehearsal:
    """moto with every role of the template created, assumed and enforced.

    drop: statement labels (``component:policy/Sid``) left out of the roles, for the
    negative control."""

    def __init__(self, transformed: dict, deployment: Deployment | None = None, drop: frozenset[str] = frozenset()):
        self.transformed = transformed
        self.d = deployment or Deployment()
        self.drop = drop
        self.roles = role_specs(transformed, self.d)
        self.world = World(self.d)
        self.calls: list[Call] = []
        self.denied: list[AccessDenied] = []
        self._credentials: dict[str, dict] = {}
        self._component_by_key: dict[str, str] = {}
        self._stack = contextlib.ExitStack()

    # setup ---------------------------------------------------------------------------
    def __enter__(self) -> Rehearsal:
        from moto import mock_aws
        from moto.core import enable_iam_authentication

        env = {
            "AWS_ACCESS_KEY_ID": "admin",
            "AWS_SECRET_ACCESS_KEY": "admin",
            "AWS_DEFAULT_REGION": self.d.region,
            "AWS_REGION": self.d.region,
            "MOTO_ACCOUNT_ID": self.d.account,
        }
        self._stack.enter_context(mock.patch.dict(os.environ, env))
        for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
            self._stack.enter_context(_env_removed(var))
        self._stack.enter_context(mock_aws())
        secret = boto3.client("secretsmanager").create_secret(Name="rds!db-rehearsal", SecretString="{}")
        self.d = replace(self.d, db_secret_arn=secret["ARN"])
        self.roles = role_specs(self.transformed, self.d)
        self.world = World(self.d)
        self._create_resources()
        for component in self.roles:
            self._assume(component)
        # moto checks S3 calls itself (resource-level, 403 as AWS). Its checks of other
        # services see resource "*" only, so those are left to the policy evaluator below.
        self._stack.enter_context(
            mock.patch("moto.core.responses.BaseResponse._authenticate_and_authorize_normal_action", _no_check)
        )
        self._stack.enter_context(enable_iam_authentication())
        self._stack.enter_context(mock.patch.object(BaseClient, "_make_api_call", self._checked_call()))
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _create_resources(self) -> None:
        iam = boto3.client("iam")
        created = set()
        for spec in self.roles.values():
            if spec.name in created:  # one existing role shared by several components
                continue
            created.add(spec.name)
            iam.create_role(RoleName=spec.name, AssumeRolePolicyDocument=json.dumps(spec.trust))
            for policy, statements in self._policies(spec).items():
                iam.put_role_policy(RoleName=spec.name, PolicyName=policy, PolicyDocument=json.dumps(statements))
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=self.d.bucket)
        upload_job_code(s3, self.d.bucket)  # the deployer's `make deploy-jobs`
        resources = self.transformed["Resources"]
        resolve = Resolver(self.transformed, self.d)
        wg = resources["AthenaWorkGroup"]["Properties"]
        config = resolve(wg["WorkGroupConfiguration"])
        boto3.client("athena").create_work_group(
            Name=resolve(wg["Name"]), Configuration={"ResultConfiguration": config["ResultConfiguration"]}
        )

    def _policies(self, spec: RoleSpec) -> dict[str, dict]:
        kept = {label for label, _ in spec.statements(self.drop)}
        out = {}
        for policy, doc in spec.policies.items():
            statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
            keep = [
                st for i, st in enumerate(statements) if f"{spec.component}:{policy}/{st.get('Sid', f'#{i}')}" in kept
            ]
            if keep:
                out[policy] = {"Version": "2012-10-17", "Statement": keep}
        return out

    def _assume(self, component: str) -> None:
        spec = self.roles[component]
        creds = boto3.client("sts").assume_role(RoleArn=spec.arn, RoleSessionName=f"rehearsal-{component}")[
            "Credentials"
        ]
        self._credentials[component] = creds
        self._component_by_key[creds["AccessKeyId"]] = component

    def set_database_secret(self, value: dict) -> None:
        """What RDS keeps in its managed secret (username, password), set as admin."""
        with self.admin():
            secrets = boto3.client("secretsmanager")
            secrets.put_secret_value(SecretId=self.d.db_secret_arn, SecretString=json.dumps(value))

    @contextlib.contextmanager
    def admin(self) -> Iterator[None]:
        """Setup and inspection outside any role (moto's checks off)."""
        from moto.core.authorization import disable_iam_authentication

        with disable_iam_authentication():
            yield

    # components ------------------------------------------------------------------------
    def credentials_for(self, component: str) -> dict[str, str]:
        creds = self._credentials[component]
        return {
            "AccessKeyId": creds["AccessKeyId"],
            "SecretAccessKey": creds["SecretAccessKey"],
            "SessionToken": creds["SessionToken"],
        }

    def session_for(self, component: str) -> boto3.Session:
        c = self.credentials_for(component)
        return boto3.Session(
            aws_access_key_id=c["AccessKeyId"],
            aws_secret_access_key=c["SecretAccessKey"],
            aws_session_token=c["SessionToken"],
            region_name=self.d.region,
        )

    @contextlib.contextmanager
    def as_component(self, component: str, env: dict[str, str] | None = None) -> Iterator[boto3.Session]:
        """Run code as the component runs on AWS: its role's credentials in the environment
        (as Lambda sets them) and as boto3's default session, plus its own env vars."""
        c = self.credentials_for(component)
        creds_env = {
            "AWS_ACCESS_KEY_ID": c["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
            "AWS_SESSION_TOKEN": c["SessionToken"],
        }
        session = self.session_for(component)
        with (
            mock.patch.dict(os.environ, {**(env or {}), **creds_env}),
            mock.patch.object(boto3, "DEFAULT_SESSION", session),
        ):
            yield session

    def check(self, component: str, call: str, need: Need) -> Call:
        """Evaluate one permission of a component against its role's statements, record it."""
        decision = evaluate(self.roles[component].statements(self.drop), need)
        record = Call(component, call, need, decision)
        self.calls.append(record)
        return record

    def _require(self, component: str, call: str, needs: list[Need]) -> None:
        for need in needs:
            if not self.check(component, call, need).decision.allowed:
                err = AccessDenied(component, self.roles[component].arn, call, need)
                self.denied.append(err)
                raise err

    def _checked_call(self):
        original = BaseClient._make_api_call
        rehearsal = self

        def _make_api_call(client, operation_name, api_params):
            creds = client._request_signer._credentials
            key = creds.get_frozen_credentials().access_key if creds is not None else None
            component = rehearsal._component_by_key.get(key)
            if component is None:
                return original(client, operation_name, api_params)
            service = client.meta.service_model.service_name
            call = f"{service}:{operation_name}"
            rehearsal._require(component, call, needs_for(rehearsal.world, service, operation_name, api_params))
            response = original(client, operation_name, api_params)
            rehearsal._require(
                component, call, _after_call(rehearsal.world, service, operation_name, api_params, response)
            )
            return response

        return _make_api_call

    # results -----------------------------------------------------------------------------
    def used_statements(self, component: str | None = None) -> set[str]:
        return {label for c in self.calls if component in (None, c.component) for label in c.decision.allowed_by}

    def report(self) -> str:
        return "\n".join(str(c) for c in self.calls)


def _no_check(self, resource: str = "*") -> None:
    """moto's authorization of non-S3 services, replaced by the policy evaluator."""


@contextlib.contextmanager
def _env_removed(name: str) -> Iterator[None]:
    old = os.environ.pop(name, None)
    try:
        yield
    finally:
        if old is not None:
            os.environ[name] = old


# --- the state machine's Tasks: the permissions AWS documents for each integration ----------
# Step Functions developer guide, "IAM policies for ..." pages (emr-iam, athena-iam,
# lambda-iam, sns-iam) and "Create and manage Amazon EMR clusters" (the
# AWSServiceRoleForEMRCleanup service-linked role); aws-sdk integrations need the API's own
# action. .sync EMR tasks also manage the EventBridge rule Step Functions uses to follow them.

EMR_SYNC_RULES = {
    "createCluster": "StepFunctionsGetEventForEMRRunJobFlowRule",
    "addStep": "StepFunctionsGetEventForEMRAddJobFlowStepsRule",
    "terminateCluster": "StepFunctionsGetEventForEMRTerminateJobFlowsRule",
}
EMR_SYNC_ACTIONS = {
    "createCluster": [
        "elasticmapreduce:RunJobFlow",
        "elasticmapreduce:DescribeCluster",
        "elasticmapreduce:TerminateJobFlows",
    ],
    "addStep": ["elasticmapreduce:AddJobFlowSteps", "elasticmapreduce:DescribeStep", "elasticmapreduce:CancelSteps"],
    "terminateCluster": ["elasticmapreduce:TerminateJobFlows", "elasticmapreduce:DescribeCluster"],
}
REHEARSAL_CLUSTER_ID = "j-REHEARSAL0001"


def definition(transformed: dict, deployment: Deployment, asl: dict) -> dict:
    """The ASL with the template's DefinitionSubstitutions applied."""
    subs = Resolver(transformed, deployment)(
        transformed["Resources"]["PipelineStateMachine"]["Properties"]["DefinitionSubstitutions"]
    )
    text = json.dumps(asl)
    for name, value in subs.items():
        text = text.replace("${" + name + "}", str(value))
    return json.loads(text)


def task_states(asl: dict) -> Iterator[tuple[str, dict]]:
    """Every Task state, Map item processors included."""
    for name, state in asl["States"].items():
        if state["Type"] == "Task":
            yield name, state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from task_states(processor)


def role_arn_of(transformed: dict, deployment: Deployment, name_or_arn: str) -> str:
    """A role (or an instance profile: the role inside it) named in the plan, as an ARN."""
    resolve = Resolver(transformed, deployment)
    for logical_id, res in transformed["Resources"].items():
        if res["Type"] == "AWS::IAM::InstanceProfile" and name_or_arn in (
            resolve.ref(logical_id),
            resolve.get_att(logical_id, "Arn"),
        ):
            return resolve.get_att(res["Properties"]["Roles"][0]["Ref"], "Arn")
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    return f"arn:aws:iam::{deployment.account}:role/{name_or_arn}"


def task_needs(rehearsal: Rehearsal, state: dict, plan: dict) -> list[Need]:
    """What the state machine role needs for one Task, given the run plan create_emr built."""
    d = rehearsal.d
    resource = state["Resource"]
    integration = resource.split(":::", 1)[1]
    cluster = d.arn("elasticmapreduce", f"cluster/{REHEARSAL_CLUSTER_ID}")
    if integration == "aws-sdk:sfn:listExecutions":
        own = Resolver(rehearsal.transformed, d).ref("PipelineStateMachine")
        return [Need.of("states:ListExecutions", own)]
    if integration == "lambda:invoke":
        return [Need.of("lambda:InvokeFunction", state["Parameters"]["FunctionName"])]
    if integration == "sns:publish":
        return [Need.of("sns:Publish", state["Parameters"]["TopicArn"])]
    if integration.startswith("elasticmapreduce:"):
        api = integration.split(":")[1].removesuffix(".sync")
        needs = []
        for action in EMR_SYNC_ACTIONS[api]:
            if action == "elasticmapreduce:RunJobFlow":
                tags = {f"aws:RequestTag/{t['Key']}": t["Value"] for t in plan["cluster"]["Tags"]}
                needs.append(Need.of(action, "*", {**tags, "aws:TagKeys": [t["Key"] for t in plan["cluster"]["Tags"]]}))
            else:  # the cluster this plan created carries the plan's tags
                resource_tags = {f"aws:ResourceTag/{t['Key']}": t["Value"] for t in plan["cluster"]["Tags"]}
                needs.append(Need.of(action, cluster, resource_tags))
        if api == "createCluster":
            for role in (plan["cluster"]["ServiceRole"], plan["cluster"]["JobFlowRole"]):
                needs.append(
                    Need.of(
                        "iam:PassRole",
                        role_arn_of(rehearsal.transformed, d, role),
                        {"iam:PassedToService": "elasticmapreduce.amazonaws.com"},
                    )
                )
            emr = "elasticmapreduce.amazonaws.com"
            slr = f"arn:aws:iam::{d.account}:role/aws-service-role/{emr}/AWSServiceRoleForEMRCleanup"
            needs.append(Need.of("iam:CreateServiceLinkedRole", slr, {"iam:AWSServiceName": emr}))
        rule = d.arn("events", f"rule/{EMR_SYNC_RULES[api]}")
        needs += [Need.of(a, rule) for a in ("events:PutTargets", "events:PutRule", "events:DescribeRule")]
        return needs
    if integration == "athena:startQueryExecution.sync":
        athena = plan["athena"]
        needs = []
        for i, query in enumerate(athena["queries"]):
            qid = f"rehearsal-ddl-{i}"
            needs += athena_query_needs(rehearsal.world, query["query"], athena["workgroup"], qid)
        wg = d.arn("athena", f"workgroup/{athena['workgroup']}")
        needs += [Need.of("athena:GetQueryExecution", wg), Need.of("athena:StopQueryExecution", wg)]
        return needs
    raise NotImplementedError(f"no documented permissions modelled for {resource}")


# --- EMR: what Spark reads and writes (through EMRFS, under the instance role) ----------------
# Declared, and checked against the same policy; the rehearsal's stand-in for EMRFS asserts
# that every path the jobs hand to Spark falls under one of these prefixes.
SPARK_PREFIXES = {
    "read": ("code/", "raw/covid_data/", "raw/country_data/", "trusted/snapshot", "_staging/"),
    "write": ("_staging/trusted/", "_staging/refined/", "emr-logs/"),
}
EMRFS_ACTIONS = {
    "read": ("s3:GetObject",),
    # a Spark overwrite deletes what it replaces; multipart uploads may be aborted
    "write": ("s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"),
}


def spark_needs(deployment: Deployment) -> list[tuple[str, Need]]:
    out = []
    for mode, prefixes in SPARK_PREFIXES.items():
        for prefix in prefixes:
            key = prefix if prefix.endswith("/") else prefix + "/"
            out.append((f"spark:{mode} {prefix}", Need.of("s3:ListBucket", deployment.bucket_arn, {"s3:prefix": key})))
            out += [
                (f"spark:{mode} {prefix}", Need.of(a, _s3_object(deployment.bucket, f"{key}part-00000")))
                for a in EMRFS_ACTIONS[mode]
            ]
    return out


class EmrfsStandIn(S3Storage):
    """The lake as an EMR job sees it: the job's own S3 calls go to the bucket (under the
    instance role's client); the paths it hands to Spark are local mirrors, synced from
    the bucket before Spark reads them and to the bucket before they are published, with
    the same client, as EMRFS would. Every Spark path is recorded."""

    def __init__(self, bucket: str, client, mirror: Path):
        super().__init__(bucket, client=client)
        self.mirror = mirror
        self.spark_paths: list[str] = []

    def url(self, key: str) -> str:
        self.spark_paths.append(key)
        if not key.startswith("_staging/"):
            for found in self.list(key):
                target = self.mirror / found
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(self.get_bytes(found))
        return f"file://{self.mirror / key}"

    def s3_url(self, key: str) -> str:
        return super().url(key)

    def publish(self, staged_to_final: dict[str, str]) -> None:
        for staged in staged_to_final:
            for path in sorted((self.mirror / staged).rglob("*")):
                if path.is_file() and not path.name.startswith("."):
                    self.client.upload_file(str(path), self.bucket, path.relative_to(self.mirror).as_posix())
        super().publish(staged_to_final)

    def delete_prefix(self, prefix: str) -> None:
        super().delete_prefix(prefix)
        shutil.rmtree(self.mirror / prefix, ignore_errors=True)

    def local_input(self, s3_url: str) -> str:
        """An s3:// input of the plan (the raw CSVs), as Spark reads it through the mirror."""
        return self.url(s3_url.removeprefix(f"s3://{self.bucket}/"))
