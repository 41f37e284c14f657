"""The summary of a pipeline run: saved by the runner at ``<lake>/report/run.json`` after
every run, read back by the report (which may be rebuilt later, without the run)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from covidlake.schemas import TRUSTED_QUALITY_KEY as QUALITY_KEY
from covidlake.storage import LakeStorage

REPORT_PREFIX = "report"
RUN_KEY = f"{REPORT_PREFIX}/run.json"


def run_summary(report: Any) -> dict:
    """A JSON-ready summary of a :class:`covidlake.runner.RunReport`."""
    ingest = report.ingest
    ingest_dict = ingest.to_dict() if ingest is not None else {}
    return {
        "lake": report.lake,
        "run_id": ingest_dict.get("run_id"),
        "changed": ingest_dict.get("changed"),
        "processed": report.processed,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "stage_seconds": dict(report.stage_seconds),
        "zone_rows": {zone: dict(tables) for zone, tables in report.zone_rows.items()},
        "quality": dict(report.quality or {}),
    }


def save_run_summary(storage: LakeStorage, report: Any) -> dict:
    """Persist the run's summary at ``report/run.json`` in the lake; returns it."""
    summary = run_summary(report)
    storage.put_bytes(RUN_KEY, json.dumps(summary, indent=2).encode())
    return summary


def _read_json(storage: LakeStorage, key: str) -> dict | None:
    try:
        if not storage.exists(key):
            return None
        return json.loads(storage.get_bytes(key))
    except (FileNotFoundError, ValueError):
        return None


def load_run(storage: LakeStorage, report: Any = None) -> dict:
    """The run summary: of ``report`` if given, else the last one saved in the lake.

    Rejected rows per rule come from the run itself when it processed data, else from
    trusted/_quality.json (the ETL run whose data the trusted zone holds)."""
    run = run_summary(report) if report is not None else (_read_json(storage, RUN_KEY) or {})
    quality = run.get("quality") or {}
    if "rejected" not in quality:
        stored = _read_json(storage, QUALITY_KEY) or {}
        quality = {k: stored[k] for k in ("rows_in", "rows_out", "rejected") if k in stored}
        if stored.get("run_id"):
            quality["run_id"] = stored["run_id"]
    run["quality"] = quality
    run.setdefault("stage_seconds", {})
    run.setdefault("zone_rows", {})
    return run
