"""Benchmark of the local pipeline from 10^5 to 10^7 daily rows (not a test).

    python -m benchmarks.bench                                  # 1e5, 4.3e5, 1e6, 1e7
    python -m benchmarks.bench --sizes 1e5,4.3e5 [--profile]    # or: make bench SIZES=1e5,4.3e5

For each size: generate an OWID-shaped daily CSV (benchmarks/generate.py) under
--workdir (default $COVIDLAKE_BENCH_DIR or /tmp/covidlake-bench, never the repo),
then, each in a fresh child process:

* `spark`: covidlake.runner.run_pipeline exactly as `covidlake run` does it: embedded
  PostgreSQL loaded with data/country_data.csv, the CSV served on 127.0.0.1 and ingested
  through the real HTTP path, Spark ETL and analytics in one SparkSession, DuckDB query.
* `duckdb`: the reference, benchmarks/duckdb_reference.py, on the same two raw CSVs.

Per stage: wall time (the runner's own stage timer), rows per second (input daily rows
/ seconds) and the peak resident memory of the whole process tree during the stage:
a psutil thread samples every 0.1 s the sum of RSS over the child process, all its
descendants (the Spark JVM) and the embedded PostgreSQL server's processes (pg_ctl
detaches them, so they are found by their data directory). A sum of RSS counts shared
pages once per process, so it errs high.

Measurements accumulate in benchmarks/results.json (one entry per size, the newest
run wins), from which benchmarks/RESULTS.md and benchmarks/results.png are rendered.
With --profile the Spark event log is kept and summarised per SQL execution.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_JSON = ROOT / "benchmarks" / "results.json"
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
RESULTS_PNG = ROOT / "benchmarks" / "results.png"
NOTES_MD = ROOT / "benchmarks" / "NOTES.md"
DEFAULT_SIZES = "1e5,4.3e5,1e6,1e7"
STAGES = ("database", "ingest", "spark_start", "etl", "analytics", "query")


# --- memory of a process tree ------------------------------------------------------------


class TreeMemory:
    """Samples the summed RSS of this process, its descendants and extra processes
    (found by a substring of their command line) in a background thread."""

    def __init__(self, extra_marker: str | None = None, interval: float = 0.1):
        import psutil

        self.psutil = psutil
        self.root = psutil.Process()
        self.marker = extra_marker
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._extra: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _scan_extra(self) -> None:
        if not self.marker:
            return
        found = set()
        for p in self.psutil.process_iter(["pid", "cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if self.marker in cmd:
                found.add(p.pid)
                with suppress(self.psutil.Error):
                    found.update(c.pid for c in p.children(recursive=True))
        self._extra = found

    def sample(self) -> int:
        procs = {self.root.pid: self.root}
        try:
            for c in self.root.children(recursive=True):
                procs[c.pid] = c
        except self.psutil.Error:
            pass
        for pid in self._extra:
            if pid not in procs:
                with suppress(self.psutil.Error):
                    procs[pid] = self.psutil.Process(pid)
        total = 0
        for p in procs.values():
            with suppress(self.psutil.Error):
                total += p.memory_info().rss
        self.samples.append((time.perf_counter(), total))
        return total

    def _run(self) -> None:
        last_scan = 0.0
        while not self._stop.is_set():
            now = time.perf_counter()
            if now - last_scan > 1.0:
                self._scan_extra()
                last_scan = now
            self.sample()
            self._stop.wait(self.interval)

    def start(self) -> TreeMemory:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, start: float = float("-inf"), end: float = float("inf")) -> int:
        values = [rss for t, rss in self.samples if start <= t <= end]
        return max(values) if values else 0


# --- the child runs ----------------------------------------------------------------------


def child_spark(args) -> dict:
    """One pipeline run as `covidlake run` does it, with per-stage peak memory."""
    import covidlake.runner as runner
    from covidlake.local import serve_file
    from covidlake.settings import Settings

    state_dir = Path(args.state_dir)
    memory = TreeMemory(extra_marker=str(state_dir / "postgres")).start()
    windows: dict[str, tuple[float, float]] = {}
    original_timed = runner.timed

    @contextmanager
    def timed(report, stage):  # the runner's timer, plus the window for the memory peak
        start = time.perf_counter()
        memory.sample()
        try:
            with original_timed(report, stage):
                yield
        finally:
            memory.sample()
            windows[stage] = (start, time.perf_counter())

    runner.timed = timed
    settings = Settings(
        state_dir=state_dir,
        spark_driver_memory=args.driver_memory,
        max_download_bytes=64 * 1024**3,
        http_read_timeout=300,
    )
    started = time.perf_counter()
    with serve_file(Path(args.csv)) as url:
        report = runner.run_pipeline(settings, lake=args.lake, source_url=url, force=True)
    pipeline_seconds = time.perf_counter() - started
    memory.stop()
    if not report.processed:
        raise SystemExit("the Spark stages did not run")
    return {
        "stage_seconds": report.stage_seconds,
        "stage_peak_rss": {s: memory.peak(*w) for s, w in windows.items()},
        "peak_rss": memory.peak(),
        "pipeline_seconds": round(pipeline_seconds, 2),
        "zone_rows": report.zone_rows,
        "quality": report.quality,
        "inputs": {"covid_csv": report.ingest.inputs["covid_csv"], "country_csv": report.ingest.inputs["country_csv"]},
        "driver_memory": args.driver_memory,
    }


def child_duckdb(args) -> dict:
    from benchmarks.duckdb_reference import run

    memory = TreeMemory().start()
    result = run(args.csv, args.country_csv, Path(args.out), temp_dir=args.temp_dir)
    memory.stop()
    result["peak_rss"] = memory.peak()
    return result


def child_floor(args) -> dict:
    from benchmarks.spark_floor import run

    memory = TreeMemory().start()
    result = run(args.csv, Path(args.out), Path(args.csv).stat().st_size)
    memory.stop()
    result["peak_rss"] = memory.peak()
    return result


def best_of(repeat: int, measure, key) -> dict:
    """Run measure() `repeat` times; the fastest by key, with every attempt's time and
    the 1-minute load average before and after each (os.getloadavg)."""
    attempts = []
    for _ in range(repeat):
        load_before = os.getloadavg()[0]
        result = measure()
        result["load"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        attempts.append(result)
    best = min(attempts, key=key)
    best["attempts"] = [{"seconds": key(a), "load": a["load"]} for a in attempts]
    return best


def bench_bundled(args) -> dict:
    """`covidlake run` on the bundled data, as a user runs it after install: a fresh
    process each time (Python and JVM start included), a new lake and state folder."""

    def once() -> dict:
        work = Path(tempfile.mkdtemp(prefix="bundled-", dir=args.workdir))
        env = {**os.environ, "COVIDLAKE_STATE_DIR": str(work / "state")}
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "covidlake.cli", "run", "--lake", str(work / "lake")],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        seconds = round(time.perf_counter() - started, 2)
        if proc.returncode != 0:
            raise SystemExit(f"covidlake run failed: {proc.stderr[-2000:]}")
        shutil.rmtree(work, ignore_errors=True)
        stages = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        return {"seconds": seconds, "stages": stages}

    print("[bench] bundled data: covidlake run", flush=True)
    result = best_of(args.repeat, once, key=lambda r: r["seconds"])
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["commit"] = git_commit()
    print(f"[bench]   {[a['seconds'] for a in result['attempts']]} s", flush=True)
    from covidlake.settings import BUNDLED_DATA

    print("[bench]   reference (Spark floor on the bundled file)", flush=True)
    out = Path(tempfile.mkdtemp(prefix="bundled-floor-", dir=args.workdir))
    csv = str(BUNDLED_DATA / "covid_data.csv")
    result["spark_floor"] = best_of(
        args.repeat, lambda: run_child("floor", ["--csv", csv, "--out", str(out)]), key=lambda r: r["seconds"]
    )
    shutil.rmtree(out, ignore_errors=True)
    print(f"[bench]   Spark floor {result['spark_floor']['seconds']} s", flush=True)
    return result


def run_child(kind: str, argv: list[str], env: dict | None = None) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        result_path = Path(fh.name)
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "benchmarks.bench", f"_{kind}", "--result", str(result_path), *argv]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        raise SystemExit(f"{kind} run failed (exit {proc.returncode}): {' '.join(cmd)}")
    result = json.loads(result_path.read_text())
    result_path.unlink()
    result["process_seconds"] = round(time.perf_counter() - started, 2)
    return result


# --- the parent ---------------------------------------------------------------------------


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import duckdb
    import psutil
    import pyspark

    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "java": java[0] if java else "unknown",
        "pyspark": pyspark.__version__,
        "duckdb": duckdb.__version__,
    }


def git_commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
    )
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def driver_memory_for(rows: int) -> str:
    return os.environ.get("COVIDLAKE_SPARK_DRIVER_MEMORY") or "2g"


def bench_size(rows: int, args) -> dict:
    from benchmarks.generate import generate

    work = Path(args.workdir) / f"n{rows}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    csv_path = work / "owid-covid-daily.csv"
    load_before = os.getloadavg()
    print(f"[bench] {rows:,} rows: generating {csv_path}", flush=True)
    gen = generate(rows, csv_path, seed=args.seed)
    print(f"[bench]   {gen['bytes'] / 1e6:,.0f} MB in {gen['seconds']} s", flush=True)
    env = {}
    if args.profile:
        conf = work / "spark-conf"
        conf.mkdir()
        (work / "eventlog").mkdir()
        (conf / "spark-defaults.conf").write_text(
            f"spark.eventLog.enabled true\nspark.eventLog.dir file://{work / 'eventlog'}\n"
        )
        env["SPARK_CONF_DIR"] = str(conf)
    print("[bench]   pipeline (Spark)", flush=True)

    def pipeline() -> dict:
        shutil.rmtree(work / "lake", ignore_errors=True)
        result = run_child(
            "spark",
            [
                "--csv",
                str(csv_path),
                "--lake",
                str(work / "lake"),
                "--state-dir",
                str(work / "state"),
                "--driver-memory",
                args.driver_memory or driver_memory_for(rows),
            ],
            env,
        )
        print(f"[bench]   {result['stage_seconds']} peak {result['peak_rss'] / 1024**3:.2f} GB", flush=True)
        return result

    spark = best_of(args.repeat, pipeline, key=lambda r: r["pipeline_seconds"])
    entry = {
        "rows": rows,
        "csv_bytes": gen["bytes"],
        "generate_seconds": gen["seconds"],
        "seed": args.seed,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "load_before": [round(x, 2) for x in load_before],
        "spark": spark,
    }
    if args.profile:
        from benchmarks.profile import summarise_event_log

        logs = sorted((work / "eventlog").iterdir())
        entry["profile"] = summarise_event_log(logs[-1]) if logs else []
    if not args.no_reference:
        print("[bench]   reference (DuckDB)", flush=True)
        raw_covid = spark["inputs"]["covid_csv"].removeprefix("file://")
        raw_country = spark["inputs"]["country_csv"].removeprefix("file://")
        ref = best_of(
            args.repeat,
            lambda: run_child(
                "duckdb",
                [
                    "--csv",
                    raw_covid,
                    "--country-csv",
                    raw_country,
                    "--out",
                    str(work / "duckdb-trusted"),
                    "--temp-dir",
                    str(work / "duckdb-tmp"),
                ],
            ),
            key=lambda r: r["seconds"],
        )
        print(f"[bench]   DuckDB {ref['seconds']} s, peak {ref['peak_rss'] / 1024**3:.2f} GB", flush=True)
        trusted = spark["zone_rows"]["trusted"]
        ref["same_rows_as_spark"] = all(ref["rows"][t] == trusted.get(t, 0) for t in ("daily", "snapshot", "rejected"))
        entry["duckdb"] = ref
        print("[bench]   reference (Spark floor)", flush=True)
        floor = best_of(
            args.repeat,
            lambda: run_child("floor", ["--csv", raw_covid, "--out", str(work / "floor")]),
            key=lambda r: r["seconds"],
        )
        print(f"[bench]   Spark floor {floor['seconds']} s", flush=True)
        entry["spark_floor"] = floor
    entry["load_after"] = [round(x, 2) for x in os.getloadavg()]
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return entry


def load_results() -> dict:
    if RESULTS_JSON.exists():
        return json.loads(RESULTS_JSON.read_text())
    return {"runs": {}}


def save_results(results: dict) -> None:
    RESULTS_JSON.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    for name in ("_spark", "_duckdb", "_floor"):
        child = sub.add_parser(name)
        child.add_argument("--result", required=True)
        child.add_argument("--csv", required=True)
        child.add_argument("--lake")
        child.add_argument("--state-dir")
        child.add_argument("--driver-memory", default="2g")
        child.add_argument("--country-csv")
        child.add_argument("--out")
        child.add_argument("--temp-dir")
    sub.add_parser("render", help="rewrite RESULTS.md and results.png from results.json")
    parser.add_argument(
        "--sizes",
        default=os.environ.get("SIZES") or DEFAULT_SIZES,
        help=f"comma-separated row counts (default {DEFAULT_SIZES})",
    )
    parser.add_argument("--workdir", default=os.environ.get("COVIDLAKE_BENCH_DIR") or "/tmp/covidlake-bench")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--driver-memory", default=None, help="spark.driver.memory (default 2g)")
    parser.add_argument("--no-reference", action="store_true", help="skip the DuckDB reference")
    parser.add_argument("--profile", action="store_true", help="keep and summarise the Spark event log")
    parser.add_argument("--keep", action="store_true", help="keep the generated data and lakes")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is kept (default 3)")
    parser.add_argument("--no-bundled", action="store_true", help="skip `covidlake run` on the bundled data")
    args = parser.parse_args(argv)

    if args.command in ("_spark", "_duckdb", "_floor"):
        result = {"_spark": child_spark, "_duckdb": child_duckdb, "_floor": child_floor}[args.command](args)
        Path(args.result).write_text(json.dumps(result))
        return 0

    from benchmarks.generate import parse_rows
    from benchmarks.report import render

    if args.command != "render":
        sizes = [parse_rows(s) for s in args.sizes.split(",") if s.strip()]
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(args.workdir).free
        need = max(sizes) * 280 * 3  # the CSV, its raw copy in the lake, Spark's shuffle files
        if need > free:
            raise SystemExit(f"{args.workdir}: {free / 1e9:.0f} GB free, {max(sizes):,} rows need ~{need / 1e9:.0f} GB")
        results = load_results()
        results["machine"] = machine()
        if not args.no_bundled:
            results["bundled"] = bench_bundled(args)
            save_results(results)
        for rows in sizes:
            results["runs"][str(rows)] = bench_size(rows, args)
            save_results(results)
    render(load_results(), RESULTS_MD, RESULTS_PNG, NOTES_MD)
    print(f"[bench] wrote {RESULTS_MD.relative_to(ROOT)} and {RESULTS_PNG.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
