"""A small IAM policy evaluator for the rehearsal (tests/infrastructure/rehearsal.py).

moto's IAM enforcement checks S3 object calls against a role's Action/Resource, but it
ignores Condition blocks, checks neither CopyObject's source nor DeleteObjects' keys, and
evaluates every other service against resource "*" (so a grant scoped to an ARN is
denied). This evaluator covers exactly what the template's identity policies use:
Allow/Deny, Action/NotAction and Resource wildcards (* and ?), and the condition operators
below, with AWS's rule that a key missing from the request fails a condition (except for
the negated operators). An explicit Deny wins; no Allow means an implicit deny.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Need:
    """One permission a call needs: an IAM action on a resource, with its request context."""

    action: str
    resource: str
    context: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @staticmethod
    def of(action: str, resource: str, context: dict[str, str | list[str]] | None = None) -> Need:
        return Need(action, resource, tuple(sorted((k, _as_tuple(v)) for k, v in (context or {}).items())))

    def __str__(self) -> str:
        ctx = ", ".join(f"{k}={'|'.join(v)}" for k, v in self.context)
        return f"{self.action} on {self.resource}" + (f" ({ctx})" if ctx else "")


@dataclass
class Decision:
    allowed: bool
    allowed_by: list[str] = field(default_factory=list)
    denied_by: list[str] = field(default_factory=list)


def _as_tuple(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else (str(value),)


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, list) else [value]


def _wildcard(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    # IAM wildcards: * any run of characters (slashes included), ? one character.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


OPERATORS = {
    "StringEquals": lambda expected, actual: actual == expected,
    "StringLike": lambda expected, actual: _wildcard(expected, actual),
    "ArnEquals": lambda expected, actual: actual == expected,
    "ArnLike": lambda expected, actual: _wildcard(expected, actual),
    "Bool": lambda expected, actual: actual.lower() == str(expected).lower(),
}
NEGATED = {"StringNotEquals": "StringEquals", "StringNotLike": "StringLike"}


def _condition_holds(operator: str, key: str, expected: Any, context: dict[str, tuple[str, ...]]) -> bool:
    if_exists = operator.endswith("IfExists")
    base = operator[: -len("IfExists")] if if_exists else operator
    actual = next((v for k, v in context.items() if k.lower() == key.lower()), None)
    if base in NEGATED:
        if actual is None:
            return True
        match = OPERATORS[NEGATED[base]]
        return not any(match(str(e), a) for e in _as_list(expected) for a in actual)
    if base not in OPERATORS:
        raise NotImplementedError(f"condition operator {operator} is not modelled: extend iam_policy.OPERATORS")
    if actual is None:
        return if_exists
    return any(OPERATORS[base](str(e), a) for e in _as_list(expected) for a in actual)


def statement_applies(statement: dict, need: Need) -> bool:
    """Does this statement's Action/Resource/Condition cover the need (whatever its Effect)?"""
    if "Action" in statement:
        if not any(_wildcard(a, need.action, case_sensitive=False) for a in _as_list(statement["Action"])):
            return False
    elif any(_wildcard(a, need.action, case_sensitive=False) for a in _as_list(statement["NotAction"])):
        return False
    if "Resource" in statement:
        if not any(_wildcard(r, need.resource) for r in _as_list(statement["Resource"])):
            return False
    elif "NotResource" in statement and any(_wildcard(r, need.resource) for r in _as_list(statement["NotResource"])):
        return False
    context = dict(need.context)
    return all(
        _condition_holds(op, key, expected, context)
        for op, keys in statement.get("Condition", {}).items()
        for key, expected in keys.items()
    )


def evaluate(statements: list[tuple[str, dict]], need: Need) -> Decision:
    """statements: (label, statement) pairs of every policy of the principal."""
    decision = Decision(False)
    for label, statement in statements:
        if statement_applies(statement, need):
            (decision.allowed_by if statement["Effect"] == "Allow" else decision.denied_by).append(label)
    decision.allowed = bool(decision.allowed_by) and not decision.denied_by
    return decision
