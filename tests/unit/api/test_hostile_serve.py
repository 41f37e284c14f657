"""Hostile requests against `covidlake serve`, sent with raw sockets to 127.0.0.1.

Every test marked ``attack`` is a row of docs/security.md (scripts/security_table.py).
The server here runs with short deadlines and a small connection cap so that each limit
is reached quickly; every socket read is bounded by a timeout and every loop by a count.
"""

from __future__ import annotations

import json
import socket
import threading

import pytest

from covidlake.api.serve import make_server

attack = pytest.mark.attack
OK_BODY = b'{"table": "continent_stats"}'
SECONDS = 0.5  # the test server's header and body deadlines
CAP = 4  # the test server's connection cap


@pytest.fixture(scope="module")
def port(api_lake):
    srv = make_server(
        str(api_lake[0]),
        "127.0.0.1",
        0,
        max_connections=CAP,
        header_seconds=SECONDS,
        body_seconds=SECONDS,
        idle_seconds=2.0,
        write_seconds=2.0,
    )
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response (status, lower-cased headers, body); reads at most 1 MB."""
    buf = b""
    while b"\r\n\r\n" not in buf and len(buf) < 1 << 20:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a full response head: {buf[:200]!r}")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    with connect(port) as sock:
        sock.sendall(data)
        return read_response(sock)


def post(body: bytes, extra: str = "") -> bytes:
    return (
        f"POST /showResults HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def assert_json_error(status: int, headers: dict, body: bytes, expected: int) -> dict:
    assert status == expected, body[:300]
    assert headers["content-type"] == "application/json"
    parsed = json.loads(body)
    assert parsed["statusCode"] == expected and parsed["message"]
    return parsed


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_a_plain_request_is_served(port):
    """The negative control for everything below: the same server answers a normal request."""
    status, _, body = exchange(port, post(OK_BODY))
    assert status == 200 and json.loads(body)[0]["continent"] == "Africa"


# --- 1. parsing the body -------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, expected",
    [
        pytest.param(
            b"[" * 5000 + b"]" * 5000,
            400,
            id="nested-5000",
            marks=attack(
                1,
                "body nested 5,000 deep (`[[[[...]]]]`)",
                "400 JSON: not valid JSON (nested too deeply)",
            ),
        ),
        pytest.param(
            b'{"table": "clusters", "limit": ' + b"9" * 5000 + b"}",
            400,
            id="limit-5000-digits",
            marks=attack(1, "`limit` of 5,000 digits", "400 JSON: not valid JSON (number too long)"),
        ),
        pytest.param(
            b'{"table": ' + b'{"a": ' * 900 + b"1" + b"}" * 900 + b"}",
            422,
            id="nested-900",
            marks=attack(1, "`table` nested 900 deep (under the parser's limit)", "422 JSON naming `table`"),
        ),
    ],
)
def test_hostile_bodies_are_4xx_json(port, body, expected):
    assert_json_error(*exchange(port, post(body)), expected)


# --- 2. connections ------------------------------------------------------------------------


@attack(
    2,
    "headers and `Content-Length: 27`, then 5 bytes of body and a stall",
    "408 JSON after the body deadline, connection closed",
)
def test_stalled_body_is_408(port):
    with connect(port) as sock:
        sock.sendall(post(OK_BODY)[: -len(OK_BODY) + 5])
        body = assert_json_error(*read_response(sock), 408)
        assert "body" in body["message"]
        assert closed_by_server(sock)


@attack(2, "half a request head, then a stall (slowloris)", "408 JSON after the header deadline, connection closed")
def test_stalled_headers_are_408(port):
    with connect(port) as sock:
        sock.sendall(b"POST /showResults HTTP/1.1\r\nHost: t\r\n")
        assert "headers" in assert_json_error(*read_response(sock), 408)["message"]
        assert closed_by_server(sock)


@attack(
    2,
    "headers dripped one byte every 50 ms, never ending",
    "408 JSON: the deadline is for the whole head, not per byte",
)
def test_dripped_headers_are_408(port):
    with connect(port) as sock:
        sock.settimeout(0.05)
        drip = b"GET /tables HTTP/1.1\r\n" + b"X-Slow: " + b"a" * 1000
        answer = b""
        for byte in drip:  # 1,022 bytes at 50 ms: 51 s if the server waited for all of them
            try:
                sock.send(bytes([byte]))
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if answer:
                break
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]


@attack(2, "a TLS ClientHello on the plain-HTTP port", "400 JSON at once (not a wait for a line that never comes)")
def test_tls_hello_on_plain_port_is_400(port):
    hello = bytes.fromhex("16030100a5010000a10303") + bytes(32) + b"\x00\x02\x13\x01\x01\x00"
    parsed = assert_json_error(*exchange(port, hello), 400)
    assert "TLS" in parsed["message"]


@attack(
    2,
    "5 stalled connections against a cap of 4",
    "503 JSON for the one over the cap; served again once the others time out",
)
def test_connections_over_the_cap_get_503(port):
    assert CAP == 4  # as the attack's description says
    stalled = [connect(port) for _ in range(CAP)]
    try:
        for sock in stalled:
            sock.sendall(b"GET /tables HTTP/1.1\r\n")  # half a head: each holds a slot until its deadline
        assert_json_error(*exchange(port, b"GET /tables HTTP/1.1\r\nHost: t\r\n\r\n"), 503)
        for sock in stalled:
            assert_json_error(*read_response(sock), 408)
    finally:
        for sock in stalled:
            sock.close()
    statuses = []
    for _ in range(100):  # slots are released just after the 408s are written
        statuses.append(exchange(port, b"GET /tables HTTP/1.1\r\nHost: t\r\n\r\n")[0])
        if statuses[-1] == 200:
            break
    assert statuses[-1] == 200, statuses


# --- 3. header size ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "head, expected",
    [
        pytest.param(
            "X-Big: " + "a" * 9000 + "\r\n",
            431,
            id="line-9k",
            marks=attack(3, "one header line of 9 KB", "431 JSON (cap 8 KiB a line)"),
        ),
        pytest.param(
            "".join(f"X-H{i}: {'a' * 7000}\r\n" for i in range(10)),
            431,
            id="total-70k",
            marks=attack(3, "10 header lines of 7 KB (70 KB)", "431 JSON (cap 64 KiB in all)"),
        ),
        pytest.param(
            "".join(f"X-H{i}: 1\r\n" for i in range(101)),
            431,
            id="101-headers",
            marks=attack(3, "101 header lines", "431 JSON (the stdlib's cap of 100, as JSON)"),
        ),
        pytest.param("X-Big: " + "a" * 8000 + "\r\n", 200, id="line-8000-ok"),
    ],
)
def test_header_caps(port, head, expected):
    status, headers, body = exchange(port, f"GET /tables HTTP/1.1\r\nHost: t\r\n{head}\r\n".encode())
    if expected == 200:
        assert status == 200  # the negative control: under the caps is served
    else:
        assert_json_error(status, headers, body, expected)


@attack(3, "a request line of 9 KB", "414 JSON")
def test_long_request_line_is_414(port):
    assert_json_error(*exchange(port, f"GET /{'a' * 9000} HTTP/1.1\r\nHost: t\r\n\r\n".encode()), 414)


# --- 4. error shape ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes, expected",
    [
        pytest.param(
            b"GARBAGE\r\n\r\n",
            400,
            id="bad-request-line",
            marks=attack(4, "a request line that is not HTTP", "400 JSON (not the stdlib's HTML page)"),
        ),
        pytest.param(b"GET /tables HTTP/9.9\r\n\r\n", 505, id="http-9.9", marks=attack(4, "HTTP/9.9", "505 JSON")),
        pytest.param(
            b"GET /tables HTTP/1.1\r\nX-Folded: a\r\n b\r\n\r\n",
            400,
            id="obs-fold",
            marks=attack(4, "a folded header line (obsolete line folding)", "400 JSON"),
        ),
    ],
)
def test_stdlib_errors_are_json(port, request_bytes, expected):
    assert_json_error(*exchange(port, request_bytes), expected)


@attack(4, "GET /showResults (the route takes POST)", "405 JSON with `Allow: POST, OPTIONS`")
def test_wrong_method_is_405_with_allow(port):
    status, headers, body = exchange(port, b"GET /showResults HTTP/1.1\r\nHost: t\r\n\r\n")
    assert_json_error(status, headers, body, 405)
    assert headers["allow"] == "POST, OPTIONS"
    assert exchange(port, b"GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n")[0] == 404  # no route at all: still 404


@attack(4, "an unknown table name of 100 KB", "400 JSON echoing 64 characters of it")
def test_unknown_table_echo_is_truncated(port):
    name = "x" * 100_000
    parsed = assert_json_error(*exchange(port, post(json.dumps({"table": name}).encode())), 400)
    assert len(parsed["message"]) < 400 and "100000 characters" in parsed["message"]


# --- 5. strict HTTP framing ------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(
            "Content-Length: 2_8\r\n",
            id="underscore",
            marks=attack(5, "`Content-Length: 2_8` (Python's int() takes it)", "400 JSON, connection closed"),
        ),
        pytest.param(
            "Content-Length: +28\r\n",
            id="plus",
            marks=attack(5, "`Content-Length: +28`", "400 JSON, connection closed"),
        ),
        pytest.param(
            "Content-Length: 28\r\nContent-Length: 28\r\n",
            id="two",
            marks=attack(5, "two Content-Length headers", "400 JSON, connection closed"),
        ),
        pytest.param(
            "Content-Length: 28, 28\r\n",
            id="list",
            marks=attack(5, "`Content-Length: 28, 28`", "400 JSON, connection closed"),
        ),
        pytest.param(
            "Content-Length: 28\r\nTransfer-Encoding: chunked\r\n",
            id="te-and-cl",
            marks=attack(5, "Transfer-Encoding: chunked with Content-Length", "400 JSON, connection closed"),
        ),
        pytest.param(
            "Content-Length: 28\r\nTransfer-Encoding: identity\r\n",
            id="te-identity-and-cl",
            marks=attack(5, "Transfer-Encoding: identity with Content-Length", "400 JSON, connection closed"),
        ),
        pytest.param(
            "Content-Length : 28\r\n",
            id="space-before-colon",
            marks=attack(5, "`Content-Length : 28` (space before the colon)", "400 JSON, connection closed"),
        ),
    ],
)
def test_ambiguous_framing_is_400_and_closes(port, headers):
    assert len(OK_BODY) == 28
    head = f"POST /showResults HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{headers}\r\n"
    with connect(port) as sock:
        sock.sendall(head.encode() + OK_BODY)
        assert_json_error(*read_response(sock), 400)
        assert closed_by_server(sock)


def test_plain_content_length_keeps_the_connection(port):
    """The negative control of the framing tests: a valid Content-Length is served, keep-alive."""
    with connect(port) as sock:
        for _ in range(2):
            sock.sendall(post(OK_BODY))
            assert read_response(sock)[0] == 200


@attack(2, "4 keep-alive clients sending 150 requests each at once", "all 200, no 500 from the shared resolver's state")
def test_concurrent_requests_get_no_5xx(port):
    """The Powertools resolver keeps per-request state on the shared app: without the
    server's handler lock, concurrent requests now and then got 500 (KeyError '_route')."""
    statuses: list[int] = []

    def client():
        with connect(port) as sock:
            for _ in range(150):
                sock.sendall(post(OK_BODY))
                statuses.append(read_response(sock)[0])

    threads = [threading.Thread(target=client) for _ in range(CAP)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(statuses) == 150 * CAP and set(statuses) == {200}
