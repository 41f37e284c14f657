"""The ASL interpreter of asl_engine.py on the examples of the Amazon States Language
specification (states-language.net) and the Step Functions developer guide."""

from __future__ import annotations

import pytest

from .asl_engine import AslEngine, TaskCall, TaskError, read_path

ARN = "arn:aws:states:us-east-1:000000000000:stateMachine:spec"


def one_task(state: dict, result) -> dict:
    return {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:fn", "End": True, **state}}}


def run(definition: dict, data, resolve=None, name="exec-1"):
    return AslEngine(definition, resolve or (lambda call: None), ARN).start(data, name)


def test_paths_spec_example():
    data = {"foo": 123, "bar": ["a", "b", "c"], "car": {"cdr": True}}
    assert read_path("$.foo", data) == 123
    assert read_path("$.bar", data) == ["a", "b", "c"]
    assert read_path("$.car.cdr", data) is True
    assert read_path("$.bar[1]", data) == "b"
    assert read_path("$.bar[*]", data) == ["a", "b", "c"]


def test_parameters_spec_example_with_paths_and_literals():
    """Spec, "Parameters": {"flagged": 7, "vals": [0, 10, 20, 30, 40, 50]}."""
    definition = {
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Pass",
                "End": True,
                "Parameters": {"flagged": True, "parts": {"first.$": "$.vals[0]", "last3.$": "$.vals[3:]"}},
            }
        },
    }
    out = run(definition, {"flagged": 7, "vals": [0, 10, 20, 30, 40, 50]}).output
    assert out == {"flagged": True, "parts": {"first": 0, "last3": [30, 40, 50]}}


def test_input_result_output_path_developer_guide_example():
    """The developer guide's HelloWorld: InputPath $.lambda, ResultPath $.data.lambdaresult, OutputPath $.data."""
    seen = []

    def hello(call: TaskCall):
        seen.append(call.parameters)
        return f"Hello, {call.parameters['who']}!"

    definition = one_task({"InputPath": "$.lambda", "ResultPath": "$.data.lambdaresult", "OutputPath": "$.data"}, None)
    data = {
        "comment": "An input comment.",
        "data": {"val1": 23, "val2": 17},
        "extra": "foo",
        "lambda": {"who": "AWS Step Functions"},
    }
    execution = run(definition, data, hello)
    assert seen == [{"who": "AWS Step Functions"}]
    assert execution.output == {"val1": 23, "val2": 17, "lambdaresult": "Hello, AWS Step Functions!"}
    assert execution.run("T").input == data


@pytest.mark.parametrize(
    ("result_path", "expected"),
    [
        # spec "ResultPath": the sum lands beside the input
        ({"ResultPath": "$.sum"}, {"title": "Numbers to add", "numbers": {"val1": 3, "val2": 4}, "sum": 7}),
        ({}, 7),  # default $: the result replaces the input
        ({"ResultPath": None}, {"title": "Numbers to add", "numbers": {"val1": 3, "val2": 4}}),  # discarded
    ],
)
def test_result_path_spec_example(result_path, expected):
    def add(call):
        return call.parameters["val1"] + call.parameters["val2"]

    definition = one_task({"InputPath": "$.numbers", **result_path}, None)
    assert run(definition, {"title": "Numbers to add", "numbers": {"val1": 3, "val2": 4}}, add).output == expected


def test_result_selector_developer_guide_example():
    """ResultSelector picks from the raw result before ResultPath places it."""
    raw = {
        "resourceType": "elasticmapreduce",
        "resource": "createCluster.sync",
        "output": {"SdkHttpMetadata": {"HttpStatusCode": 200}, "ClusterId": "AKIAIOSFODNN7EXAMPLE"},
    }
    definition = one_task(
        {
            "ResultSelector": {"ClusterId.$": "$.output.ClusterId", "ResourceType.$": "$.resourceType"},
            "ResultPath": "$.EMROutput",
        },
        None,
    )
    out = run(definition, {"x": 1}, lambda call: raw).output
    assert out == {"x": 1, "EMROutput": {"ClusterId": "AKIAIOSFODNN7EXAMPLE", "ResourceType": "elasticmapreduce"}}


CHOICE = {
    "StartAt": "C",
    "States": {
        "C": {
            "Type": "Choice",
            "Default": "DefaultState",
            "Choices": [
                {"Not": {"Variable": "$.type", "StringEquals": "Private"}, "Next": "Public"},
                {
                    "And": [
                        {"Variable": "$.value", "IsPresent": True},
                        {"Variable": "$.value", "IsNumeric": True},
                        {"Variable": "$.value", "NumericGreaterThanEquals": 20},
                        {"Variable": "$.value", "NumericLessThan": 30},
                    ],
                    "Next": "ValueInTwenties",
                },
                {
                    "And": [
                        {"Variable": "$.rating", "IsPresent": True},
                        {"Variable": "$.rating", "NumericGreaterThanPath": "$.auditThreshold"},
                    ],
                    "Next": "StartAudit",
                },
                {
                    "And": [
                        {"Variable": "$.name", "IsPresent": True},
                        {"Variable": "$.name", "StringMatches": "log-*.txt"},
                    ],
                    "Next": "Logs",
                },
            ],
        },
        **{n: {"Type": "Succeed"} for n in ("Public", "ValueInTwenties", "StartAudit", "Logs", "DefaultState")},
    },
}


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"type": "Public"}, "Public"),
        ({"type": "Private", "value": 22}, "ValueInTwenties"),
        ({"type": "Private", "value": 35}, "DefaultState"),
        ({"type": "Private", "value": "22"}, "DefaultState"),  # a type mismatch is no match
        ({"type": "Private", "rating": 53, "auditThreshold": 50}, "StartAudit"),
        ({"type": "Private", "name": "log-2026.txt"}, "Logs"),
        ({"type": "Private", "name": "log-2026.csv"}, "DefaultState"),
    ],
)
def test_choice_spec_examples(data, where):
    assert run(CHOICE, data).path() == ["C", where]


def test_choice_on_a_missing_variable_is_a_runtime_error():
    execution = run(
        {
            "StartAt": "C",
            "States": {
                "C": {
                    "Type": "Choice",
                    "Default": "D",
                    "Choices": [{"Variable": "$.nope", "BooleanEquals": True, "Next": "D"}],
                },
                "D": {"Type": "Succeed"},
            },
        },
        {},
    )
    assert (execution.status, execution.error) == ("FAILED", "States.Runtime")


@pytest.mark.parametrize(
    ("expr", "data", "expected"),
    [
        (
            "States.Format('Your name is {}, we are in the year {}', $.name, $.year)",
            {"name": "Foo", "year": "2020"},
            "Your name is Foo, we are in the year 2020",
        ),
        ("States.JsonToString($.someJson)", {"someJson": {"name": "Foo", "year": 2020}}, '{"name":"Foo","year":2020}'),
        ("States.StringToJson($.escapedJsonString)", {"escapedJsonString": '{"foo": "bar"}'}, {"foo": "bar"}),
        ("States.ArrayLength($.inputArray)", {"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9]}, 9),
        ("States.Format('a \\{\\} {} \\'q\\'', States.JsonToString($.o))", {"o": [1]}, "a {} [1] 'q'"),
    ],
)
def test_intrinsic_functions_developer_guide_examples(expr, data, expected):
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"r.$": expr}, "End": True}}}
    assert run(definition, data).output == {"r": expected}


def test_context_object():
    definition = {
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Pass",
                "End": True,
                "Parameters": {
                    "sm.$": "$$.StateMachine.Id",
                    "name.$": "$$.Execution.Name",
                    "input.$": "$$.Execution.Input",
                },
            }
        },
    }
    assert run(definition, {"a": 1}, name="n1").output == {"sm": ARN, "name": "n1", "input": {"a": 1}}


def failing(errors: list[str]):
    """A task that raises the given errors in turn, then returns "ok"."""
    calls = []

    def resolve(call: TaskCall):
        calls.append(call)
        if len(calls) <= len(errors):
            raise TaskError(errors[len(calls) - 1], "boom")
        return "ok"

    resolve.calls = calls
    return resolve


def test_retry_backoff_spec_example():
    """Spec "Retry": IntervalSeconds 3, MaxAttempts 2, BackoffRate 1.5 -> waits 3 then 4.5, then gives up."""
    definition = one_task(
        {"Retry": [{"ErrorEquals": ["States.Timeout"], "IntervalSeconds": 3, "MaxAttempts": 2, "BackoffRate": 1.5}]},
        None,
    )
    task = failing(["States.Timeout"] * 3)
    execution = run(definition, {}, task)
    assert (execution.status, execution.error) == ("FAILED", "States.Timeout")
    assert execution.run("T").retries == [3, 4.5] and len(task.calls) == 3
    assert run(definition, {}, failing(["States.Timeout"] * 2)).output == "ok"


def test_catch_spec_example_keeps_the_input_and_adds_the_error():
    definition = {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": "arn:fn",
                "End": True,
                "Catch": [
                    {"ErrorEquals": ["java.lang.Exception"], "ResultPath": "$.error-info", "Next": "RecoveryState"},
                    {"ErrorEquals": ["States.ALL"], "Next": "EndState"},
                ],
            },
            "RecoveryState": {"Type": "Succeed"},
            "EndState": {"Type": "Succeed"},
        },
    }
    execution = run(definition, {"in": 1}, failing(["java.lang.Exception"]))
    assert execution.path() == ["T", "RecoveryState"]
    assert execution.output == {"in": 1, "error-info": {"Error": "java.lang.Exception", "Cause": "boom"}}
    other = run(definition, {"in": 1}, failing(["Other"]))
    assert other.path() == ["T", "EndState"] and other.output == {"Error": "Other", "Cause": "boom"}


@pytest.mark.parametrize(
    ("names", "error", "matches"),
    [
        (["States.ALL"], "Anything", True),
        (["States.TaskFailed"], "Lambda.ServiceException", True),
        (["States.TaskFailed"], "States.Timeout", False),  # TaskFailed matches all but a timeout
        (["States.Timeout"], "States.Timeout", True),
        (["States.ALL"], "States.Runtime", False),  # never caught nor retried
        (["Lambda.ServiceException"], "Lambda.Unknown", False),
    ],
)
def test_error_names(names, error, matches):
    definition = one_task({"Catch": [{"ErrorEquals": names, "Next": "Caught"}]}, None)
    definition["States"]["Caught"] = {"Type": "Succeed"}
    execution = run(definition, {}, failing([error]))
    assert (execution.path() == ["T", "Caught"]) is matches


def test_map_item_selector_and_context():
    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "End": True,
                "ResultPath": "$.out",
                "ItemSelector": {"v.$": "$$.Map.Item.Value.v", "i.$": "$$.Map.Item.Index", "shared.$": "$.shared"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "T",
                    "States": {"T": {"Type": "Task", "Resource": "arn:fn", "End": True}},
                },
            }
        },
    }
    execution = run(definition, {"items": [{"v": "a"}, {"v": "b"}], "shared": 1}, lambda call: call.parameters)
    assert execution.output["out"] == [{"v": "a", "i": 0, "shared": 1}, {"v": "b", "i": 1, "shared": 1}]
    assert execution.path() == ["M", "M/0/T", "M/1/T"]


def test_fail_state_ends_the_execution_failed():
    execution = run({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "E", "Cause": "C"}}}, {})
    assert (execution.status, execution.error, execution.cause) == ("FAILED", "E", "C")


def test_timeout_seconds_path_reaches_the_task():
    seen = []
    definition = one_task({"TimeoutSecondsPath": "$.t"}, None)
    run(definition, {"t": 42}, lambda call: seen.append(call.timeout_seconds))
    assert seen == [42]
    assert run(definition, {"t": "42"}).error == "States.Runtime"
