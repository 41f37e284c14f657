"""Lambda: build the run plan (EMR cluster request, Spark steps, Athena DDL) for the state
machine. Thin: the plan is built by covidlake.emr_cluster.build_run_plan."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from covidlake.emr_cluster import EmrSettings, build_run_plan, require_job_code, terminate_leftover_clusters
from covidlake.settings import get_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
settings = get_settings(EmrSettings)  # validated once per container: a bad env var fails the cold start


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    plan = build_run_plan(event, settings)
    # This execution has no cluster yet: any active one of this stack is an interrupted run's.
    leftovers = terminate_leftover_clusters(settings)
    if leftovers:
        logger.warning("terminated clusters left by an interrupted run", cluster_ids=leftovers)
        metrics.add_metric(name="LeftoverClustersTerminated", unit=MetricUnit.Count, value=len(leftovers))
    require_job_code(settings)  # JobCodeMissing names each missing file
    cluster = plan["cluster"]
    logger.info(
        "run plan built",
        run_id=plan["run_id"],
        release=cluster["ReleaseLabel"],
        fleets=[
            {f["Name"]: {"on_demand": f["TargetOnDemandCapacity"], "spot": f["TargetSpotCapacity"]}}
            for f in cluster["Instances"].get("InstanceFleets", [])
        ],
        groups={
            g["Name"]: f"{g['InstanceCount']} x {g['InstanceType']}"
            for g in cluster["Instances"].get("InstanceGroups", [])
        },
    )
    metrics.add_metric(name="ClusterRequests", unit=MetricUnit.Count, value=1)
    return plan
