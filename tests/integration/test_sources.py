"""Both sources for real: a local HTTP server and the embedded PostgreSQL."""

from __future__ import annotations

import gzip
import hashlib

import pytest

from covidlake.errors import SchemaError, SourceError
from covidlake.local import serve_file
from covidlake.raw.download import declared_size, download_csv
from covidlake.raw.postgres import extract_country_data, load_country_data
from covidlake.settings import BUNDLED_DATA

from .httpfixtures import http_server, send

CSV = (BUNDLED_DATA / "covid_data.csv").read_bytes()


def test_download_streams_hashes_and_counts_rows(settings, tmp_path):
    with http_server(lambda h, n: send(h, 200, CSV)) as (url, hits):
        capture = download_csv(f"{url}/covid.csv", tmp_path / "c.csv", settings)
    assert capture.sha256 == hashlib.sha256(CSV).hexdigest()
    assert (capture.bytes, capture.rows) == (len(CSV), 247)
    assert (tmp_path / "c.csv").read_bytes() == CSV


def test_declared_size_is_what_a_head_request_says_or_none(settings, tmp_path):
    (tmp_path / "covid.csv").write_bytes(CSV)
    with serve_file(tmp_path / "covid.csv") as url:
        assert declared_size(url, settings) == len(CSV)
    with http_server(lambda h, n: send(h, 200, CSV)) as (url, hits):  # answers GET only: 501
        assert declared_size(f"{url}/covid.csv", settings) is None
    assert hits == []  # the hint never counts as a download attempt
    assert declared_size("s3://bucket/covid.csv", settings) is None
    assert declared_size("http://127.0.0.1:9/covid.csv", settings) is None  # nothing listens


def test_download_retries_5xx_then_succeeds(settings, tmp_path):
    def flaky(h, attempt):
        send(h, 503 if attempt < 3 else 200, b"busy" if attempt < 3 else CSV)

    with http_server(flaky) as (url, hits):
        capture = download_csv(f"{url}/covid.csv", tmp_path / "c.csv", settings)
    assert len(hits) == 3 and capture.rows == 247


def test_download_gives_up_on_5xx_forever_and_leaves_nothing(settings, tmp_path):
    with (
        http_server(lambda h, n: send(h, 500, b"down")) as (url, hits),
        pytest.raises(SourceError, match=r"covid.csv: still failing after 2 retries .*500"),
    ):
        download_csv(f"{url}/covid.csv", tmp_path / "c.csv", settings)
    assert len(hits) == 1 + settings.http_retries
    assert not (tmp_path / "c.csv").exists()


def test_download_unreachable_url(settings, tmp_path):
    with http_server(lambda h, n: None) as (url, _):
        dead = url  # the port is closed once the server stops
    with pytest.raises(SourceError, match=r"127\.0\.0\.1.*failed after 2 retries"):
        download_csv(f"{dead}/covid.csv", tmp_path / "c.csv", settings)
    assert not (tmp_path / "c.csv").exists()


def test_download_404_is_not_retried(settings, tmp_path):
    with http_server(lambda h, n: send(h, 404, b"no")) as (url, hits), pytest.raises(SourceError, match="HTTP 404"):
        download_csv(f"{url}/covid.csv", tmp_path / "c.csv", settings)
    assert len(hits) == 1


def test_download_short_body_fails(settings, tmp_path):
    def short(h, n):
        send(h, 200, CSV[:1000], {"Content-Length": str(len(CSV))})
        h.close_connection = True

    with http_server(short) as (url, _), pytest.raises(SourceError, match="covid.csv"):
        download_csv(f"{url}/covid.csv", tmp_path / "c.csv", settings)
    assert not (tmp_path / "c.csv").exists()


def test_download_size_limit(settings, tmp_path):
    small = settings.model_copy(update={"max_download_bytes": 1000})
    with (
        http_server(lambda h, n: send(h, 200, CSV)) as (url, _),
        pytest.raises(SourceError, match="exceeds the limit of 1000 bytes"),
    ):
        download_csv(f"{url}/covid.csv", tmp_path / "c.csv", small)
    assert not (tmp_path / "c.csv").exists()


def test_download_gzip_encoding_lands_decoded(settings, tmp_path):
    body = gzip.compress(CSV)
    with http_server(lambda h, n: send(h, 200, body, {"Content-Encoding": "gzip"})) as (url, _):
        capture = download_csv(f"{url}/covid.csv", tmp_path / "c.csv", settings)
    assert (tmp_path / "c.csv").read_bytes() == CSV and capture.rows == 247


def test_download_missing_required_column_is_named(settings, tmp_path):
    body = CSV.replace(b"total_cases,", b"cases_total,", 1)
    with (
        http_server(lambda h, n: send(h, 200, body)) as (url, _),
        pytest.raises(SchemaError, match="missing required column total_cases"),
    ):
        download_csv(f"{url}/covid.csv", tmp_path / "c.csv", settings)


def test_extract_country_data_is_deterministic(pg_url, settings, tmp_path):
    first = extract_country_data(pg_url, tmp_path / "a.csv", settings)
    second = extract_country_data(pg_url, tmp_path / "b.csv", settings)
    assert first.rows == 247 and first.sha256 == second.sha256
    header = (tmp_path / "a.csv").read_text().splitlines()[0]
    assert header.startswith("location,continent,population,")


def test_unreachable_database_has_a_clear_message(settings, tmp_path):
    url = "postgresql://covid:secret@127.0.0.1:1/covid_data"
    with pytest.raises(SourceError, match=r"cannot connect to PostgreSQL at postgresql://covid:\*\*\*@127.0.0.1:1"):
        extract_country_data(url, tmp_path / "c.csv", settings)
    assert not (tmp_path / "c.csv").exists()


def test_load_country_data_is_idempotent_and_atomic(pg_url, settings, tmp_path):
    assert load_country_data(pg_url, BUNDLED_DATA / "country_data.csv", settings) == 247
    bad = tmp_path / "bad.csv"
    text = (BUNDLED_DATA / "country_data.csv").read_text().splitlines()
    text[5] = text[5].replace(",", ",abc,", 1).rsplit(",", 1)[0]
    bad.write_text("\n".join(text))
    with pytest.raises(SchemaError, match=r"bad.csv line 6 column continent|bad.csv line 6 column population"):
        load_country_data(pg_url, bad, settings)
    # the failed load changed nothing
    assert extract_country_data(pg_url, tmp_path / "c.csv", settings).rows == 247


def test_load_country_data_names_missing_column(pg_url, settings, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("location,continent,population\nA,Asia,1\n")
    with pytest.raises(SchemaError, match="missing required columns population_density, gdp_per_capita"):
        load_country_data(pg_url, bad, settings)
