"""Capture both sources into the raw zone, content-addressed, with a manifest per change.

raw/<source>/ingest_date=YYYY-MM-DD/<sha256>.csv holds the bytes exactly as captured;
raw/_manifests/<run_id>.json records which objects make up each new version. When
both sources hash to what the latest manifest already records, nothing is written and
the result says changed: false.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from covidlake.raw.capture import Capture
from covidlake.raw.download import download_csv
from covidlake.raw.postgres import extract_country_data
from covidlake.schemas import REFINED_VERSION_KEY
from covidlake.settings import Settings
from covidlake.storage import LakeStorage

MANIFEST_PREFIX = "raw/_manifests/"


@dataclass
class SourceObject:
    key: str
    sha256: str
    bytes: int
    rows: int
    origin: str
    final_url: str | None = None  # after redirects; None for the database
    # the header as Spark names the columns (raw.capture.spark_column_names): the ETL reads
    # the CSV with this schema instead of a Spark job for the header; None: Spark reads it
    columns: list[str] | None = None


@dataclass
class IngestResult:
    changed: bool
    run_id: str
    manifest_key: str
    ingested_at: str
    sources: dict[str, SourceObject]
    inputs: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(3)}"


def latest_manifest(storage: LakeStorage) -> dict | None:
    keys = [k for k in storage.list(MANIFEST_PREFIX) if k.endswith(".json")]
    return json.loads(storage.get_bytes(keys[-1])) if keys else None


def published_run_id(storage: LakeStorage) -> str | None:
    """The run whose data the refined zone holds (written last by analytics)."""
    if not storage.exists(REFINED_VERSION_KEY):
        return None
    return json.loads(storage.get_bytes(REFINED_VERSION_KEY)).get("run_id")


def _raw_key(source: str, capture: Capture, now: datetime, previous: dict | None) -> str:
    # Content seen before keeps its first key: identical bytes are stored once.
    if previous:
        for obj in previous["sources"].values():
            if obj["sha256"] == capture.sha256 and obj["key"].startswith(f"raw/{source}/"):
                return obj["key"]
    return f"raw/{source}/ingest_date={now:%Y-%m-%d}/{capture.sha256}.csv"


def ingest(
    storage: LakeStorage,
    source_url: str,
    db_url: str,
    settings: Settings,
    now: datetime | None = None,
    force: bool = False,
) -> IngestResult:
    """Capture both sources; write new raw objects and a manifest only if either changed."""
    now = now or datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="covidlake-ingest-") as tmp:
        captures = {
            "covid_data": download_csv(source_url, Path(tmp) / "covid_data.csv", settings),
            "country_data": extract_country_data(db_url, Path(tmp) / "country_data.csv", settings),
        }
        origins = {"covid_data": source_url, "country_data": "postgresql:country_data"}
        previous = latest_manifest(storage)
        unchanged = previous is not None and all(
            previous["sources"][name]["sha256"] == cap.sha256 for name, cap in captures.items()
        )
        if unchanged and not force:
            result = IngestResult(
                # Unchanged content still needs processing if the run that ingested it
                # failed before publishing: a rerun converges instead of skipping.
                changed=published_run_id(storage) != previous["run_id"],
                run_id=previous["run_id"],
                manifest_key=f"{MANIFEST_PREFIX}{previous['run_id']}.json",
                ingested_at=previous["ingested_at"],
                sources={k: SourceObject(**v) for k, v in previous["sources"].items()},
            )
        else:
            run_id = new_run_id(now)
            sources = {}
            for name, cap in captures.items():
                key = _raw_key(name, cap, now, previous)
                if not storage.exists(key):
                    storage.put_file(key, cap.path)
                sources[name] = SourceObject(
                    key, cap.sha256, cap.bytes, cap.rows, origins[name], cap.final_url, cap.columns
                )
            result = IngestResult(True, run_id, f"{MANIFEST_PREFIX}{run_id}.json", now.isoformat(), sources)
            manifest = {k: v for k, v in result.to_dict().items() if k not in ("changed", "inputs")}
            # The manifest goes last: a version exists only once all its objects do.
            storage.put_bytes(result.manifest_key, json.dumps(manifest, indent=2).encode())
    result.inputs = {
        "covid_csv": storage.url(result.sources["covid_data"].key),
        "country_csv": storage.url(result.sources["country_data"].key),
    }
    return result
