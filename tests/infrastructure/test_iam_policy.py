"""The rehearsal's policy evaluator, on the shapes of statement template.yaml uses."""

from __future__ import annotations

import pytest

from .iam_policy import Need, evaluate

BUCKET = "arn:aws:s3:::lake"
RAW_RW = {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": f"{BUCKET}/raw/*"}
LIST_RAW = {
    "Effect": "Allow",
    "Action": "s3:ListBucket",
    "Resource": BUCKET,
    "Condition": {"StringLike": {"s3:prefix": ["raw/*"]}},
}
TAGGED = {
    "Effect": "Allow",
    "Action": "elasticmapreduce:RunJobFlow",
    "Resource": "*",
    "Condition": {"StringEquals": {"aws:RequestTag/covidlake:stack": "prod"}},
}
NAMESPACE = {
    "Effect": "Allow",
    "Action": "cloudwatch:PutMetricData",
    "Resource": "*",
    "Condition": {"StringEquals": {"cloudwatch:namespace": "covidlake"}},
}


def allowed(statements, action, resource, context=None) -> bool:
    return evaluate([(f"#{i}", s) for i, s in enumerate(statements)], Need.of(action, resource, context)).allowed


def test_action_and_resource_wildcards():
    assert allowed([RAW_RW], "s3:GetObject", f"{BUCKET}/raw/covid_data/x.csv")
    assert allowed([RAW_RW], "S3:getobject", f"{BUCKET}/raw/x")  # actions are case-insensitive
    assert not allowed([RAW_RW], "s3:GetObject", f"{BUCKET}/refined/_version.json")
    assert not allowed([RAW_RW], "s3:DeleteObject", f"{BUCKET}/raw/x")
    assert not allowed([RAW_RW], "s3:GetObject", "arn:aws:s3:::LAKE/raw/x")  # resources are not
    any_s3 = {"Effect": "Allow", "Action": "s3:*", "Resource": f"{BUCKET}/r?w/*"}
    assert allowed([any_s3], "s3:PutObject", f"{BUCKET}/raw/a")


def test_explicit_deny_wins_and_no_allow_is_a_deny():
    deny = {"Effect": "Deny", "Action": "s3:*", "Resource": f"{BUCKET}/raw/secret*"}
    assert not allowed([RAW_RW, deny], "s3:GetObject", f"{BUCKET}/raw/secret.csv")
    assert allowed([RAW_RW, deny], "s3:GetObject", f"{BUCKET}/raw/public.csv")
    assert not allowed([], "s3:GetObject", f"{BUCKET}/raw/x")


def test_string_like_condition_and_missing_keys():
    assert allowed([LIST_RAW], "s3:ListBucket", BUCKET, {"s3:prefix": "raw/covid_data/"})
    assert not allowed([LIST_RAW], "s3:ListBucket", BUCKET, {"s3:prefix": "refined/"})
    # HeadObject's ListBucket check carries no s3:prefix: a condition on it fails
    assert not allowed([LIST_RAW], "s3:ListBucket", BUCKET)


def test_string_equals_on_request_tags_and_namespace():
    assert allowed([TAGGED], "elasticmapreduce:RunJobFlow", "*", {"aws:RequestTag/covidlake:stack": "prod"})
    assert not allowed([TAGGED], "elasticmapreduce:RunJobFlow", "*", {"aws:RequestTag/covidlake:stack": "dev"})
    assert not allowed([TAGGED], "elasticmapreduce:RunJobFlow", "*")
    assert allowed([NAMESPACE], "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "covidlake"})
    assert not allowed([NAMESPACE], "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "other"})


def test_negated_and_if_exists_operators():
    not_dev = {
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": "*",
        "Condition": {"StringNotEquals": {"aws:PrincipalTag/env": "dev"}},
    }
    assert allowed([not_dev], "s3:GetObject", "x", {"aws:PrincipalTag/env": "prod"})
    assert not allowed([not_dev], "s3:GetObject", "x", {"aws:PrincipalTag/env": "dev"})
    assert allowed([not_dev], "s3:GetObject", "x")  # a missing key satisfies a negated operator
    if_exists = {
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": "*",
        "Condition": {"StringEqualsIfExists": {"aws:PrincipalTag/env": "prod"}},
    }
    assert allowed([if_exists], "s3:GetObject", "x")
    assert not allowed([if_exists], "s3:GetObject", "x", {"aws:PrincipalTag/env": "dev"})


def test_an_unmodelled_operator_is_refused_loudly():
    numeric = {
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": "*",
        "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
    }
    with pytest.raises(NotImplementedError, match="NumericLessThan"):
        allowed([numeric], "s3:GetObject", "x", {"s3:TlsVersion": "1.3"})


def test_decision_names_the_statements():
    decision = evaluate([("raw", RAW_RW), ("list", LIST_RAW)], Need.of("s3:PutObject", f"{BUCKET}/raw/a"))
    assert decision.allowed and decision.allowed_by == ["raw"]
