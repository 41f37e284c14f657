"""The one-machine orchestrator: the state machine's stages, in its order.

database (embedded PostgreSQL) -> ingest -> [unchanged: stop] -> ETL -> analytics -> query
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from covidlake.local import embedded_postgres, serve_file
from covidlake.lock import run_lock
from covidlake.query import DuckDBBackend
from covidlake.raw.download import declared_size
from covidlake.raw.ingest import IngestResult, ingest, latest_manifest
from covidlake.raw.postgres import load_country_data
from covidlake.report import save_run_summary
from covidlake.schemas import REFINED_TABLES
from covidlake.settings import BUNDLED_DATA, Settings
from covidlake.storage import LakeStorage, LocalStorage, open_lake

log = logging.getLogger(__name__)
# The trusted daily facts: one Parquet file per this much input (128 MiB, an HDFS block).
TRUSTED_DAILY_FILE_BYTES = 128 * 1024**2


class Progress:
    """Told when each stage starts and ends (the CLI prints it); silent by default."""

    def started(self, stage: str) -> None:
        pass

    def finished(self, stage: str, seconds: float, detail: str, ok: bool) -> None:
        pass


@dataclass
class RunReport:
    lake: str
    ingest: IngestResult | None = None
    processed: bool = False
    stage_seconds: dict[str, float] = field(default_factory=dict)
    zone_rows: dict[str, dict[str, int]] = field(default_factory=dict)
    quality: dict = field(default_factory=dict)
    continent_stats: list[dict] = field(default_factory=list)
    # told when each stage starts and ends (the CLI prints it); not part of the report's data
    progress: Progress = field(default_factory=Progress, repr=False, compare=False)


@contextmanager
def timed(report: RunReport, stage: str) -> Iterator[None]:
    start = time.perf_counter()
    report.progress.started(stage)
    ok = False
    try:
        yield
        ok = True
    finally:
        report.stage_seconds[stage] = round(time.perf_counter() - start, 2)
        log.info("stage finished", extra={"stage": stage, "seconds": report.stage_seconds[stage]})
        report.progress.finished(stage, report.stage_seconds[stage], stage_detail(report, stage) if ok else "", ok)


def stage_detail(report: RunReport, stage: str) -> str:
    """What a finished stage did, in a few words (for the progress lines)."""
    seconds = report.stage_seconds.get(stage) or 0.0
    if stage == "ingest" and report.ingest is not None:
        covid = report.ingest.sources["covid_data"]
        unit, scale = ("MB", 1e6) if covid.bytes >= 100_000 else ("kB", 1e3)
        rate = f", {covid.bytes / scale / seconds:,.1f} {unit}/s" if seconds > 0 else ""
        changed = "" if report.ingest.changed else ", unchanged"
        return f"{covid.bytes / scale:,.1f} {unit}{rate}, {covid.rows:,} rows{changed}"
    if stage == "etl" and report.quality:
        rejected = sum(n for rules in report.quality.get("rejected", {}).values() for n in rules.values())
        return f"{report.quality['rows_out']['daily']:,} daily rows, {rejected:,} rejected"
    if stage == "query":
        return f"{len(report.continent_stats)} continents"
    return ""


def run_pipeline(
    settings: Settings,
    lake: str | None = None,
    source_url: str | None = None,
    db_url: str | None = None,
    country_csv: Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> RunReport:
    storage = open_lake(lake or settings.lake_uri)
    report = RunReport(lake=storage.uri, progress=progress or Progress())
    with run_lock(storage, settings.lock_wait_seconds):
        _run_stages(settings, storage, report, source_url, db_url, country_csv, force)
    return report


def _run_stages(settings, storage, report, source_url, db_url, country_csv, force) -> None:
    source_url = source_url or settings.source_url
    prestart = prestart_spark(settings, storage, source_url)
    with ExitStack() as stack:
        db_url = db_url or settings.db_url
        if db_url is None:
            with timed(report, "database"):
                db_url = stack.enter_context(embedded_postgres(settings.state_dir))
                load_country_data(db_url, country_csv or BUNDLED_DATA / "country_data.csv", settings)
        if source_url is None:
            source_url = stack.enter_context(serve_file(BUNDLED_DATA / "covid_data.csv"))
        with timed(report, "ingest"):
            report.ingest = ingest(storage, source_url, db_url, settings, force=force)
    if report.ingest.changed:
        run_spark_stages(settings, storage, report, prestart)
    with timed(report, "query"):
        report.continent_stats = DuckDBBackend(storage).fetch("continent_stats")
    report.zone_rows = zone_rows(storage)
    save_run_summary(storage, report)  # lake/report/run.json: `covidlake report` shows the last run


def prestart_spark(settings: Settings, storage: LakeStorage, source_url: str | None) -> threading.Thread | None:
    """Start the local Spark JVM while the database and ingest stages run (seconds that
    they mostly spend waiting); run_spark_stages then finds the session up. The JVM is
    sized for the input's expected size (the bundled file's, or the size a HEAD request
    to the source declares; unknown counts as large)."""
    if not isinstance(storage, LocalStorage):
        return None
    # requests adds a warning filter as it is imported; imported in the thread, the filter
    # could be undone by the database stage's warnings.catch_warnings (not thread-safe)
    # and urllib3's SOCKS DependencyWarning would reach stderr
    import requests  # noqa: F401

    def start() -> None:
        try:
            from covidlake.spark import local_session

            if source_url is None:
                expected = (BUNDLED_DATA / "covid_data.csv").stat().st_size
            else:
                expected = declared_size(source_url, settings) or 0
            local_session(settings, expected)
        except Exception:  # the start in run_spark_stages reports it
            log.debug("early Spark start failed", exc_info=True)

    thread = threading.Thread(target=start, name="spark-prestart", daemon=True)
    thread.start()
    return thread


def run_spark_stages(
    settings: Settings, storage: LakeStorage, report: RunReport, prestart: threading.Thread | None = None
) -> None:
    if not isinstance(storage, LocalStorage):
        raise RuntimeError(
            f"the Spark stages run locally on a folder lake; {storage.uri} is processed by EMR "
            "(deploy the stack, see README) — ingest into it with `covidlake ingest`"
        )
    from covidlake.refined.build import write_refined
    from covidlake.spark import local_session
    from covidlake.trusted.job import write_trusted

    result = report.ingest
    input_bytes = sum(s.bytes for s in result.sources.values())
    with timed(report, "spark_start"):
        if prestart is not None:
            prestart.join()
        spark = local_session(settings, input_bytes)  # the started session, partitions sized to the input
    with timed(report, "etl"):
        summary = write_trusted(
            spark,
            storage,
            result.inputs["covid_csv"],
            result.inputs["country_csv"],
            result.run_id,
            rows_in={name: s.rows for name, s in result.sources.items()},
            max_rejected_share=settings.max_rejected_share,
            daily_files=max(1, input_bytes // TRUSTED_DAILY_FILE_BYTES),
            columns={name: s.columns for name, s in result.sources.items()},
        )
        report.quality = summary.to_dict()
    with timed(report, "analytics"):
        write_refined(spark, storage, result.run_id)
    report.processed = True


def zone_rows(storage: LakeStorage) -> dict[str, dict[str, int]]:
    """Rows per table in each zone, from the manifest and the Parquet footers."""
    import pyarrow.parquet as pq

    rows: dict[str, dict[str, int]] = {"raw": {}, "trusted": {}, "refined": {}}
    manifest = latest_manifest(storage)
    if manifest:
        rows["raw"] = {name: src["rows"] for name, src in manifest["sources"].items()}
    if isinstance(storage, LocalStorage):
        for zone, tables in (("trusted", ("daily", "snapshot", "rejected")), ("refined", REFINED_TABLES)):
            for table in tables:
                files = sorted(storage.local_path(f"{zone}/{table}").glob("*.parquet"))
                if files:
                    rows[zone][table] = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    return rows
