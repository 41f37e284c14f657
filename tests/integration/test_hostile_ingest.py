"""Hostile sources against ingest, served for real on 127.0.0.1; every test marked
``attack`` is a row of docs/security.md."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from covidlake.errors import SchemaError, SourceError
from covidlake.raw.capture import SPARK_MAX_COLUMNS
from covidlake.raw.download import download_csv
from covidlake.raw.ingest import ingest
from covidlake.schemas import COVID_FACTS
from covidlake.settings import BUNDLED_DATA
from covidlake.storage import LocalStorage

from .httpfixtures import http_server, send

attack = pytest.mark.attack
CSV = (BUNDLED_DATA / "covid_data.csv").read_bytes()


def wide_csv(columns: int) -> bytes:
    names = COVID_FACTS.required_names + [f"extra_{i}" for i in range(columns - len(COVID_FACTS.required_names))]
    return (",".join(names) + "\n" + ",".join("1" for _ in names) + "\n").encode()


@attack(
    7,
    "a CSV of 20,481 columns (Spark's CSV reader takes 20,480)",
    "SchemaError at ingest giving the count; nothing left behind",
)
def test_csv_wider_than_spark_is_refused(settings, tmp_path):
    with (
        http_server(lambda h, n: send(h, 200, wide_csv(SPARK_MAX_COLUMNS + 1))) as (url, _),
        pytest.raises(SchemaError, match=r"20481 columns; Spark reads at most 20480"),
    ):
        download_csv(url, tmp_path / "wide.csv", settings)


def test_csv_as_wide_as_spark_takes_is_accepted(settings, tmp_path):
    """The negative control: exactly 20,480 columns passes."""
    with http_server(lambda h, n: send(h, 200, wide_csv(SPARK_MAX_COLUMNS))) as (url, _):
        assert download_csv(url, tmp_path / "wide.csv", settings).rows == 1


def drip(chunked: bool):
    def respond(handler, attempt):
        handler.send_response(200)
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.send_header("Content-Length", str(len(CSV)))
        handler.end_headers()
        for byte in CSV[:400]:  # 400 bytes at 20 ms: 8 s, far past the 0.5 s deadline
            try:
                handler.wfile.write(b"1\r\n" + bytes([byte]) + b"\r\n" if chunked else bytes([byte]))
                handler.wfile.flush()
            except OSError:
                return
            threading.Event().wait(0.02)

    return respond


@pytest.mark.parametrize(
    "chunked",
    [
        pytest.param(
            False,
            id="content-length",
            marks=attack(7, "a source that drips a byte every 20 ms", "SourceError at the download deadline"),
        ),
        pytest.param(
            True,
            id="chunked",
            marks=attack(
                7,
                "a chunked source that drips a byte every 20 ms",
                "SourceError at the download deadline",
            ),
        ),
    ],
)
def test_dripping_source_hits_the_deadline(settings, tmp_path, chunked):
    quick = settings.model_copy(update={"http_download_deadline_seconds": 0.5, "http_retries": 0})
    with http_server(drip(chunked)) as (url, _), pytest.raises(SourceError, match=r"not finished within 0.5 s"):
        download_csv(url, tmp_path / "slow.csv", quick)
    assert not (tmp_path / "slow.csv").exists()


def redirect_to(target: str):
    return lambda h, n: send(h, 302, b"", {"Location": target})


@attack(7, "a redirect to another host", "followed by default; the final URL is recorded in the manifest")
def test_cross_host_redirect_is_followed_and_recorded(pg_url, settings, tmp_path):
    with http_server(lambda h, n: send(h, 200, CSV)) as (data_url, _):
        final = data_url.replace("127.0.0.1", "localhost") + "/covid_data.csv"
        with http_server(redirect_to(final)) as (url, _):
            result = ingest(
                LocalStorage(tmp_path),
                url + "/latest.csv",
                pg_url,
                settings,
                now=datetime(2026, 11, 1, tzinfo=UTC),
            )
    manifest = json.loads(LocalStorage(tmp_path).get_bytes(result.manifest_key))
    assert manifest["sources"]["covid_data"]["origin"] == url + "/latest.csv"
    assert manifest["sources"]["covid_data"]["final_url"] == final


@attack(
    7,
    "a redirect to another host with COVIDLAKE_HTTP_CROSS_HOST_REDIRECTS=refuse",
    "SourceError naming the target; not fetched",
)
def test_cross_host_redirect_can_be_refused(settings, tmp_path):
    strict = settings.model_copy(update={"http_cross_host_redirects": "refuse"})
    with http_server(lambda h, n: send(h, 200, CSV)) as (data_url, hits):
        final = data_url.replace("127.0.0.1", "localhost") + "/covid_data.csv"
        with http_server(redirect_to(final)) as (url, _):
            with pytest.raises(SourceError, match="refused a redirect to another host"):
                download_csv(url, tmp_path / "x.csv", strict)
            same_host = data_url + "/covid_data.csv"  # the negative control: same host is followed
        with http_server(redirect_to(same_host)) as (url, _):
            assert download_csv(url, tmp_path / "y.csv", strict).final_url == same_host
    assert hits == ["/covid_data.csv"]  # only the same-host redirect reached the data server


@pytest.fixture(scope="module")
def https_redirect(tmp_path_factory):
    """An HTTPS server on 127.0.0.1 (a self-signed certificate made with openssl) that
    redirects to a plain-HTTP URL given per test: yield (https_url, set_target, ca_file)."""
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    target = {"url": ""}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            send(self, 302, b"", {"Location": target["url"]})

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/covid_data.csv", target, str(cert)
    server.shutdown()
    server.server_close()


@attack(7, "an https source that redirects to http", "SourceError: refused, the http URL is never fetched")
def test_https_to_http_redirect_is_refused(https_redirect, settings, tmp_path, monkeypatch):
    url, target, ca_file = https_redirect
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    with http_server(lambda h, n: send(h, 200, CSV)) as (plain, hits):
        target["url"] = plain + "/covid_data.csv"
        with pytest.raises(SourceError, match="refused a redirect from https to http"):
            download_csv(url, tmp_path / "x.csv", settings)
    assert hits == []
    target["url"] = url  # the negative control: https -> https is followed (here: to itself, until the limit)
    with pytest.raises(SourceError, match="redirect"):
        download_csv(url, tmp_path / "x.csv", settings.model_copy(update={"http_retries": 0}))
