"""A cluster an interrupted run left behind (a stopped or timed-out execution, a Learner Lab
session that ended) is terminated by the next run's create_emr, and nothing else is."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from covidlake.emr_cluster import EmrSettings, build_run_plan, leftover_clusters, terminate_leftover_clusters

from .conftest import ROOT, function_env

EVENT = json.loads((ROOT / "events" / "create_emr.json").read_text())


@pytest.fixture
def settings(template, monkeypatch, aws):
    for key, value in function_env(template, "CreateEmrFunction").items():
        monkeypatch.setenv(key, value)
    return EmrSettings()


def _start(emr, request: dict, name: str | None = None, tags: list | None = None) -> str:
    request = {**request, "Name": name or request["Name"], "Tags": tags if tags is not None else request["Tags"]}
    return emr.run_job_flow(**request)["JobFlowId"]


def _state(emr, cluster_id: str) -> str:
    return emr.describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]["State"]


def test_only_this_stacks_active_clusters_are_terminated(settings):
    request = build_run_plan(EVENT, settings)["cluster"]
    other_stack = [t if t["Key"] != "covidlake:stack" else {**t, "Value": "someone-else"} for t in request["Tags"]]
    with mock_aws():
        emr = boto3.client("emr", region_name="us-east-1")
        left = _start(emr, request)
        done = _start(emr, request, name=f"{settings.emr_cluster_name}-finished")
        emr.terminate_job_flows(JobFlowIds=[done])
        same_name_other_stack = _start(emr, request, tags=other_stack)
        unrelated = _start(emr, request, name="analytics-team-cluster", tags=[])
        assert terminate_leftover_clusters(settings, emr) == [left]
        assert _state(emr, left).startswith("TERMINAT")
        assert _state(emr, same_name_other_stack) == _state(emr, unrelated) == "WAITING"
        # the next run finds nothing left
        assert leftover_clusters(settings, emr) == []


def test_no_leftover_means_no_terminate_call(settings):
    with mock_aws():
        emr = boto3.client("emr", region_name="us-east-1")
        calls = []
        emr.meta.events.register("before-call.emr.TerminateJobFlows", lambda **kw: calls.append(kw))
        assert terminate_leftover_clusters(settings, emr) == []
        assert calls == []


class _RefusingDescribe:
    """An EMR client whose role may not describe a same-named cluster of another stack."""

    def __init__(self, emr, refused: str):
        self.emr, self.refused = emr, refused

    def get_paginator(self, name):
        return self.emr.get_paginator(name)

    def describe_cluster(self, ClusterId):
        if ClusterId == self.refused:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeCluster")
        return self.emr.describe_cluster(ClusterId=ClusterId)


def test_a_cluster_the_role_may_not_describe_is_not_ours(settings):
    request = build_run_plan(EVENT, settings)["cluster"]
    with mock_aws():
        emr = boto3.client("emr", region_name="us-east-1")
        ours, theirs = _start(emr, request), _start(emr, request)
        assert leftover_clusters(settings, _RefusingDescribe(emr, theirs)) == [ours]
        # any other error is not swallowed
        broken = _RefusingDescribe(emr, theirs)
        broken.describe_cluster = lambda ClusterId: (_ for _ in ()).throw(
            ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "DescribeCluster")
        )
        with pytest.raises(ClientError, match="Throttling"):
            leftover_clusters(settings, broken)


@pytest.fixture
def create_emr_logger_released():
    """Powertools binds the service's log handler to the sys.stdout of the first handler load and
    marks the logger configured; a logger this test creates is forgotten afterwards, so that a
    later test capturing the handler's logs (test_events) configures one of its own."""
    import logging

    existed = "create_emr" in logging.Logger.manager.loggerDict
    yield
    if not existed:
        logging.Logger.manager.loggerDict.pop("create_emr", None)


def test_create_emr_terminates_leftovers_before_planning_a_new_cluster(template, settings, create_emr_logger_released):
    from .test_events import FakeContext, load_module

    request = build_run_plan(EVENT, settings)["cluster"]
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=settings.lake_uri.removeprefix("s3://"))
        from .job_code import upload_job_code

        upload_job_code(s3, settings.lake_uri.removeprefix("s3://"))
        emr = boto3.client("emr", region_name="us-east-1")
        left = _start(emr, request)
        plan = load_module("create_emr").lambda_handler(EVENT, FakeContext())
        assert plan["cluster"]["Name"].startswith(settings.emr_cluster_name)
        assert _state(emr, left).startswith("TERMINAT")


def test_the_create_emr_role_may_terminate_only_the_stacks_clusters(template):
    statements = {
        s["Sid"]: s for s in template["Resources"]["CreateEmrFunction"]["Properties"]["Policies"][0]["Statement"]
    }
    assert statements["FindLeftoverClusters"]["Action"] == "elasticmapreduce:ListClusters"
    terminate = statements["TerminateLeftoverClusters"]
    assert set(terminate["Action"]) == {"elasticmapreduce:DescribeCluster", "elasticmapreduce:TerminateJobFlows"}
    assert terminate["Condition"] == {"StringEquals": {"aws:ResourceTag/covidlake:stack": {"Ref": "AWS::StackName"}}}
