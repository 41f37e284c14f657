"""Fixtures for the results API tests: a small refined lake (`api_lake`), the Lambda
handler bound to it (`api_handler`), and a helper to call it with HTTP API events."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from covidlake import api
from covidlake.query import CachedResults, DuckDBBackend
from covidlake.serve import LocalContext, load_handler, to_event
from covidlake.storage import LocalStorage
from tests.unit.api.sample_lake import write_sample_lake


@pytest.fixture(scope="session")
def api_lake(tmp_path_factory) -> tuple[Path, dict[str, list[dict]]]:
    """A lake folder with all seven refined tables (read-only: copy it to change it)."""
    root = tmp_path_factory.mktemp("api_lake")
    rows = write_sample_lake(root)
    return root, rows


@pytest.fixture(scope="session")
def handler_module(tmp_path_factory):
    """functions/show_results/app.py, imported once as Lambda would."""
    import os

    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    return load_handler()


@pytest.fixture
def use_backend():
    """Point the API at a backend for one test: use_backend(backend) -> CachedResults."""

    def _use(backend, version_check_seconds: float = 0.0) -> CachedResults:
        service = CachedResults(backend, version_check_seconds)
        api.set_service(service)
        return service

    yield _use
    api.set_service(None)


@pytest.fixture
def api_handler(handler_module, api_lake, use_backend):
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
        return _invoke(handler_module, event)

    call.service = service
    return call


@pytest.fixture
def invoke(handler_module):
    """invoke(event) -> (status, headers, parsed body) for a raw HTTP API event."""
    return lambda event: _invoke(handler_module, event)


def _invoke(handler_module, event: dict):
    result = handler_module.lambda_handler(event, LocalContext())
    text = result.get("body") or ""
    if result.get("isBase64Encoded"):
        text = base64.b64decode(text).decode()
    try:
        parsed = json.loads(text) if text else None
    except json.JSONDecodeError:
        parsed = text
    return result["statusCode"], result.get("headers") or {}, parsed
