"""The run plan for one pipeline run on AWS: the EMR cluster request, the two Spark steps
and the Athena DDL that creates the refined tables.

The state machine calls the ``create_emr`` Lambda, which returns ``build_run_plan(...)``;
the ``createCluster.sync`` task passes ``plan.cluster`` through unchanged (it takes the
RunJobFlow request syntax), the ``addStep.sync`` tasks pass ``plan.steps.<name>``, and the
Athena Map state runs ``plan.athena.queries``.

Everything account-specific (bucket, roles, subnets, security groups) comes from
settings (environment variables set by template.yaml), never from code. This module
imports neither pyspark nor pandas: it runs inside the Lambda layer.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import AliasChoices, Field, field_validator, model_validator

from covidlake.athena_ddl import refined_table_ddl
from covidlake.errors import JobCodeMissing
from covidlake.raw.ingest import MANIFEST_PREFIX
from covidlake.settings import CovidlakeEnv, get_settings

# AmazonEMRServicePolicy_v2 only acts on resources carrying this tag.
EMR_MANAGED_POLICY_TAG = {"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"}

# What scripts/deploy_jobs.py uploads under the code prefix, and the plan points EMR at.
JOB_CODE_FILES = ("bootstrap.sh", "covidlake.zip", "emr/etl.py", "emr/analytics.py")

_RUN_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# CloudWatch namespaces: 1-255 of these characters, and never AWS/ (reserved).
_NAMESPACE = re.compile(r"^[A-Za-z0-9 ._/#:-]{1,255}$")


def _split(value: Any) -> list[str]:
    """Comma-separated env var (CloudFormation `!Join [",", ...]`) -> list; blanks dropped."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v).strip() for v in value if str(v).strip()]


class EmrSettings(CovidlakeEnv):
    """Typed settings of the cluster, from COVIDLAKE_* environment variables (the shared
    fields, athena_database and athena_workgroup among them, come from CovidlakeEnv)."""

    lake_uri: str = Field(description="s3://bucket[/prefix] of the data lake")
    code_uri: str | None = Field(None, description="s3:// prefix holding emr/*.py, bootstrap.sh, covidlake.zip")
    emr_log_uri: str | None = None
    emr_cluster_name: str = "covidlake"
    emr_release_label: str = "emr-7.5.0"
    emr_service_role: str = Field(description="EMR service role name or ARN")
    emr_instance_profile: str = Field(description="EC2 instance profile name or ARN for the cluster nodes")
    emr_subnet_ids: str = ""
    emr_additional_security_group_ids: str = ""
    emr_primary_instance_types: str = "m5.xlarge"
    emr_core_instance_types: str = "m5.xlarge,m5a.xlarge,m6i.xlarge"
    emr_primary_on_demand: bool = True
    # Instance fleets (several types, spot with on-demand fallback) or instance groups (one type
    # per node role, on-demand, one subnet): for accounts where EC2 Fleet is not allowed, such as
    # an AWS Academy Learner Lab (docs/academy.md).
    emr_instance_layout: Literal["fleets", "groups"] = "fleets"
    emr_core_capacity: int = Field(2, ge=1, le=100)
    emr_core_on_demand_capacity: int = Field(0, ge=0, le=100)
    emr_spot_timeout_minutes: int = Field(10, ge=5, le=1440)
    emr_ebs_size_gb: int = Field(32, ge=16, le=1024)
    emr_idle_timeout_seconds: int = Field(3600, ge=60, le=604800)
    # the state machine's TimeoutSecondsPath for each Spark step
    emr_step_timeout_seconds: int = Field(3600, ge=60, le=14400)
    emr_tags: str = ""
    # Where emr/etl.py publishes RowsRejected/RowsTrusted_* (--metrics-namespace). In the
    # Lambda this is the Globals' POWERTOOLS_METRICS_NAMESPACE, the namespace the EMR
    # instance role may write to; unset (or empty), the ETL publishes no metric.
    metrics_namespace: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "metrics_namespace", "COVIDLAKE_METRICS_NAMESPACE", "POWERTOOLS_METRICS_NAMESPACE"
        ),
    )
    # The region the ETL publishes those metrics to: EMR nodes have no AWS_REGION of their
    # own, so the plan passes the Lambda's (--metrics-region).
    region: str | None = Field(
        None, validation_alias=AliasChoices("region", "COVIDLAKE_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
    )

    @field_validator("lake_uri")
    @classmethod
    def _s3_only(cls, v: str) -> str:
        parsed = urlparse(v)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"EMR needs an s3:// lake, got {v!r}")
        return v.rstrip("/")

    @field_validator("metrics_namespace")
    @classmethod
    def _namespace(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip()
        if not _NAMESPACE.match(v) or v.startswith("AWS/"):
            raise ValueError(f"bad CloudWatch namespace {v!r}")
        return v

    @model_validator(mode="after")
    def _capacity(self) -> EmrSettings:
        if self.emr_core_on_demand_capacity > self.emr_core_capacity:
            raise ValueError("emr_core_on_demand_capacity cannot exceed emr_core_capacity")
        if not _split(self.emr_primary_instance_types) or not _split(self.emr_core_instance_types):
            raise ValueError("at least one primary and one core instance type are required")
        spot = not self.emr_primary_on_demand or self.emr_core_on_demand_capacity < self.emr_core_capacity
        if self.emr_instance_layout == "groups" and spot:
            raise ValueError(
                "instance groups run on-demand only: set emr_primary_on_demand=true and "
                "emr_core_on_demand_capacity = emr_core_capacity (or use emr_instance_layout=fleets)"
            )
        if self.metrics_namespace and not self.region:
            raise ValueError("publishing metrics needs a region: set AWS_REGION or COVIDLAKE_REGION")
        return self

    @property
    def code(self) -> str:
        return (self.code_uri or f"{self.lake_uri}/code").rstrip("/")

    @property
    def logs(self) -> str:
        return (self.emr_log_uri or f"{self.lake_uri}/emr-logs").rstrip("/") + "/"

    @property
    def tags(self) -> list[dict[str, str]]:
        """`k=v,k2=v2` from the stack plus the tags every cluster carries."""
        tags = {"project": "covidlake"}
        for pair in _split(self.emr_tags):
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"bad tag {pair!r}: use key=value")
            tags[key.strip()] = value.strip()
        tags[EMR_MANAGED_POLICY_TAG["Key"]] = EMR_MANAGED_POLICY_TAG["Value"]
        return [{"Key": k, "Value": v} for k, v in tags.items()]


def _ebs(s: EmrSettings) -> dict[str, Any]:
    return {
        "EbsBlockDeviceConfigs": [
            {"VolumeSpecification": {"VolumeType": "gp3", "SizeInGB": s.emr_ebs_size_gb}, "VolumesPerInstance": 1}
        ],
        "EbsOptimized": True,
    }


def _group(name: str, role: str, instance_type: str, count: int, s: EmrSettings) -> dict[str, Any]:
    return {
        "Name": name,
        "InstanceRole": role,
        "Market": "ON_DEMAND",
        "InstanceType": instance_type,
        "InstanceCount": count,
        "EbsConfiguration": _ebs(s),
    }


def _fleet(name: str, fleet_type: str, types: list[str], on_demand: int, spot: int, s: EmrSettings) -> dict:
    fleet: dict[str, Any] = {
        "Name": name,
        "InstanceFleetType": fleet_type,
        "TargetOnDemandCapacity": on_demand,
        "TargetSpotCapacity": spot,
        "InstanceTypeConfigs": [{"InstanceType": t, "WeightedCapacity": 1, "EbsConfiguration": _ebs(s)} for t in types],
    }
    if spot:
        fleet["LaunchSpecifications"] = {
            # No spot capacity within the timeout: fall back to on-demand rather than fail.
            "SpotSpecification": {
                "TimeoutDurationMinutes": s.emr_spot_timeout_minutes,
                "TimeoutAction": "SWITCH_TO_ON_DEMAND",
                "AllocationStrategy": "price-capacity-optimized",
            },
            "OnDemandSpecification": {"AllocationStrategy": "lowest-price"},
        }
    return fleet


def build_cluster_request(settings: EmrSettings, run_id: str) -> dict[str, Any]:
    """The createCluster.sync parameters (RunJobFlow syntax, no Steps: they are added later)."""
    s = settings
    primary_types = _split(s.emr_primary_instance_types)
    core_types = _split(s.emr_core_instance_types)
    core_spot = s.emr_core_capacity - s.emr_core_on_demand_capacity
    subnets = _split(s.emr_subnet_ids)
    instances: dict[str, Any] = {
        # Required by the Step Functions integration; the state machine terminates the
        # cluster itself and AutoTerminationPolicy is the backstop.
        "KeepJobFlowAliveWhenNoSteps": True,
        "TerminationProtected": False,
    }
    if s.emr_instance_layout == "groups":
        # Groups take the first type of each list and live in one subnet (EMR's rule).
        instances["InstanceGroups"] = [
            _group("primary", "MASTER", primary_types[0], 1, s),
            _group("core", "CORE", core_types[0], s.emr_core_capacity, s),
        ]
        if subnets:
            instances["Ec2SubnetId"] = subnets[0]
    else:
        instances["InstanceFleets"] = [
            _fleet(
                "primary", "MASTER", primary_types, int(s.emr_primary_on_demand), int(not s.emr_primary_on_demand), s
            ),
            _fleet("core", "CORE", core_types, s.emr_core_on_demand_capacity, core_spot, s),
        ]
        if subnets:
            instances["Ec2SubnetIds"] = subnets
    extra_sgs = _split(s.emr_additional_security_group_ids)
    if extra_sgs:
        instances["AdditionalMasterSecurityGroups"] = extra_sgs
        instances["AdditionalSlaveSecurityGroups"] = extra_sgs
    return {
        "Name": f"{s.emr_cluster_name}-{run_id}"[:256],
        "ReleaseLabel": s.emr_release_label,
        "Applications": [{"Name": "Spark"}, {"Name": "Hadoop"}],
        "LogUri": s.logs,
        "ServiceRole": s.emr_service_role,
        "JobFlowRole": s.emr_instance_profile,
        "VisibleToAllUsers": True,
        "Instances": instances,
        "BootstrapActions": [
            {
                "Name": "covidlake-bootstrap",
                "ScriptBootstrapAction": {"Path": f"{s.code}/bootstrap.sh", "Args": []},
            }
        ],
        "Configurations": [
            {"Classification": "spark-defaults", "Properties": {"spark.sql.session.timeZone": "UTC"}},
        ],
        "AutoTerminationPolicy": {"IdleTimeout": s.emr_idle_timeout_seconds},
        "StepConcurrencyLevel": 1,
        "Tags": [*s.tags, {"Key": "covidlake:run-id", "Value": run_id}],
    }


def _step(name: str, script: str, args: list[str], settings: EmrSettings) -> dict[str, Any]:
    return {
        "Name": name,
        # The state machine decides what happens on failure (terminate, notify, fail).
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": [
                "spark-submit",
                "--deploy-mode",
                "cluster",
                "--py-files",
                f"{settings.code}/covidlake.zip",
                f"{settings.code}/emr/{script}",
                *args,
            ],
        },
    }


def build_steps(settings: EmrSettings, run_id: str, covid_csv: str, country_csv: str) -> dict[str, dict]:
    for name, url in (("covid_csv", covid_csv), ("country_csv", country_csv)):
        if not url.startswith("s3://"):
            raise ValueError(f"{name} must be an s3:// URL on EMR, got {url!r}")
    lake = settings.lake_uri
    etl_args = ["--lake", lake, "--covid-csv", covid_csv, "--country-csv", country_csv, "--run-id", run_id]
    # The ETL reads the input row counts from the manifest (read only: the manifest is ingest's).
    etl_args += ["--manifest-key", f"{MANIFEST_PREFIX}{run_id}.json"]
    if settings.metrics_namespace:
        etl_args += ["--metrics-region", settings.region, "--metrics-namespace", settings.metrics_namespace]
    return {
        "etl": _step("covidlake-etl", "etl.py", etl_args, settings),
        "analytics": _step("covidlake-analytics", "analytics.py", ["--lake", lake, "--run-id", run_id], settings),
    }


def build_athena_queries(settings: EmrSettings) -> dict[str, Any]:
    ddl = refined_table_ddl(settings.athena_database, settings.lake_uri)
    return {
        "database": settings.athena_database,
        "workgroup": settings.athena_workgroup,
        "queries": [{"table": name, "query": sql} for name, sql in ddl.items()],
    }


def missing_job_code(code: str, s3=None) -> list[str]:
    """The s3:// URLs of JOB_CODE_FILES under `code` that cannot be read (absent, or no permission)."""
    import boto3
    from botocore.exceptions import ClientError

    s3 = s3 or boto3.client("s3")
    missing = []
    for name in JOB_CODE_FILES:
        url = f"{code.rstrip('/')}/{name}"
        bucket, _, key = url.removeprefix("s3://").partition("/")
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") not in ("404", "403", "NoSuchKey", "NotFound"):
                raise
            missing.append(url)
    return missing


def require_job_code(settings: EmrSettings, s3=None) -> None:
    """Fail before a cluster starts (and bills) when its bootstrap or steps would not find their code."""
    missing = missing_job_code(settings.code, s3)
    if missing:
        raise JobCodeMissing(
            f"job code missing at {settings.code}/: {', '.join(missing)}; upload it with "
            "`make deploy-jobs STACK=<stack>` (docs/deploy.md)"
        )


def build_run_plan(ingest_result: dict[str, Any], settings: EmrSettings | None = None) -> dict[str, Any]:
    """From the ingest Lambda's output (run_id, inputs.covid_csv, inputs.country_csv) to the
    whole plan the state machine executes once data changed."""
    settings = settings or get_settings(EmrSettings)
    try:
        run_id = ingest_result["run_id"]
        inputs = ingest_result["inputs"]
        covid_csv, country_csv = inputs["covid_csv"], inputs["country_csv"]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"ingest result lacks {exc}: need run_id and inputs.covid_csv/country_csv") from None
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise ValueError(f"bad run_id {run_id!r}")
    return {
        "run_id": run_id,
        "cluster": build_cluster_request(settings, run_id),
        "steps": build_steps(settings, run_id, covid_csv, country_csv),
        "athena": build_athena_queries(settings),
        "timeouts": {"etl": settings.emr_step_timeout_seconds, "analytics": settings.emr_step_timeout_seconds},
    }


# Clusters that still cost money: every state before TERMINATING.
ACTIVE_CLUSTER_STATES = ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING")


def leftover_clusters(settings: EmrSettings, emr=None) -> list[str]:
    """Ids of this stack's clusters that are still active: named as build_cluster_request names
    them and carrying every tag it gives them. Called while this execution has no cluster of its
    own (the state machine runs one execution at a time), so each one is an interrupted run's."""
    import boto3
    from botocore.exceptions import ClientError

    emr = emr or boto3.client("emr")
    prefix = f"{settings.emr_cluster_name}-"
    wanted = {(t["Key"], t["Value"]) for t in settings.tags}
    found = []
    for page in emr.get_paginator("list_clusters").paginate(ClusterStates=list(ACTIVE_CLUSTER_STATES)):
        for summary in page["Clusters"]:
            # ListClusters carries no tags: the name narrows the DescribeCluster calls to this stack's.
            if not summary["Name"].startswith(prefix):
                continue
            try:
                cluster = emr.describe_cluster(ClusterId=summary["Id"])["Cluster"]
            except ClientError as err:
                # Another stack's cluster with a name like ours: the role may describe only this
                # stack's tagged clusters, so a refusal means "not ours".
                if err.response.get("Error", {}).get("Code") in ("AccessDenied", "AccessDeniedException"):
                    continue
                raise
            tags = {(t["Key"], t["Value"]) for t in cluster.get("Tags", [])}
            if wanted <= tags:
                found.append(summary["Id"])
    return found


def terminate_leftover_clusters(settings: EmrSettings, emr=None) -> list[str]:
    """Terminate what leftover_clusters finds (a stopped or timed-out execution, an expired lab
    session); returns their ids. The idle AutoTerminationPolicy stays the backstop."""
    import boto3

    emr = emr or boto3.client("emr")
    ids = leftover_clusters(settings, emr)
    if ids:
        emr.terminate_job_flows(JobFlowIds=ids)
    return ids
