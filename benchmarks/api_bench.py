"""Benchmark of `covidlake serve` under concurrent load (not a test).

Starts the server in its own process on 127.0.0.1, warms the cache with one request,
then drives POST /showResults for one (cached) table from a separate load-generator
process: `wrk` (Debian package `wrk`) when present, else a Python client with one
keep-alive connection per thread. Load is loopback only and bounded in time (and, for
the Python client, in request count). Prints p50/p99 latency and requests/s, and with
--write appends a row to benchmarks/API_RESULTS.md.

    python benchmarks/api_bench.py                       # sample lake, wrk if installed
    python benchmarks/api_bench.py --lake lake --table clusters --duration 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "API_RESULTS.md"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample_lake() -> Path:
    sys.path.insert(0, str(ROOT / "tests" / "unit" / "api"))
    from sample_lake import write_sample_lake

    root = Path(tempfile.mkdtemp(prefix="covidlake-bench-"))
    write_sample_lake(root)
    return root


def start_server(lake: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "covidlake.api.serve", "--lake", str(lake), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/tables", timeout=1).read()
            return proc
        except OSError as error:
            if proc.poll() is not None:
                raise SystemExit(f"server exited: {proc.stderr.read().decode()}") from error
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start within 30 s")


def post(port: int, body: bytes) -> bytes:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/showResults", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read()


def run_wrk(port: int, body: bytes, threads: int, connections: int, duration: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            textwrap.dedent(
                f"""
                wrk.method = "POST"
                wrk.body = {json.dumps(body.decode())}
                wrk.headers["Content-Type"] = "application/json"
                """
            )
        )
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "5s",
            "--latency",
            "-s",
            script.name,
            f"http://127.0.0.1:{port}/showResults",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    os.unlink(script.name)

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "client": "wrk",
        "p50_ms": ms("50%"),
        "p90_ms": ms("90%"),
        "p99_ms": ms("99%"),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else "none",
        "raw": out,
    }


PY_CLIENT = r"""
import http.client, json, sys, threading, time
port, body, threads = int(sys.argv[1]), sys.argv[2].encode(), int(sys.argv[3])
duration, max_requests = float(sys.argv[4]), int(sys.argv[5])
lat, bad, lock = [], [0], threading.Lock()
stop = time.monotonic() + duration
def worker(n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    mine = []
    while time.monotonic() < stop and len(mine) < n:
        t = time.perf_counter()
        c.request("POST", "/showResults", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse(); r.read()
        mine.append(time.perf_counter() - t)
        if r.status != 200: bad[0] += 1
    with lock: lat.extend(mine)
start = time.perf_counter()
ts = [threading.Thread(target=worker, args=(max_requests // threads,)) for _ in range(threads)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps({"lat": lat, "elapsed": time.perf_counter() - start, "bad": bad[0]}))
"""


def run_python(port: int, body: bytes, connections: int, duration: int, max_requests: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PY_CLIENT, str(port), body.decode(), str(connections), str(duration), str(max_requests)],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    data = json.loads(out)
    lat = sorted(data["lat"])
    q = statistics.quantiles(lat, n=100)
    return {
        "client": "python http.client",
        "p50_ms": statistics.median(lat) * 1000,
        "p90_ms": q[89] * 1000,
        "p99_ms": q[98] * 1000,
        "rps": len(lat) / data["elapsed"],
        "requests": len(lat),
        "non_2xx": data["bad"],
        "socket_errors": "none",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lake", type=Path, help="lake folder (default: a generated sample lake)")
    p.add_argument("--table", default="continent_stats")
    p.add_argument("--duration", type=int, default=10, help="seconds of load (bounded)")
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--threads", type=int, default=1, help="wrk threads")
    p.add_argument("--max-requests", type=int, default=200_000, help="cap for the Python client")
    p.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    p.add_argument("--write", action="store_true", help=f"append the result to {RESULTS.relative_to(ROOT)}")
    args = p.parse_args()

    lake = args.lake or sample_lake()
    port = free_port()
    body = json.dumps({"table": args.table}).encode()
    server = start_server(lake, port)
    try:
        first = post(port, body)  # fills the cache: the run measures cached requests
        rows = len(json.loads(first))
        client = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "python")
        if client == "wrk":
            result = run_wrk(port, body, args.threads, args.connections, args.duration)
        else:
            result = run_python(port, body, args.connections, args.duration, args.max_requests)
    finally:
        server.terminate()
        server.wait(timeout=10)
    result.update(
        table=args.table,
        rows=rows,
        bytes=len(first),
        connections=args.connections,
        duration_s=args.duration,
        lake=str(args.lake or "generated sample lake"),
    )
    raw = result.pop("raw", "")
    print(raw)
    print(json.dumps(result, indent=2))
    ok = result["p50_ms"] < 5 and result["rps"] >= 1000 and result["non_2xx"] == 0
    print(f"target p50 < 5 ms and >= 1000 req/s: {'met' if ok else 'MISSED'}")
    if args.write:
        line = (
            f"| {time.strftime('%Y-%m-%d')} | {platform.python_version()} | {os.cpu_count()} | {result['client']} | "
            f"{args.table} ({rows} rows, {len(first)} B) | {args.connections} | {args.duration} s | "
            f"{result['requests']} | {result['p50_ms']:.2f} | {result['p99_ms']:.2f} | {result['rps']:.0f} | "
            f"{result['non_2xx']} |\n"
        )
        with RESULTS.open("a") as f:
            f.write(line)


if __name__ == "__main__":
    main()
