"""``covidlake serve``: the results API on one machine.

A real HTTP server (stdlib ``ThreadingHTTPServer``, HTTP/1.1 keep-alive) that turns
each request into the API Gateway HTTP API (payload 2.0) event and calls a Lambda handler
built by the same factory as the one that runs in AWS
(:func:`covidlake.api.handler.create_lambda_handler`), over a result service passed in:
by default the DuckDB backend over a lake folder. Nothing is read from or written to the
environment.
"""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import click

from covidlake.query import CachedResults

REPORT_PNG = re.compile(r"/(?:report/)?([a-z0-9_]{1,64}\.png)")
MAX_BODY_BYTES = 1024 * 1024  # API Gateway allows 10 MB; nothing here needs more than a few bytes
CONTENT_LENGTH = re.compile(r"[0-9]{1,12}")  # no sign, no underscore, no list: anything else is 400
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token: "Content-Length " is not one


HANDLER_LOCK = threading.Lock()


class RequestTimeout(Exception):
    """The client did not send its headers or body within the deadline."""


class LocalContext:
    """The parts of a Lambda context that Powertools reads."""

    function_name = "covidlake-serve"
    function_version = "$LATEST"
    memory_limit_in_mb = 0
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:covidlake-serve"
    log_group_name = "local"
    log_stream_name = "local"

    def __init__(self) -> None:
        self.aws_request_id = uuid.uuid4().hex

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def to_event(method: str, target: str, headers: list[tuple[str, str]], body: bytes, client_ip: str) -> dict:
    """An API Gateway HTTP API payload-2.0 event for one request."""
    url = urlsplit(target)
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    query: dict[str, str] = {}
    for k, v in parse_qsl(url.query, keep_blank_values=True):
        query[k] = f"{query[k]},{v}" if k in query else v
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": url.path or "/",
        "rawQueryString": url.query,
        "headers": merged,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": merged.get("host", "localhost"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": url.path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": client_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:  # API Gateway base64-encodes what is not text
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class ApiRequestHandler(BaseHTTPRequestHandler):
    """The stdlib's request parsing behind limits: the request line and headers are read
    under a size cap and a deadline, then handed to ``parse_request``; the body has its own
    deadline; every error, the stdlib's own included, is JSON."""

    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "covidlake"
    sys_version = ""
    lambda_handler: Callable[[dict, Any], dict]
    access_log = False
    report_dir: Path | None = None
    max_line_bytes = 8 * 1024  # the request line (414) or one header line (431)
    max_head_bytes = 64 * 1024  # the request line and all headers (431)
    idle_seconds = 30.0  # keep-alive: how long to wait for the next request
    header_seconds = 10.0  # from a request's first byte to the end of its headers (408)
    body_seconds = 10.0  # for the whole body (408)
    write_seconds = 10.0  # for each write of a response to a client that does not read

    def setup(self) -> None:
        super().setup()
        # One write per response and no Nagle delay on keep-alive connections.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_one_request(self) -> None:
        self.command, self.request_version, self.close_connection = "", "HTTP/1.1", True
        try:
            head = self._read_head()
        except RequestTimeout:
            return self._reply(408, {"message": f"request headers not received within {self.header_seconds:g} s"})
        except TooLarge as err:
            return self.send_error(err.status, err.message)
        except (ConnectionError, TimeoutError):
            return None
        if not head:
            return None
        line, _, rest = head.partition(b"\n")
        self.raw_requestline, self.requestline = line + b"\n", ""
        socket_file, self.rfile = self.rfile, io.BytesIO(rest)
        try:
            parsed = self.parse_request()  # the stdlib's parser, over the bytes read above
        finally:
            self.rfile = socket_file
        if parsed:
            self._serve()

    def _read_head(self) -> bytes:
        """The request line and headers, or b"" if the client closed or stayed idle."""
        self.connection.settimeout(self.idle_seconds)
        try:
            first = self.rfile.peek(1)
        except TimeoutError:
            return b""
        if first[:1] == b"\x16":
            self.send_error(400, "this port speaks plain HTTP, not TLS")
            return b""
        end = first.find(b"\r\n\r\n", 0, self.max_head_bytes)
        if end > 0 and self._plain_head(first[:end]):
            return self.rfile.read(end + 4)  # the usual case: the whole head arrived at once, within the caps
        deadline = time.monotonic() + self.header_seconds
        head = bytearray()
        while True:
            line = self._read_line(deadline, 431 if head else 414)
            if not line.endswith(b"\n"):
                return b""  # closed mid-request
            if not head and line.strip() == b"":
                continue  # RFC 9112: ignore empty lines before the request line
            if head and line[:1] in b" \t":
                self.send_error(400, "obsolete line folding in a header")
                return b""
            head += line
            if len(head) > self.max_head_bytes:
                self.send_error(431, f"request headers over {self.max_head_bytes} bytes")
                return b""
            if line in (b"\r\n", b"\n"):
                return bytes(head)

    def _plain_head(self, head: bytes) -> bool:
        """No line over the cap, no leading blank line, no folded header: nothing for the slow path."""
        lines = head.split(b"\n")
        return max(map(len, lines)) <= self.max_line_bytes and not any(line[:1].isspace() for line in lines)

    def _read_line(self, deadline: float, too_long: int) -> bytes:
        """One line of at most max_line_bytes, read a recv at a time against the deadline."""
        line = bytearray()
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimeout
            self.connection.settimeout(remaining)
            try:
                chunk = self.rfile.peek(1)  # what is buffered, or one recv
            except TimeoutError:
                raise RequestTimeout from None
            if not chunk:
                break
            end = chunk.find(b"\n")
            line += self.rfile.read(min(len(chunk) if end < 0 else end + 1, self.max_line_bytes + 1 - len(line)))
            if len(line) > self.max_line_bytes:
                raise TooLarge(too_long, f"a line over {self.max_line_bytes} bytes in the request head")
        return bytes(line)

    def _read_body(self, size: int, keep: bool = True) -> bytes:
        """size bytes of body within body_seconds (408 otherwise); keep=False drains them."""
        deadline, parts = time.monotonic() + self.body_seconds, []
        while size > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimeout
            self.connection.settimeout(remaining)
            try:
                chunk = self.rfile.read1(min(size, 65536))
            except TimeoutError:
                raise RequestTimeout from None
            if not chunk:
                raise ConnectionResetError("client closed mid-body")
            size -= len(chunk)
            if keep:
                parts.append(chunk)
        return b"".join(parts)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's errors (bad request line, 414, 431, 505, ...) as JSON like every other, then close."""
        self.close_connection = True
        text = message or _reason(code)
        self._reply(code, {"message": text if len(text) <= 200 else text[:200] + "…"})

    def _framing_error(self) -> tuple[int, str] | None:
        """Strict Content-Length / Transfer-Encoding: what two servers could read two ways is refused."""
        lengths = self.headers.get_all("Content-Length") or []
        if self.headers.defects or any(not HEADER_NAME.fullmatch(name) for name in self.headers):
            return 400, "invalid header line"  # e.g. "Content-Length : 5", which ends the stdlib's header parse
        if lengths and self.headers.get_all("Transfer-Encoding"):
            return 400, "both Transfer-Encoding and Content-Length"
        if self.headers.get_all("Transfer-Encoding"):
            return 411, "send a Content-Length (chunked bodies are not supported)"
        if len(lengths) > 1:
            return 400, "more than one Content-Length"
        if lengths and not CONTENT_LENGTH.fullmatch(lengths[0]):
            return 400, "invalid Content-Length"
        return None

    def _serve(self) -> None:
        self.connection.settimeout(self.write_seconds)
        error = self._framing_error()
        if error:
            self.close_connection = True  # where this body ends is unknown: read no more
            return self._reply(error[0], {"message": error[1]})
        size = int(self.headers.get("Content-Length") or 0)
        if self.command in ("GET", "HEAD") and size == 0 and self._serve_report():
            return None
        try:
            if size > MAX_BODY_BYTES:
                # Drain a moderately large body so the client reads the answer, then hang up.
                self.close_connection = True
                if size <= 16 * MAX_BODY_BYTES:
                    self._read_body(size, keep=False)
                return self._reply(413, {"message": f"request body over {MAX_BODY_BYTES} bytes"})
            body = self._read_body(size)
        except RequestTimeout:
            self.close_connection = True
            return self._reply(408, {"message": f"request body not received within {self.body_seconds:g} s"})
        finally:
            self.connection.settimeout(self.write_seconds)
        event = to_event(self.command, self.path, list(self.headers.items()), body, self.client_address[0])
        try:
            # One request at a time through the handler, as one Lambda instance runs them: the
            # Powertools resolver keeps per-request state on the shared app (KeyError '_route').
            with HANDLER_LOCK:
                result = type(self).lambda_handler(event, LocalContext())
        except Exception as err:  # what API Gateway does when the function fails
            self.log_error("handler failed: %r", err)
            return self._reply(500, {"message": "Internal Server Error"})
        self._write_result(result)

    def _serve_report(self) -> bool:
        """GET / (the report page) and /<chart>.png or /report/<chart>.png from the lake's
        report folder, served by this server itself (the Lambda serves the API only)."""
        path = urlsplit(self.path).path
        if path in ("/", "/index.html", "/report", "/report/", "/report/index.html"):
            name, content_type = "index.html", "text/html; charset=utf-8"
        else:
            match = REPORT_PNG.fullmatch(path)
            if not match:
                return False
            name, content_type = match.group(1), "image/png"
        report_dir = type(self).report_dir
        file = report_dir / name if report_dir is not None else None
        if file is None or not file.is_file():
            if name != "index.html":
                return False  # the API answers 404 as for any unknown path
            page = (
                b"<!DOCTYPE html><title>covidlake</title><p>No report yet: run <code>covidlake run</code> or "
                b'<code>covidlake report</code>. The API: <a href="/swagger">/swagger</a>.</p>'
            )
            self._send(404, {"Content-Type": "text/html; charset=utf-8"}, page, [])
            return True
        self._send(200, {"Content-Type": content_type, "Cache-Control": "no-cache"}, file.read_bytes(), [])
        return True

    def _write_result(self, result: dict) -> None:
        status = int(result.get("statusCode", 200))
        raw = result.get("body") or ""
        payload = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode("utf-8")
        headers = dict(result.get("headers") or {})
        cookies = result.get("cookies") or []
        self._send(status, headers, payload, cookies)

    def _reply(self, status: int, body: dict) -> None:
        payload = json.dumps({"statusCode": status, **body}).encode()
        self._send(status, {"Content-Type": "application/json", "Access-Control-Allow-Origin": "*"}, payload, [])

    def _send(self, status: int, headers: dict[str, str], payload: bytes, cookies: list[str]) -> None:
        lines = [f"HTTP/1.1 {status} {_reason(status)}"]
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                lines.append(f"{name}: {value}")
        lines.extend(f"Set-Cookie: {c}" for c in cookies)
        lines.append(f"Content-Length: {len(payload)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + (b"" if self.command == "HEAD" else payload))
        if self.access_log:
            self.log_request(status, len(payload))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        if self.access_log or format.startswith("handler failed") or "code %d" in format:
            sys.stderr.write(f"{self.address_string()} - [{self.log_date_time_string()}] {format % args}\n")


class TooLarge(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class ApiServer(ThreadingHTTPServer):
    """One thread per connection, at most max_connections at once; more get 503 JSON."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, handler, max_connections: int = 64) -> None:
        self.slots = threading.BoundedSemaphore(max_connections)
        self.max_connections = max_connections
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            return self._refuse(request)
        try:
            super().process_request(request, client_address)
        except Exception:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def _refuse(self, request: socket.socket) -> None:
        body = json.dumps({"statusCode": 503, "message": f"over {self.max_connections} connections; retry"}).encode()
        head = (
            f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        try:
            request.settimeout(1.0)
            request.sendall(head.encode() + body)
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return  # the client went away; nothing to report
        super().handle_error(request, client_address)


def make_server(
    lake: str,
    host: str = "127.0.0.1",
    port: int = 3000,
    access_log: bool = False,
    max_connections: int = 64,
    service: CachedResults | None = None,
    **limits: float,
) -> ApiServer:
    """A server over the lake's refined zone, not yet serving (port 0: any free port).
    service: what answers the API (None: DuckDB over ``lake``); the lake's report folder
    is served at / either way.
    limits: override ApiRequestHandler's deadlines and size caps (header_seconds=..., ...)."""
    unknown = set(limits) - {k for k in vars(ApiRequestHandler) if k.endswith(("_seconds", "_bytes"))}
    if unknown:
        raise TypeError(f"unknown limits: {', '.join(sorted(unknown))}")
    from covidlake.api.handler import create_lambda_handler

    if service is None:
        from covidlake.query import DuckDBBackend
        from covidlake.storage import open_lake

        service = CachedResults(DuckDBBackend(open_lake(str(lake))))
    # Tracing and CloudWatch metrics mean something in AWS only; locally they slow requests.
    lambda_handler = create_lambda_handler(service, cors_origin="*", observe=False)
    handler = type(
        "BoundApiRequestHandler",
        (ApiRequestHandler,),
        {
            "lambda_handler": staticmethod(lambda_handler),
            "access_log": access_log,
            "report_dir": None if str(lake).startswith("s3://") else Path(lake) / "report",
            **limits,
        },
    )
    return ApiServer((host, port), handler, max_connections)


@click.command("serve")
@click.option("--lake", default="./lake", show_default=True, help="lake folder whose refined zone is served")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=3000, show_default=True, type=click.IntRange(0, 65535), help="port (0: any free)")
@click.option("--access-log/--no-access-log", default=False, show_default=True, help="log every request to stderr")
def serve(lake: str, host: str, port: int, access_log: bool) -> None:
    """Serve the run report at / and POST /showResults, GET /tables, /openapi.json, /swagger over LAKE."""
    if not (Path(lake) / "refined").is_dir():
        click.echo(f"warning: {lake}/refined does not exist yet: run `covidlake run` first", err=True)
    server = make_server(lake, host, port, access_log)
    h, p = server.server_address[:2]
    click.echo(f"covidlake API on http://{h}:{p}  (report at /, POST /showResults, GET /tables, /swagger)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    serve()
