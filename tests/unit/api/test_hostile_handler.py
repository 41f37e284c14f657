"""Hostile requests against the Lambda handler (functions/show_results/app.py) with
API Gateway HTTP API events; every test marked ``attack`` is a row of docs/security.md."""

from __future__ import annotations

import logging

import pytest

from covidlake.errors import QueryError, TableNotPublished

from .failing_backend import Failing

attack = pytest.mark.attack


@pytest.mark.parametrize(
    "raw, expected",
    [
        pytest.param(
            "[" * 5000 + "]" * 5000,
            400,
            id="nested-5000",
            marks=attack(1, "Lambda: body nested 5,000 deep", "400 JSON (no RecursionError, no 5xx alarm)"),
        ),
        pytest.param(
            '{"table": "clusters", "limit": ' + "9" * 5000 + "}",
            400,
            id="limit-5000-digits",
            marks=attack(1, "Lambda: `limit` of 5,000 digits", "400 JSON (no ValueError, no 5xx alarm)"),
        ),
        pytest.param(
            '{"table": "clusters", "limit": ' + "9" * 4000 + "}",
            422,
            id="limit-4000-digits",
            marks=attack(
                1,
                "Lambda: `limit` of 4,000 digits (under the int-str limit)",
                "422 JSON: limit out of range",
            ),
        ),
        pytest.param(
            '{"table": "clusters", "x": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}",
            400,
            id="object-5000",
            marks=attack(1, "Lambda: an unknown field holding objects nested 5,000 deep", "400 JSON"),
        ),
    ],
)
def test_hostile_bodies_are_4xx_json_from_the_lambda(api_handler, raw, expected):
    status, headers, body = api_handler("POST", "/showResults", raw)
    assert status == expected, body
    assert body["statusCode"] == expected and body["message"]
    assert api_handler.service.queries == 0


def test_a_plain_body_is_200_from_the_lambda(api_handler):
    """The negative control: the same handler answers a normal body."""
    assert api_handler("POST", "/showResults", '{"table": "clusters", "limit": 2}')[0] == 200


@attack(4, "Lambda: GET /showResults", "405 JSON with `Allow: POST, OPTIONS`; an unknown path stays 404")
def test_wrong_method_is_405_from_the_lambda(api_handler):
    status, headers, body = api_handler("GET", "/showResults")
    assert status == 405 and headers["Allow"] == "POST, OPTIONS" and "POST" in body["message"]
    status, headers, body = api_handler("DELETE", "/tables")
    assert status == 405 and headers["Allow"] == "GET, OPTIONS"
    assert api_handler("GET", "/nowhere")[0] == 404


@attack(4, "Lambda: unknown table name of 100 KB", "400 JSON echoing 64 characters of it (100 KB in, < 400 B out)")
def test_unknown_table_echo_is_truncated_in_the_lambda(api_handler):
    status, _, body = api_handler("POST", "/showResults", {"table": "y" * 100_000})
    assert status == 400 and len(body["message"]) < 400 and "y" * 64 in body["message"]


SECRETS = ("covidlake-lake-123456789012", "arn:aws:iam::123456789012:role/covidlake-ShowResultsRole", "123456789012")


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(
            QueryError(f"User: {SECRETS[1]} is not authorized to perform s3:GetObject on s3://{SECRETS[0]}/x", "q-1"),
            id="athena-access-denied",
            marks=attack(
                6,
                "a backend error naming the bucket, a role ARN and the account",
                "502 JSON with a generic message, the query and request ids; details in the log only",
            ),
        ),
        pytest.param(
            TableNotPublished(f"refined table clusters has no data at s3://{SECRETS[0]}/refined/clusters/"),
            id="not-published",
            marks=attack(
                6,
                "a table not published yet (the message names the bucket)",
                "502 JSON without the bucket; details in the log only",
            ),
        ),
    ],
)
def test_502_leaks_nothing(api_handler, use_backend, caplog, exc):
    use_backend(Failing(exc))
    with caplog.at_level(logging.ERROR, logger="covidlake.api"):
        status, headers, body = api_handler("POST", "/showResults", {"table": "clusters"})
    assert status == 502 and body["request_id"] and body["query_id"] == exc.query_id
    text = str(body) + str(headers)
    assert not any(secret in text for secret in SECRETS), body
    assert SECRETS[0] in caplog.text and body["request_id"] in caplog.text  # the operator still finds it
