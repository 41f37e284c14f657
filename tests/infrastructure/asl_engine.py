"""The smallest Amazon States Language interpreter that runs statemachine/pipeline.asl.json.

Why not moto's executor: moto 5.x runs ASL (Pass, Choice, intrinsics work), but it forwards
`.sync` EMR and Athena tasks to an "unsupported" integration that fails with States.Runtime,
sends Lambda tasks to moto Lambda (which needs Docker to run code) and fails
`aws-sdk:sfn:listExecutions` on its own parameter mapping; it has no hook to plug a Python
callable in behind a Resource ARN. So this file interprets the states the pipeline uses:

- states: Pass, Task, Choice, Succeed, Fail, Map (inline; sequential: MaxConcurrency only
  bounds parallelism, it changes no result);
- input/output processing: InputPath, Parameters / ItemSelector (keys ending in `.$`),
  ResultSelector, ResultPath (reference paths, null), OutputPath; the context object `$$`;
- errors: Retry (IntervalSeconds, MaxAttempts, BackoffRate; jitter ignored, the delays are
  recorded instead of slept) and Catch, with States.ALL, States.TaskFailed, States.Timeout;
  States.Runtime (a bad path, an unknown function) is neither retried nor caught, as on AWS;
- TimeoutSeconds / TimeoutSecondsPath are resolved and handed to the task (a task signals a
  timeout by raising TaskError("States.Timeout")); nothing here waits;
- intrinsic functions: States.Format, States.JsonToString, States.StringToJson,
  States.ArrayLength.

Paths are evaluated with jsonpath-ng. Every state's input and output is recorded in
`Execution.history`, which is what the tests assert on.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jsonpath_ng import parse as parse_jsonpath

MAX_TRANSITIONS = 1000


class TaskError(Exception):
    """A named ASL error (what a task raises to fail; Catch/Retry match `error`)."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


class RuntimeAslError(TaskError):
    """States.Runtime: a definition error met at run time; never retried nor caught."""

    def __init__(self, cause: str) -> None:
        super().__init__("States.Runtime", cause)


@dataclass
class TaskCall:
    """What a Task resource receives: its effective parameters and the state's settings."""

    resource: str
    parameters: Any
    state: str
    timeout_seconds: int | None
    context: dict


Resolver = Callable[[TaskCall], Any]


@dataclass
class StateRun:
    name: str
    type: str
    input: Any
    output: Any = None
    next: str | None = None
    error: dict | None = None  # {"Error", "Cause"} when the state failed (caught or not)
    retries: list[float] = field(default_factory=list)  # the delays a Retry would have slept


@dataclass
class Execution:
    status: str  # SUCCEEDED | FAILED
    output: Any = None
    error: str | None = None
    cause: str | None = None
    history: list[StateRun] = field(default_factory=list)

    def path(self) -> list[str]:
        return [run.name for run in self.history]

    def runs(self, name: str) -> list[StateRun]:
        return [run for run in self.history if run.name == name]

    def run(self, name: str) -> StateRun:
        found = self.runs(name)
        assert len(found) == 1, f"state {name} ran {len(found)} times: {self.path()}"
        return found[0]


# ----------------------------------------------------------------------------- paths

_INDEFINITE = re.compile(r"\[\*\]|\.\.|\[\?|:|\*")
_REFERENCE_STEP = re.compile(r"\.([A-Za-z_][\w-]*)|\['([^']+)'\]|\[(\d+)\]")


def read_path(path: str, data: Any) -> Any:
    """Evaluate a Path: a definite path gives its single value (missing: States.Runtime);
    one with `[*]`, `..`, slices or filters gives the list of matches."""
    if path == "$":
        return data
    try:
        matches = [m.value for m in parse_jsonpath(path).find(data)]
    except Exception as err:  # noqa: BLE001 (jsonpath-ng's lexer/parser errors share no base class)
        raise RuntimeAslError(f"invalid path {path!r}: {err}") from None
    if _INDEFINITE.search(path[1:]):
        return matches
    if not matches:
        raise RuntimeAslError(f"the JSONPath {path!r} could not be found in the input {json.dumps(data)[:300]}")
    return matches[0]


def reference_steps(path: str) -> list[str | int]:
    """`$.a['b'][0]` -> ["a", "b", 0]; anything else is not a reference path."""
    if not path.startswith("$"):
        raise RuntimeAslError(f"not a reference path: {path!r}")
    steps, pos = [], 1
    while pos < len(path):
        m = _REFERENCE_STEP.match(path, pos)
        if not m:
            raise RuntimeAslError(f"not a reference path: {path!r}")
        steps.append(int(m.group(3)) if m.group(3) is not None else (m.group(1) or m.group(2)))
        pos = m.end()
    return steps


def apply_result_path(state_input: Any, result: Any, result_path: str | None, has_key: bool) -> Any:
    """ResultPath: `$` (default) replaces the input, null keeps it, a path inserts the result."""
    if has_key and result_path is None:
        return state_input
    path = "$" if result_path is None else result_path
    steps = reference_steps(path)
    if not steps:
        return result
    output = copy.deepcopy(state_input)
    if not isinstance(output, dict):
        raise RuntimeAslError(f"ResultPath {path!r} needs an object as state input, got {type(output).__name__}")
    node = output
    for step in steps[:-1]:
        nxt = node.get(step) if isinstance(node, dict) else None
        if not isinstance(nxt, dict):
            if isinstance(node, dict) and step in node and node[step] is not None:
                raise RuntimeAslError(f"ResultPath {path!r}: {step!r} is not an object")
            nxt = node[step] = {}
        node = nxt
    node[steps[-1]] = result
    return output


# ----------------------------------------------------------------------------- intrinsics

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:\\.|[^'\\])*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<kw>true|false|null)"
    r"|(?P<fn>States\.[A-Za-z]+)\(|(?P<path>\$\$?[^,()\s]*)|(?P<close>\))|(?P<comma>,))"
)


def _unescape(literal: str) -> str:
    # \{ and \} stay escaped for States.Format, which unescapes them after finding its {}
    return re.sub(r"\\([^{}])", r"\1", literal[1:-1])


def _format(template: str, *args: Any) -> str:
    pieces = re.split(r"(?<!\\)\{\}", template)
    if len(pieces) - 1 != len(args):
        raise RuntimeAslError(f"States.Format: {len(pieces) - 1} placeholders, {len(args)} arguments")
    pieces = [re.sub(r"\\([{}])", r"\1", piece) for piece in pieces]
    out = pieces[0]
    for arg, piece in zip(args, pieces[1:], strict=True):
        out += (arg if isinstance(arg, str) else json.dumps(arg, separators=(",", ":"))) + piece
    return out


def _array_length(value: Any) -> int:
    if not isinstance(value, list):
        raise RuntimeAslError(f"States.ArrayLength needs an array, got {json.dumps(value)[:100]}")
    return len(value)


INTRINSICS: dict[str, Callable[..., Any]] = {
    "States.Format": _format,
    "States.JsonToString": lambda value: json.dumps(value, separators=(",", ":")),
    "States.StringToJson": lambda text: json.loads(text),
    "States.ArrayLength": _array_length,
}


def evaluate_intrinsic(expr: str, data: Any, context: dict) -> Any:
    value, pos = _call(expr, 0, data, context)
    if expr[pos:].strip():
        raise RuntimeAslError(f"unexpected text after the intrinsic function: {expr[pos:]!r}")
    return value


def _call(expr: str, pos: int, data: Any, context: dict) -> tuple[Any, int]:
    m = _TOKEN.match(expr, pos)
    if not m or not m.group("fn"):
        raise RuntimeAslError(f"not an intrinsic function call: {expr!r}")
    name = m.group("fn")
    if name not in INTRINSICS:
        raise RuntimeAslError(f"unsupported intrinsic function {name}")
    args, pos = [], m.end()
    while True:
        m = _TOKEN.match(expr, pos)
        if not m:
            raise RuntimeAslError(f"cannot parse {expr!r} at {pos}")
        if m.group("close"):
            return INTRINSICS[name](*args), m.end()
        if m.group("comma"):
            pos = m.end()
            continue
        if m.group("fn"):
            value, pos = _call(expr, m.start("fn"), data, context)
            args.append(value)
            continue
        pos = m.end()
        if m.group("str") is not None:
            args.append(_unescape(m.group("str")))
        elif m.group("num") is not None:
            args.append(json.loads(m.group("num")))
        elif m.group("kw"):
            args.append(json.loads(m.group("kw")))
        else:
            args.append(_value_of(m.group("path"), data, context))


def _value_of(expr: str, data: Any, context: dict) -> Any:
    if expr.startswith("$$"):
        return read_path("$" + expr[2:], context)
    if expr.startswith("$"):
        return read_path(expr, data)
    if expr.startswith("States."):
        return evaluate_intrinsic(expr, data, context)
    raise RuntimeAslError(f"a `.$` field needs a path or an intrinsic function, got {expr!r}")


def payload_template(template: Any, data: Any, context: dict) -> Any:
    """Parameters / ItemSelector / ResultSelector: keys ending in `.$` take a path's value."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                if not isinstance(value, str):
                    raise RuntimeAslError(f"field {key!r} must be a string path")
                out[key[:-2]] = _value_of(value, data, context)
            else:
                out[key] = payload_template(value, data, context)
        return out
    if isinstance(template, list):
        return [payload_template(v, data, context) for v in template]
    return template


# ----------------------------------------------------------------------------- Choice rules


def _typed(kind: str) -> Callable[[Any], bool]:
    return {
        "String": lambda v: isinstance(v, str),
        "Numeric": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "Boolean": lambda v: isinstance(v, bool),
        "Timestamp": lambda v: isinstance(v, str) and bool(re.match(r"\d{4}-\d\d-\d\dT", v)),
    }[kind]


_COMPARE = {
    "Equals": lambda a, b: a == b,
    "LessThan": lambda a, b: a < b,
    "GreaterThan": lambda a, b: a > b,
    "LessThanEquals": lambda a, b: a <= b,
    "GreaterThanEquals": lambda a, b: a >= b,
}
_OPERATOR = re.compile(
    r"^(String|Numeric|Boolean|Timestamp)(Equals|LessThan|GreaterThan|LessThanEquals|GreaterThanEquals)(Path)?$"
)


def choice_matches(rule: dict, data: Any, context: dict) -> bool:
    if "And" in rule:
        return all(choice_matches(r, data, context) for r in rule["And"])
    if "Or" in rule:
        return any(choice_matches(r, data, context) for r in rule["Or"])
    if "Not" in rule:
        return not choice_matches(rule["Not"], data, context)
    variable = rule["Variable"]
    operators = [k for k in rule if k not in ("Variable", "Next", "Comment")]
    if len(operators) != 1:
        raise RuntimeAslError(f"a Choice rule needs exactly one operator: {rule}")
    op, expected = operators[0], rule[operators[0]]
    try:
        value = _value_of(variable, data, context)
        present = True
    except RuntimeAslError:
        if op != "IsPresent":
            raise
        value, present = None, False
    if op == "IsPresent":
        return present == expected
    if op == "IsNull":
        return (value is None) == expected
    if op.startswith("Is"):
        return _typed(op[2:])(value) == expected
    if op == "StringMatches":
        parts = re.split(r"(?<!\\)\*", expected)
        pattern = ".*".join(re.escape(part.replace("\\*", "*")) for part in parts)
        return isinstance(value, str) and re.fullmatch(pattern, value) is not None
    m = _OPERATOR.match(op)
    if not m:
        raise RuntimeAslError(f"unknown Choice operator {op}")
    kind, comparison, by_path = m.groups()
    other = _value_of(expected, data, context) if by_path else expected
    is_kind = _typed(kind)
    if not (is_kind(value) and is_kind(other)):
        return False  # a type mismatch is no match, never an error
    return _COMPARE[comparison](value, other)


# ----------------------------------------------------------------------------- errors


def error_matches(names: list[str], error: str) -> bool:
    if error == "States.Runtime":
        return False
    for name in names:
        if name == error or name == "States.ALL":
            return True
        if name == "States.TaskFailed" and error != "States.Timeout":
            return True
    return False


# ----------------------------------------------------------------------------- the engine


class AslEngine:
    def __init__(self, definition: dict, resolve: Resolver, state_machine_arn: str, role_arn: str = "") -> None:
        self.definition = definition
        self.resolve = resolve
        self.arn = state_machine_arn
        self.role_arn = role_arn

    def start(self, execution_input: Any, name: str | None = None) -> Execution:
        name = name or uuid.uuid4().hex
        sm_name = self.arn.rsplit(":", 1)[-1]
        context = {
            "Execution": {
                "Id": self.arn.replace(":stateMachine:", ":execution:") + f":{name}",
                "Name": name,
                "Input": execution_input,
                "RoleArn": self.role_arn,
                "StartTime": "2026-11-28T00:00:00.000Z",
            },
            "StateMachine": {"Id": self.arn, "Name": sm_name},
        }
        execution = Execution(status="RUNNING")
        try:
            execution.output = self._run_machine(self.definition, execution_input, context, execution, prefix="")
            execution.status = "SUCCEEDED"
        except TaskError as err:
            execution.status, execution.error, execution.cause = "FAILED", err.error, err.cause
        return execution

    def _run_machine(self, machine: dict, data: Any, context: dict, execution: Execution, prefix: str) -> Any:
        name = machine["StartAt"]
        for _ in range(MAX_TRANSITIONS):
            state = machine["States"][name]
            run = StateRun(prefix + name, state["Type"], copy.deepcopy(data))
            execution.history.append(run)
            ctx = {**context, "State": {"Name": name, "RetryCount": 0}}
            try:
                data, nxt = self._step(state, data, ctx, run, execution, prefix)
            except TaskError as err:
                run.error = {"Error": err.error, "Cause": err.cause}
                catcher = next((c for c in state.get("Catch", []) if error_matches(c["ErrorEquals"], err.error)), None)
                if catcher is None:
                    raise
                data = apply_result_path(run.input, dict(run.error), catcher.get("ResultPath"), "ResultPath" in catcher)
                nxt = catcher["Next"]
            run.output, run.next = copy.deepcopy(data), nxt
            if nxt is None:
                return data
            name = nxt
        raise RuntimeAslError(f"more than {MAX_TRANSITIONS} transitions")

    def _step(self, state: dict, raw: Any, ctx: dict, run: StateRun, execution: Execution, prefix: str):
        kind = state["Type"]
        if kind == "Fail":
            raise TaskError(state.get("Error", "States.Fail"), state.get("Cause", ""))
        input_path = state.get("InputPath", "$")
        effective = read_path(input_path, raw) if input_path is not None else {}
        if kind == "Choice":
            for rule in state["Choices"]:
                if choice_matches(rule, effective, ctx):
                    return self._output(state, effective), rule["Next"]
            if "Default" not in state:
                raise TaskError("States.NoChoiceMatched", f"no Choice rule matched {json.dumps(effective)[:300]}")
            return self._output(state, effective), state["Default"]
        if kind == "Succeed":
            return self._output(state, effective), None
        if kind == "Pass":
            result = state["Result"] if "Result" in state else self._parameters(state, effective, ctx)
        elif kind == "Task":
            result = self._task(state, effective, ctx, run)
        elif kind == "Map":
            result = self._map(state, effective, ctx, execution, run.name + "/")
        else:
            raise RuntimeAslError(f"state type {kind} is not supported by this interpreter")
        if "ResultSelector" in state:
            result = payload_template(state["ResultSelector"], result, ctx)
        merged = apply_result_path(raw, result, state.get("ResultPath"), "ResultPath" in state)
        return self._output(state, merged), None if state.get("End") else state["Next"]

    @staticmethod
    def _parameters(state: dict, effective: Any, ctx: dict) -> Any:
        return payload_template(state["Parameters"], effective, ctx) if "Parameters" in state else effective

    @staticmethod
    def _output(state: dict, data: Any) -> Any:
        if "OutputPath" in state and state["OutputPath"] is None:
            return {}
        return read_path(state.get("OutputPath", "$"), data)

    def _task(self, state: dict, effective: Any, ctx: dict, run: StateRun) -> Any:
        params = self._parameters(state, effective, ctx)
        timeout = state.get("TimeoutSeconds")
        if "TimeoutSecondsPath" in state:
            timeout = read_path(state["TimeoutSecondsPath"], effective)
            if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
                raise RuntimeAslError(f"TimeoutSecondsPath {state['TimeoutSecondsPath']} gave {timeout!r}")
        attempts: dict[int, int] = {}
        while True:
            call = TaskCall(state["Resource"], copy.deepcopy(params), run.name, timeout, copy.deepcopy(ctx))
            try:
                return self.resolve(call)
            except TaskError as err:
                index = next(
                    (i for i, r in enumerate(state.get("Retry", [])) if error_matches(r["ErrorEquals"], err.error)),
                    None,
                )
                if index is None:
                    raise
                retrier = state["Retry"][index]
                done = attempts.get(index, 0)
                if done >= retrier.get("MaxAttempts", 3):
                    raise
                attempts[index] = done + 1
                delay = retrier.get("IntervalSeconds", 1) * retrier.get("BackoffRate", 2.0) ** done
                run.retries.append(min(delay, retrier.get("MaxDelaySeconds", delay)))
                ctx["State"]["RetryCount"] = len(run.retries)

    def _map(self, state: dict, effective: Any, ctx: dict, execution: Execution, prefix: str) -> list:
        items = read_path(state.get("ItemsPath", "$"), effective)
        if not isinstance(items, list):
            raise RuntimeAslError(f"ItemsPath {state.get('ItemsPath', '$')} gave {type(items).__name__}, not an array")
        processor = state.get("ItemProcessor") or state["Iterator"]
        selector = state.get("ItemSelector", state.get("Parameters"))
        results = []
        for index, item in enumerate(items):
            item_ctx = {**ctx, "Map": {"Item": {"Index": index, "Value": item}}}
            item_input = payload_template(selector, effective, item_ctx) if selector is not None else item
            results.append(self._run_machine(processor, item_input, item_ctx, execution, f"{prefix}{index}/"))
        return results
