"""Bad input and faults from outside: each ends with a clear error, nothing half-written
in any zone, the previous refined tables still served, and a rerun after the fault
reaching the same refined output as a clean run."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from covidlake.errors import QualityError, RunInProgress, SchemaError, SourceError
from covidlake.lock import run_lock
from covidlake.query import DuckDBBackend
from covidlake.raw.postgres import extract_country_data
from covidlake.refined import tables as analytics
from covidlake.runner import run_pipeline
from covidlake.schemas import REFINED_TABLES
from covidlake.settings import BUNDLED_DATA
from covidlake.storage import LocalStorage
from covidlake.trusted import job as trusted_job

from .httpfixtures import http_server, send

CSV = (BUNDLED_DATA / "covid_data.csv").read_bytes()
LINES = CSV.decode().splitlines()
HEADER = LINES[0].split(",")


def with_column(lines: list[str], name: str, fn) -> list[str]:
    """Lines with one column's values rewritten by fn(row_index, value)."""
    i = lines[0].split(",").index(name)
    out = [lines[0]]
    for n, line in enumerate(lines[1:]):
        cells = line.split(",")
        cells[i] = fn(n, cells[i])
        out.append(",".join(cells))
    return out


# A new version of the data: every total doubled (changes the refined tables).
V2 = "\n".join(with_column(LINES, "total_cases", lambda n, v: str(float(v) * 2) if v else v)).encode() + b"\n"


def refined_snapshot(lake: Path) -> dict[str, list[dict]]:
    backend = DuckDBBackend(LocalStorage(lake))
    return {name: backend.fetch(name) for name in REFINED_TABLES}


def zone_files(lake: Path) -> dict[str, bytes]:
    """Every file of every zone, staging included, except the run lock's."""
    return {
        str(p.relative_to(lake)): p.read_bytes()
        for p in lake.rglob("*")
        if p.is_file() and ".covidlake.lock" not in p.name
    }


@pytest.fixture(scope="module")
def clean_v2(tmp_path_factory, settings, spark) -> dict[str, list[dict]]:
    """The refined tables of a clean run on V2, in a fresh lake."""
    lake = tmp_path_factory.mktemp("clean-v2")
    with http_server(lambda h, n: send(h, 200, V2)) as (url, _):
        run_pipeline(settings, lake=str(lake), source_url=f"{url}/covid.csv")
    return refined_snapshot(lake)


def run_with(settings, lake: Path, body: bytes, **kwargs):
    with http_server(lambda h, n: send(h, 200, body)) as (url, _):
        return run_pipeline(settings, lake=str(lake), source_url=f"{url}/covid.csv", **kwargs)


# --- faults in the Spark stages ------------------------------------------------------


def test_analytics_failing_half_way_publishes_nothing_and_rerun_converges(lake_copy, settings, clean_v2, monkeypatch):
    before_files = zone_files(lake_copy / "refined")
    before = refined_snapshot(lake_copy)

    def exploding(clustered):  # the last table: six others are staged by then
        return analytics.conform(clustered.withColumn("countries", F.raise_error("disk on fire")), "cluster_summary")

    monkeypatch.setattr(analytics, "cluster_summary", exploding)
    with pytest.raises(Exception, match="disk on fire"):
        run_with(settings, lake_copy, V2)
    assert zone_files(lake_copy / "refined") == before_files
    assert refined_snapshot(lake_copy) == before  # the old version is still served
    assert not list((lake_copy / "_staging").rglob("*.parquet"))

    monkeypatch.undo()
    report = run_with(settings, lake_copy, V2)  # same bytes again: must not be skipped
    assert report.ingest.changed and report.processed
    assert refined_snapshot(lake_copy) == clean_v2


def test_etl_failing_half_way_leaves_trusted_and_refined_untouched(lake_copy, settings, clean_v2, monkeypatch):
    before = zone_files(lake_copy / "trusted") | zone_files(lake_copy / "refined")
    monkeypatch.setattr(
        trusted_job,
        "latest_snapshot",
        lambda daily: daily.withColumn("location", F.raise_error("executor lost").cast("string")),
    )
    with pytest.raises(Exception, match="executor lost"):
        run_with(settings, lake_copy, V2)
    assert zone_files(lake_copy / "trusted") | zone_files(lake_copy / "refined") == before
    monkeypatch.undo()
    run_with(settings, lake_copy, V2)
    assert refined_snapshot(lake_copy) == clean_v2


def test_too_many_rejected_rows_fails_naming_the_rule_and_publishes_nothing(lake_copy, settings, clean_v2):
    bad = "\n".join(with_column(LINES, "total_deaths", lambda n, v: "-1" if n % 10 == 0 else v)).encode()
    before = zone_files(lake_copy / "trusted") | zone_files(lake_copy / "refined")
    with pytest.raises(QualityError, match=r"covid_data: 10\.1% of 247 rows rejected.*negative_count.*Afghanistan"):
        run_with(settings, lake_copy, bad)
    assert zone_files(lake_copy / "trusted") | zone_files(lake_copy / "refined") == before
    run_with(settings, lake_copy, V2)
    assert refined_snapshot(lake_copy) == clean_v2


def test_rejections_under_the_threshold_are_kept_and_counted(lake_copy, settings):
    bad = "\n".join(with_column(LINES, "total_deaths", lambda n, v: "-1" if n in (3, 7) else v)).encode()
    report = run_with(settings, lake_copy, bad)
    assert report.quality["rejected"] == {"covid_data": {"negative_count": 2}}
    assert report.zone_rows["trusted"]["rejected"] == 2
    import json

    quality = json.loads((lake_copy / "trusted" / "_quality.json").read_text())  # the manifest stays ingest's
    assert quality["rejected"] == {"covid_data": {"negative_count": 2}}


# --- schema drift --------------------------------------------------------------------


def reordered(lines: list[str]) -> bytes:
    """Columns reversed, an extra column, headers in other case and with spaces."""
    rows = [list(reversed(line.split(","))) + ["x"] for line in lines]
    rows[0] = [f" {h.upper().replace('_', ' ')} " if h != "x" else "Extra Column" for h in rows[0]]
    return "\n".join(",".join(r) for r in rows).encode()


def test_reordered_renamed_and_extra_columns_give_the_same_tables(lake_copy, settings, clean_v2):
    v2_lines = V2.decode().splitlines()
    report = run_with(settings, lake_copy, reordered(v2_lines))
    assert report.processed
    assert refined_snapshot(lake_copy) == clean_v2


def test_missing_optional_column_is_filled_with_nulls_and_warned(lake_copy, settings, caplog):
    i = HEADER.index("stringency_index")
    body = "\n".join(",".join(c for j, c in enumerate(line.split(",")) if j != i) for line in LINES).encode()
    report = run_with(settings, lake_copy, body)
    assert report.quality["missing_columns"] == {"covid_data": ["stringency_index"]}
    assert "optional columns missing, filled with nulls: stringency_index" in caplog.text
    import pyarrow.parquet as pq

    assert set(pq.read_table(lake_copy / "trusted" / "daily").column("stringency_index").to_pylist()) == {None}


@pytest.mark.parametrize(
    "body, message",
    [
        (CSV.replace(b"location,", b"place,", 1), "missing required column location"),
        (b"", "no header row"),
        (CSV.splitlines()[0] + b"\n", "header only, no data rows"),
        (b"<!DOCTYPE html>\n<html><body>Rate limited</body></html>\n", "not a comma-separated file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00", "not"),
        (CSV.decode().replace("Afghanistan", "Afghanistän").encode("latin-1"), "not UTF-8"),
    ],
    ids=["missing-required", "empty", "header-only", "html", "binary", "not-utf8"],
)
def test_bad_files_fail_clearly_and_write_nothing(lake_copy, settings, body, message):
    before = zone_files(lake_copy)
    with pytest.raises((SchemaError, SourceError), match=message):
        run_with(settings, lake_copy, body)
    assert zone_files(lake_copy) == before


# --- faults from outside -------------------------------------------------------------


def test_source_that_hangs_times_out_after_retries(lake_copy, settings):
    fast = settings.model_copy(update={"http_read_timeout": 0.3, "http_retries": 1})
    before = zone_files(lake_copy)

    def hang(handler, attempt):
        time.sleep(2)
        send(handler, 200, CSV)

    with http_server(hang) as (url, hits), pytest.raises(SourceError, match="timed out"):
        run_pipeline(fast, lake=str(lake_copy), source_url=f"{url}/covid.csv")
    assert len(hits) == 2 and zone_files(lake_copy) == before


def test_source_closing_mid_body_fails_and_writes_nothing(lake_copy, settings):
    before = zone_files(lake_copy)

    def cut(handler, attempt):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(CSV)))
        handler.end_headers()
        handler.wfile.write(CSV[: len(CSV) // 2])
        handler.wfile.flush()
        handler.connection.shutdown(socket.SHUT_RDWR)

    with http_server(cut) as (url, _), pytest.raises(SourceError, match="mid-body|Content-Length|failed"):
        run_pipeline(settings, lake=str(lake_copy), source_url=f"{url}/covid.csv")
    assert zone_files(lake_copy) == before


def test_database_dying_mid_extract(settings, tmp_path):
    """A real PostgreSQL server ends the session while the extract is running."""
    import psycopg2

    from covidlake.local import embedded_postgres
    from covidlake.raw.postgres import load_country_data

    state = Path(settings.state_dir) / "dying-db"
    with embedded_postgres(state) as url:
        load_country_data(url, BUNDLED_DATA / "country_data.csv", settings)
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            # Slow the table down to about 3 s so the server can die mid-stream.
            cur.execute("ALTER TABLE country_data RENAME TO country_data_real")
            cur.execute(
                "CREATE VIEW country_data AS SELECT r.* FROM country_data_real r "
                "WHERE (SELECT true FROM pg_sleep(0.012 + 0 * length(r.location)))"
            )
        conn.close()

        def kill_soon():
            time.sleep(1.0)
            with psycopg2.connect(url) as admin, admin.cursor() as cur:
                admin.autocommit = True
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE 'COPY%' AND pid <> pg_backend_pid()"
                )

        killer = threading.Thread(target=kill_soon)
        killer.start()
        with pytest.raises(SourceError, match="extracting country_data from .* failed"):
            extract_country_data(url, tmp_path / "c.csv", settings)
        killer.join()
    assert not (tmp_path / "c.csv").exists()


def test_database_refusing_connections_fails_the_run_and_writes_nothing(lake_copy, settings):
    before = zone_files(lake_copy)
    with pytest.raises(SourceError, match="cannot connect to PostgreSQL at postgresql://u:\\*\\*\\*@127.0.0.1:9"):
        run_with(settings, lake_copy, V2, db_url="postgresql://u:pw@127.0.0.1:9/covid_data")
    assert zone_files(lake_copy) == before


# --- one run at a time ---------------------------------------------------------------


def test_a_second_run_on_the_same_lake_gives_up_with_a_clear_message(lake_copy, settings):
    storage = LocalStorage(lake_copy)
    with run_lock(storage), pytest.raises(RunInProgress, match=r"is in use by the run started at .* by pid \d+"):
        run_pipeline(settings, lake=str(lake_copy))


def test_a_waiting_run_proceeds_once_the_lake_is_free(lake_copy, settings):
    storage = LocalStorage(lake_copy)
    holder_done = threading.Event()

    def hold():
        with run_lock(storage):
            time.sleep(1.0)
        holder_done.set()

    t = threading.Thread(target=hold)
    t.start()
    time.sleep(0.2)
    report = run_pipeline(settings.model_copy(update={"lock_wait_seconds": 30}), lake=str(lake_copy))
    t.join()
    assert holder_done.is_set() and report.ingest is not None


def test_s3_lock_is_exclusive_and_expires(monkeypatch):
    import boto3
    from moto import mock_aws

    from covidlake.storage import S3Storage

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="lock-test")
        storage = S3Storage("lock-test", "", client=s3)
        with (
            run_lock(storage),
            pytest.raises(RunInProgress, match=r"in use by .*_locks/pipeline.json"),
            run_lock(storage),
        ):
            pass
        # A holder that crashed: its lock has expired.
        with run_lock(storage, ttl_seconds=-1), run_lock(storage):
            assert storage.exists("_locks/pipeline.json")
        assert not storage.exists("_locks/pipeline.json")
