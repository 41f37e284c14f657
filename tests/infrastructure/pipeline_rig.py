"""The pipeline's state machine wired to runnable parts, for asl_engine.AslEngine.

- The definition is statemachine/pipeline.asl.json with template.yaml's own
  DefinitionSubstitutions applied (each value resolved from the template, never copied).
- Each Task resolves by its Resource ARN (`Rig.resources`) to a Python callable:
  Lambda tasks run the real handler that the template names (CodeUri + Handler) with the
  environment the template gives that function; EMR and Athena `.sync` tasks call moto EMR
  and moto Athena (a step's outcome is set by the test); SNS publish goes to moto SNS;
  `aws-sdk:sfn:listExecutions` answers from a list the test controls.
- Every AWS call goes through `session_factory(component)` (components: "state_machine" for
  the Task integrations, "ingest" and "create_emr" for the functions' own code), by default
  a plain boto3 session on moto; the IAM rehearsal can pass one whose credentials are the
  component's own role.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import boto3
from botocore.exceptions import ClientError

from .asl_engine import AslEngine, Execution, TaskCall, TaskError
from .conftest import ASL, FAKE_REFS, ROOT, function_env, resolve
from .job_code import upload_job_code

REGION = FAKE_REFS["AWS::Region"]
ACCOUNT = FAKE_REFS["AWS::AccountId"]
STACK = FAKE_REFS["AWS::StackName"]
STATE_MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK}-pipeline"
# The component whose role each function's code runs under.
FUNCTION_COMPONENTS = {"IngestFunction": "ingest", "CreateEmrFunction": "create_emr"}


def default_session(component: str) -> boto3.Session:
    return boto3.Session(region_name=REGION)


@dataclass
class FakeContext:
    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    log_group_name: str = "/aws/lambda/test"
    log_stream_name: str = "test"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@dataclass
class Calls:
    """What each integration was asked to do, in order."""

    lambdas: list[tuple[str, Any]] = field(default_factory=list)  # (logical id, payload)
    lambda_results: dict[str, list[Any]] = field(default_factory=dict)
    run_job_flow: list[dict] = field(default_factory=list)
    add_steps: list[tuple[str, dict, int | None]] = field(default_factory=list)  # (cluster, step, timeout)
    terminate: list[str] = field(default_factory=list)
    athena: list[dict] = field(default_factory=list)
    published: list[dict] = field(default_factory=list)
    list_executions: list[dict] = field(default_factory=list)


class Rig:
    """Build inside an active moto mock: creates the bucket, the alert topic (with an SQS
    queue subscribed, to read what was published) and the Athena workgroup."""

    def __init__(
        self,
        template: dict,
        function_overrides: dict[str, dict[str, str]] | None = None,
        session_factory: Callable[[str], boto3.Session] = default_session,
        definition: dict | None = None,
    ) -> None:
        self.template = template
        self.session_factory = session_factory
        self.overrides = function_overrides or {}
        self.calls = Calls()
        # What the test controls: each EMR step's outcome by name, the other RUNNING executions.
        self.step_outcomes: dict[str, str] = {}
        self.other_running: list[str] = []
        self.list_executions_error: str | None = None
        self.lambda_errors: dict[str, Exception] = {}
        # Lambda service errors (e.g. Lambda.TooManyRequestsException) raised before the handler runs
        self.lambda_service_errors: dict[str, list[str]] = {}
        self.list_self = True  # ListExecutions is eventually consistent: it may not list this run yet
        self.athena_errors: dict[str, str] = {}
        self._setup_aws()
        self.function_arns: dict[str, str] = {}
        self.definition = definition or self.substituted_definition()
        self.resources: dict[str, Callable[[TaskCall], Any]] = {
            "arn:aws:states:::aws-sdk:sfn:listExecutions": self.list_executions,
            "arn:aws:states:::lambda:invoke": self.invoke_lambda,
            "arn:aws:states:::elasticmapreduce:createCluster.sync": self.create_cluster,
            "arn:aws:states:::elasticmapreduce:addStep.sync": self.add_step,
            "arn:aws:states:::elasticmapreduce:terminateCluster.sync": self.terminate_cluster,
            "arn:aws:states:::athena:startQueryExecution.sync": self.start_query,
            "arn:aws:states:::sns:publish": self.publish,
        }

    # ------------------------------------------------------------------ setup
    def client(self, component: str, service: str):
        return self.session_factory(component).client(service, region_name=REGION)

    def _setup_aws(self) -> None:
        self.bucket = FAKE_REFS["LakeBucket"]
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=self.bucket)
        upload_job_code(s3, self.bucket)
        sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
        self.topic_arn = sns.create_topic(Name=f"{STACK}-AlertTopic")["TopicArn"]
        self.queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]
        sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn["QueueArn"])
        boto3.client("athena", region_name=REGION).create_work_group(Name=FAKE_REFS["AthenaWorkGroup"])

    def substituted_definition(self) -> dict:
        """pipeline.asl.json with the template's DefinitionSubstitutions resolved."""
        props = self.template["Resources"]["PipelineStateMachine"]["Properties"]
        text = ASL.read_text()
        for placeholder, value in props["DefinitionSubstitutions"].items():
            text = text.replace("${" + placeholder + "}", self._substitution(value))
        return json.loads(text)

    def _substitution(self, value: Any) -> str:
        resources = self.template["Resources"]
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            if resources[logical_id]["Type"] == "AWS::Serverless::Function" and attribute == "Arn":
                arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK}-{logical_id}"
                self.function_arns[arn] = logical_id
                return arn
        ref = value.get("Ref") if isinstance(value, dict) else None
        if ref and resources.get(ref, {}).get("Type") == "AWS::SNS::Topic":
            return self.topic_arn
        return str(resolve(value, self.template))  # parameters, pseudo parameters, !Sub, !If

    # ------------------------------------------------------------------ running
    def start(self, execution_input: Any, name: str | None = None) -> Execution:
        def resolve(call: TaskCall) -> Any:
            if call.resource not in self.resources:
                raise AssertionError(f"no integration for {call.resource} (state {call.state})")
            try:
                return self.resources[call.resource](call)
            except ClientError as err:  # an AWS error fails the task, named <Service>.<Code>
                service = call.resource.split(":")[-2].split("-")[0].capitalize()
                raise TaskError(f"{service}.{err.response['Error']['Code']}", str(err)) from err

        return AslEngine(self.definition, resolve, STATE_MACHINE_ARN).start(execution_input, name)

    # ------------------------------------------------------------------ integrations
    def list_executions(self, call: TaskCall) -> dict:
        self.calls.list_executions.append(call.parameters)
        if self.list_executions_error:
            raise TaskError(self.list_executions_error, "ListExecutions failed")
        assert call.parameters["StateMachineArn"] == STATE_MACHINE_ARN
        me = call.context["Execution"]["Name"]
        names = ([me] if self.list_self else []) + self.other_running
        names = names[: call.parameters.get("MaxResults", 100)]  # newest first
        return {
            "Executions": [
                {
                    "ExecutionArn": f"{STATE_MACHINE_ARN.replace(':stateMachine:', ':execution:')}:{n}",
                    "StateMachineArn": STATE_MACHINE_ARN,
                    "Name": n,
                    "Status": call.parameters["StatusFilter"],
                    "StartDate": "2026-11-28T00:00:00Z",
                }
                for n in names
            ]
        }

    def invoke_lambda(self, call: TaskCall) -> dict:
        logical_id = self.function_arns[call.parameters["FunctionName"]]
        payload = call.parameters["Payload"]
        self.calls.lambdas.append((logical_id, payload))
        pending = self.lambda_service_errors.get(logical_id)
        if pending:
            raise TaskError(pending.pop(0), "the Lambda service refused the invocation")
        try:
            if logical_id in self.lambda_errors:
                raise self.lambda_errors[logical_id]
            result = self.run_handler(logical_id, json.loads(json.dumps(payload)))
        except Exception as err:  # a function error: Step Functions names it by errorType
            name = type(err).__name__
            raise TaskError(name, json.dumps({"errorMessage": str(err), "errorType": name})) from err
        result = json.loads(json.dumps(result))  # what crosses the wire is JSON
        self.calls.lambda_results.setdefault(logical_id, []).append(result)
        return {"ExecutedVersion": "$LATEST", "Payload": result, "StatusCode": 200}

    def run_handler(self, logical_id: str, event: Any) -> Any:
        """The function's real handler, imported fresh with the template's environment for it
        and the credentials `session_factory(<its component>)` gives."""
        props = self.template["Resources"][logical_id]["Properties"]
        handler = props.get("Handler") or self.template["Globals"]["Function"]["Handler"]
        module_file, function = handler.rsplit(".", 1)
        env = {**function_env(self.template, logical_id), **self.overrides.get(logical_id, {})}
        creds = self.session_factory(FUNCTION_COMPONENTS[logical_id]).get_credentials().get_frozen_credentials()
        env.update(AWS_ACCESS_KEY_ID=creds.access_key, AWS_SECRET_ACCESS_KEY=creds.secret_key)
        env.update(AWS_SESSION_TOKEN=creds.token or "", POWERTOOLS_TRACE_DISABLED="true")
        with mock.patch.dict(os.environ, env):
            from covidlake.settings import get_settings

            get_settings.cache_clear()
            try:
                path = ROOT / props["CodeUri"] / f"{module_file}.py"
                name = f"rig_{logical_id}_{uuid.uuid4().hex}"
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                sys.modules.pop(name, None)
                return getattr(module, function)(event, FakeContext(f"{STACK}-{logical_id}"))
            finally:
                get_settings.cache_clear()
                _detach_log_handlers(env.get("POWERTOOLS_SERVICE_NAME"))

    def create_cluster(self, call: TaskCall) -> dict:
        """createCluster.sync: RunJobFlow, then (sync) the cluster is up. Step Functions
        returns the new cluster's id as ClusterId (RunJobFlow's JobFlowId)."""
        self.calls.run_job_flow.append(call.parameters)
        emr = self.client("state_machine", "emr")
        created = emr.run_job_flow(**call.parameters)
        state = emr.describe_cluster(ClusterId=created["JobFlowId"])["Cluster"]["Status"]["State"]
        assert state in ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"), state
        return {"ClusterId": created["JobFlowId"], "ClusterArn": created["ClusterArn"]}

    def add_step(self, call: TaskCall) -> dict:
        """addStep.sync: AddJobFlowSteps, then the step's outcome the test set (default COMPLETED)."""
        cluster_id, step = call.parameters["ClusterId"], call.parameters["Step"]
        self.calls.add_steps.append((cluster_id, step, call.timeout_seconds))
        emr = self.client("state_machine", "emr")
        step_id = emr.add_job_flow_steps(JobFlowId=cluster_id, Steps=[step])["StepIds"][0]
        described = emr.describe_step(ClusterId=cluster_id, StepId=step_id)["Step"]
        outcome = self.step_outcomes.get(step["Name"], "COMPLETED")
        described["Status"]["State"] = outcome
        described = json.loads(json.dumps(described, default=str))
        if outcome != "COMPLETED":
            raise TaskError("States.TaskFailed", json.dumps({"Step": described}))
        return {"Step": described}

    def terminate_cluster(self, call: TaskCall) -> dict:
        cluster_id = call.parameters["ClusterId"]
        self.calls.terminate.append(cluster_id)
        self.client("state_machine", "emr").terminate_job_flows(JobFlowIds=[cluster_id])
        return {}

    def start_query(self, call: TaskCall) -> dict:
        params = call.parameters
        self.calls.athena.append(params)
        athena = self.client("state_machine", "athena")
        query_id = athena.start_query_execution(**params)["QueryExecutionId"]
        described = json.loads(json.dumps(athena.get_query_execution(QueryExecutionId=query_id), default=str))
        described.pop("ResponseMetadata", None)
        for marker, error in self.athena_errors.items():
            if marker in params["QueryString"]:
                raise TaskError(error, f"query {query_id} failed")
        return described

    def publish(self, call: TaskCall) -> dict:
        self.calls.published.append(call.parameters)
        response = self.client("state_machine", "sns").publish(**call.parameters)
        return {"MessageId": response["MessageId"]}

    # ------------------------------------------------------------------ reading back
    def alerts(self) -> list[dict]:
        """The messages the alert topic delivered to its subscribed queue."""
        sqs = boto3.client("sqs", region_name=REGION)
        got = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in got]

    def cluster_states(self) -> dict[str, str]:
        emr = boto3.client("emr", region_name=REGION)
        return {c["Id"]: c["Status"]["State"] for c in emr.list_clusters()["Clusters"]}


def _detach_log_handlers(service: str | None) -> None:
    """Powertools reuses the stdlib logger named after the service, handler and stream included:
    left attached, a later test's Logger(service=...) would write to this test's captured stdout."""
    if service:
        logging.Logger.manager.loggerDict.pop(service, None)  # the next Logger() starts afresh
