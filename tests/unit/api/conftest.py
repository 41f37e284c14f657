"""Fixtures for the results API tests: a small refined lake (`api_lake`), the Lambda
handler bound to it (`api_handler`), and a helper to call it with HTTP API events.

Each test builds its own handler over its own result service (the factory the Lambda
uses); nothing is set in the environment or in a module global."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from covidlake import api
from covidlake.api.serve import LocalContext, to_event
from covidlake.query import CachedResults, DuckDBBackend
from covidlake.storage import LocalStorage
from tests.unit.api.sample_lake import write_sample_lake


@pytest.fixture(scope="session")
def api_lake(tmp_path_factory) -> tuple[Path, dict[str, list[dict]]]:
    """A lake folder with all seven refined tables (read-only: copy it to change it)."""
    root = tmp_path_factory.mktemp("api_lake")
    rows = write_sample_lake(root)
    return root, rows


@pytest.fixture
def handler_holder() -> dict:
    """The handler this test calls; use_backend replaces it."""
    return {}


@pytest.fixture
def use_backend(handler_holder):
    """Serve a backend for one test: use_backend(backend) -> the CachedResults behind the
    handler that api_handler and invoke call from then on."""

    def _use(backend, version_check_seconds: float = 0.0) -> CachedResults:
        service = CachedResults(backend, version_check_seconds)
        handler_holder["handler"] = api.create_lambda_handler(service, cors_origin="*", observe=False)
        return service

    return _use


@pytest.fixture
def api_handler(api_lake, use_backend, handler_holder):
    """call(method, path, body=None, headers=None, b64=False) -> (status, headers, parsed body)."""
    service = use_backend(DuckDBBackend(LocalStorage(api_lake[0])))

    def call(method: str, path: str, body=None, headers: dict | None = None, b64: bool = False):
        raw = (
            body
            if isinstance(body, (bytes, type(None)))
            else (body if isinstance(body, str) else json.dumps(body)).encode()
        )
        hdrs = [("content-type", "application/json"), *((headers or {}).items())]
        event = to_event(method, path, hdrs, raw or b"", "127.0.0.1")
        if b64 and raw:
            event["body"] = base64.b64encode(raw).decode()
            event["isBase64Encoded"] = True
        return _invoke(handler_holder, event)

    call.service = service
    return call


@pytest.fixture
def invoke(handler_holder):
    """invoke(event) -> (status, headers, parsed body) for a raw HTTP API event."""
    return lambda event: _invoke(handler_holder, event)


def _invoke(handler_holder: dict, event: dict):
    result = handler_holder["handler"](event, LocalContext())
    text = result.get("body") or ""
    if result.get("isBase64Encoded"):
        text = base64.b64decode(text).decode()
    try:
        parsed = json.loads(text) if text else None
    except json.JSONDecodeError:
        parsed = text
    return result["statusCode"], result.get("headers") or {}, parsed
