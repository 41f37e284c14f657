"""The two sources: a CSV over HTTP(S) and the PostgreSQL table country_data.

Each is captured to a local temporary file first, hashed while it streams, and only
then handed to the raw zone, so a failed capture leaves nothing in the lake.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

from covidlake.errors import SchemaError, SourceError
from covidlake.schemas import COUNTRY_DATA, COVID_FACTS, TableSchema, canonical_columns
from covidlake.settings import Settings

# Spark's CSV reader stops at this many columns (option maxColumns) with a Java trace.
SPARK_MAX_COLUMNS = 20_480


@dataclass(frozen=True)
class Capture:
    path: Path
    sha256: str
    bytes: int
    rows: int
    final_url: str | None = None  # where the bytes came from after redirects (HTTP sources)


def check_header(header: list[str], schema: TableSchema, where: str) -> list[str]:
    """Normalised column names; raises SchemaError naming every missing required column."""
    names = canonical_columns(header)
    if not any(names):
        raise SchemaError(f"{where}: no header row (empty file?)")
    if len(names) == 1 and schema.required_names != names:
        raise SchemaError(f"{where}: not a comma-separated file with a header row (first line: {header[0][:80]!r})")
    missing = [c for c in schema.required_names if c not in names]
    if missing:
        raise SchemaError(
            f"{where}: missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (found: {', '.join(names[:12])}{', …' if len(names) > 12 else ''})"
        )
    return names


class CsvRowCounter:
    """Counts a CSV's records while its bytes stream past (hashing and writing them),
    so no second read of the file: one pass at the speed of bytes.split/count.

    A record ends at a newline outside quotes. RFC 4180 doubles a quote inside a quoted
    field, so the parity of the quotes seen so far says whether a newline is inside one;
    each chunk is split on quotes and only the outside parts are searched for newlines.
    Empty lines are not records (Spark skips them). No pyarrow needed: this runs in the
    Lambda layer as it does locally (benchmarks/NOTES.md)."""

    HEAD_BYTES = 1 << 20

    def __init__(self) -> None:
        self.inside = False
        self.newlines = 0
        self.empty_lines = 0
        self.offset = 0
        self.tail = b""  # the last outside bytes, for an empty line split over two chunks
        self.head = bytearray()
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.bad_utf8: tuple[int, str] | None = None  # (byte, reason) of the first invalid sequence
        self.open_commas = 0  # separators seen so far in the record still open at the chunk's end
        self.too_wide: tuple[int, int] | None = None  # (record number, columns) of the first too wide

    def update(self, chunk: bytes) -> None:
        if self.bad_utf8 is None:
            try:
                self.decoder.decode(chunk)
            except UnicodeDecodeError as err:
                self.bad_utf8 = (self.offset + err.start, err.reason)
        if len(self.head) < self.HEAD_BYTES:
            self.head += chunk[: self.HEAD_BYTES - len(self.head)]
        self.offset += len(chunk)
        parts = chunk.split(b'"')
        # a separator where a quoted part was cut out: `\n""\n` is a record, not an empty line
        outside = b"\0".join(parts[1 if self.inside else 0 :: 2])
        if len(parts) % 2 == 0:
            self.inside = not self.inside
        self._check_widths(outside)
        self.newlines += outside.count(b"\n")
        joined = self.tail + outside
        if b"\n\n" in joined or b"\n\r\n" in joined:  # rare: count them exactly
            self.empty_lines += _empty_lines(joined) - _empty_lines(self.tail)
        self.tail = b"\0" if self.inside else joined[-2:]

    def _check_widths(self, outside: bytes) -> None:
        """Note the first record wider than Spark's CSV reader takes. Only a line of more than
        SPARK_MAX_COLUMNS bytes can have that many separators, so most chunks cost one max()."""
        if self.too_wide is not None:
            return
        lines = outside.split(b"\n")
        if len(lines) == 1:
            self.open_commas += lines[0].count(b",")
            return
        self._note_width(0, self.open_commas + lines[0].count(b","))
        if max(map(len, lines[1:-1]), default=0) > SPARK_MAX_COLUMNS:
            for index, line in enumerate(lines[1:-1], start=1):
                self._note_width(index, line.count(b","))
        self.open_commas = lines[-1].count(b",")

    def _note_width(self, index_in_chunk: int, commas: int) -> None:
        if commas + 1 > SPARK_MAX_COLUMNS and self.too_wide is None:
            self.too_wide = (self.newlines + index_in_chunk + 1, commas + 1)

    def finish(self, schema: TableSchema, where: str) -> int:
        """Check the header against schema; the number of data rows."""
        if self.too_wide is None and not self.inside:
            self._note_width(0, self.open_commas)
        if self.too_wide is not None:
            number, columns = self.too_wide
            which = "the header" if number == 1 else f"record {number}"
            raise SchemaError(f"{where}: {which} has {columns} columns; Spark reads at most {SPARK_MAX_COLUMNS}")
        if self.bad_utf8 is None:
            try:
                self.decoder.decode(b"", final=True)
            except UnicodeDecodeError as err:
                self.bad_utf8 = (self.offset - len(self.decoder.getstate()[0]) + err.start, err.reason)
        if self.bad_utf8 is not None:
            raise SchemaError(f"{where}: not UTF-8 text (byte {self.bad_utf8[0]}: {self.bad_utf8[1]})")
        if self.inside:
            raise SchemaError(f"{where}: not a readable CSV (a quoted field is never closed)")
        header = next(csv.reader(io.StringIO(bytes(self.head).decode("utf-8", errors="replace"))), [])
        check_header(header, schema, where)
        last_line_open = self.offset > 0 and not self.tail.endswith(b"\n")
        records = self.newlines - self.empty_lines + (1 if last_line_open else 0)
        rows = max(records - 1, 0)
        if rows == 0:
            raise SchemaError(f"{where}: header only, no data rows")
        return rows


def _empty_lines(data: bytes) -> int:
    return data.replace(b"\r\n", b"\n").split(b"\n")[1:-1].count(b"")


def count_csv_rows(chunks: Iterable[bytes], schema: TableSchema, where: str) -> int:
    """CsvRowCounter over chunks: the header checked against schema, the number of data rows."""
    counter = CsvRowCounter()
    for chunk in chunks:
        counter.update(chunk)
    return counter.finish(schema, where)


def _http_session(settings: Settings):
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(
        total=settings.http_retries,
        connect=settings.http_retries,
        read=settings.http_retries,
        status=settings.http_retries,
        backoff_factor=settings.http_backoff,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        raise_on_status=True,
    )
    session = _redirect_checking_session(settings)
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _redirect_checking_session(settings: Settings):
    """A requests.Session that refuses https -> http redirects, and cross-host ones when
    settings say so, before following them (requests follows every redirect otherwise)."""
    import requests

    class RedirectCheckingSession(requests.Session):
        def get_redirect_target(self, resp):
            target = super().get_redirect_target(resp)
            if target:
                check_redirect(resp.url, urljoin(resp.url, target), settings)
            return target

    return RedirectCheckingSession()


def check_redirect(origin: str, target: str, settings: Settings) -> None:
    old, new = urlsplit(origin), urlsplit(target)
    if old.scheme == "https" and new.scheme != "https":
        raise SourceError(f"{origin}: refused a redirect from https to {new.scheme or 'a relative'} URL {target}")
    if settings.http_cross_host_redirects == "refuse" and old.hostname != new.hostname:
        raise SourceError(
            f"{origin}: refused a redirect to another host ({target}; COVIDLAKE_HTTP_CROSS_HOST_REDIRECTS=refuse)"
        )


@contextmanager
def download_deadline(resp, deadline: float, seconds: float, url: str) -> Iterator[None]:
    """Shut the response's socket at the deadline (urllib3's HTTPResponse.shutdown, meant for
    a read blocked in another thread), so a source dripping a byte a second ends here.
    deadline: a time.monotonic() value; seconds: the whole budget, for the message."""
    fired = threading.Event()

    def stop() -> None:
        fired.set()
        with suppress(Exception):  # already closed or released: nothing left to stop
            resp.raw.shutdown()

    timer = threading.Timer(max(deadline - time.monotonic(), 0.0), stop)
    timer.daemon = True
    timer.start()
    message = f"{url}: download not finished within {seconds:g} s (COVIDLAKE_HTTP_DOWNLOAD_DEADLINE_SECONDS)"
    try:
        yield
    except Exception:
        if fired.is_set():
            raise SourceError(message) from None
        raise
    finally:
        timer.cancel()
    if fired.is_set():  # the shutdown may read as a clean end of a chunked body
        raise SourceError(message)


def download_csv(url: str, dest: Path, settings: Settings) -> Capture:
    """Stream url to dest with timeouts, retries with backoff on connection errors and
    5xx, a size limit and a Content-Length check. Raises SourceError; dest is removed."""
    import requests

    sha = hashlib.sha256()
    counter = CsvRowCounter()
    received = 0
    deadline = time.monotonic() + settings.http_download_deadline_seconds
    try:
        with (
            _http_session(settings) as session,
            session.get(url, stream=True, timeout=(settings.http_connect_timeout, settings.http_read_timeout)) as resp,
            download_deadline(resp, deadline, settings.http_download_deadline_seconds, url),
        ):
            if resp.status_code >= 400:
                raise SourceError(f"{url}: HTTP {resp.status_code} {resp.reason}")
            declared = resp.headers.get("Content-Length")
            if declared is not None and int(declared) > settings.max_download_bytes:
                raise SourceError(
                    f"{url}: Content-Length {declared} exceeds the limit of {settings.max_download_bytes} bytes"
                )
            with dest.open("wb") as out:
                # decode_content: a gzip Content-Encoding is undone here; raw bytes land as CSV.
                for chunk in resp.raw.stream(1 << 20, decode_content=True):
                    received += len(chunk)
                    if received > settings.max_download_bytes:
                        raise SourceError(f"{url}: body exceeds the limit of {settings.max_download_bytes} bytes")
                    sha.update(chunk)
                    counter.update(chunk)
                    out.write(chunk)
            encoded = resp.headers.get("Content-Encoding", "identity") not in ("identity", "")
            if declared is not None and not encoded and received != int(declared):
                raise SourceError(f"{url}: received {received} bytes, Content-Length said {declared}")
    except SourceError:
        dest.unlink(missing_ok=True)
        raise
    except requests.exceptions.RetryError as err:
        dest.unlink(missing_ok=True)
        raise SourceError(f"{url}: still failing after {settings.http_retries} retries ({_reason(err)})") from None
    except requests.exceptions.RequestException as err:
        dest.unlink(missing_ok=True)
        raise SourceError(f"{url}: download failed after {settings.http_retries} retries ({_reason(err)})") from None
    except Exception as err:  # urllib3 errors raised mid-body (short read, reset)
        dest.unlink(missing_ok=True)
        raise SourceError(f"{url}: download failed mid-body ({type(err).__name__}: {err})") from None
    rows = counter.finish(COVID_FACTS, f"COVID CSV from {url}")
    return Capture(dest, sha.hexdigest(), received, rows, final_url=resp.url)


def _reason(err: Exception) -> str:
    inner = err.args[0] if err.args else err
    reason = getattr(inner, "reason", None)
    return str(reason or inner)


def with_sslmode(db_url: str, mode: str, **extra: str) -> str:
    """db_url with sslmode=mode (and extra parameters) unless it already names an sslmode."""
    parts = urlsplit(db_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(k == "sslmode" for k, _ in query):
        return db_url
    return urlunsplit(parts._replace(query=urlencode([*query, ("sslmode", mode), *extra.items()])))


def _missing_ca_bundle(db_url: str) -> str | None:
    params = parse_qs(urlsplit(db_url).query)
    if params.get("sslmode", [""])[-1] not in ("verify-ca", "verify-full"):
        return None
    bundle = params.get("sslrootcert", [""])[-1]
    return bundle if bundle and not Path(bundle).is_file() else None


def connect(db_url: str, settings: Settings):
    """Connect over TLS: sslmode=require unless the URL names a mode (the embedded local
    server's URL says disable; URLs built from the AWS secret say verify-full)."""
    import psycopg2

    db_url = with_sslmode(db_url, "require")
    bundle = _missing_ca_bundle(db_url)
    if bundle:
        raise SourceError(
            f"cannot verify PostgreSQL at {redact(db_url)}: CA bundle {bundle} not found "
            "(the layer ships it, see layer/Makefile; or set COVIDLAKE_DB_CA_BUNDLE)"
        )
    try:
        return psycopg2.connect(db_url, connect_timeout=settings.db_connect_timeout)
    except psycopg2.OperationalError as err:
        hint = " (a server without TLS: add sslmode=disable to the URL)" if "SSL" in str(err) else ""
        raise SourceError(f"cannot connect to PostgreSQL at {redact(db_url)}: {str(err).strip()}{hint}") from None


def redact(db_url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    parts = urlsplit(db_url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return db_url


LOAD_COUNTRY_DATA_HINT = "load it with `covidlake load-country-data --db-url URL` (docs/deploy.md)"


def extract_country_data(db_url: str, dest: Path, settings: Settings) -> Capture:
    """COPY country_data TO STDOUT as CSV with a header, ordered by location so the
    same table content always gives the same bytes (and the same SHA-256)."""
    import psycopg2
    import psycopg2.errors

    columns = ", ".join(COUNTRY_DATA.column_names)
    query = f"COPY (SELECT {columns} FROM country_data ORDER BY location) TO STDOUT WITH CSV HEADER"
    conn = connect(db_url, settings)
    try:
        with conn, conn.cursor() as cur, dest.open("wb") as out:
            cur.copy_expert(query, out)
    except psycopg2.errors.UndefinedTable:
        dest.unlink(missing_ok=True)
        raise SourceError(f"table country_data does not exist in {redact(db_url)}: {LOAD_COUNTRY_DATA_HINT}") from None
    except psycopg2.Error as err:
        dest.unlink(missing_ok=True)
        raise SourceError(f"extracting country_data from {redact(db_url)} failed: {str(err).strip()}") from None
    finally:
        conn.close()
    data = dest.read_bytes()
    if data.count(b"\n") <= 1:  # the header alone
        raise SourceError(f"table country_data in {redact(db_url)} is empty: {LOAD_COUNTRY_DATA_HINT}")
    rows = count_csv_rows([data], COUNTRY_DATA, "country_data extract")
    return Capture(dest, hashlib.sha256(data).hexdigest(), len(data), rows)


def resolve_db_url(settings: Settings) -> str:
    """COVIDLAKE_DB_URL, or one built from a Secrets Manager secret (AWS)."""
    if settings.db_url:
        return settings.db_url
    if not settings.db_secret_arn:
        raise SourceError("no database configured: set COVIDLAKE_DB_URL or COVIDLAKE_DB_SECRET_ARN")
    from aws_lambda_powertools.utilities import parameters

    secret = parameters.get_secret(settings.db_secret_arn, max_age=300)
    creds = json.loads(secret) if isinstance(secret, str) else secret
    host = settings.db_host or creds.get("host")
    if not host:
        raise SourceError("database host unknown: set COVIDLAKE_DB_HOST or put `host` in the secret")
    port = creds.get("port", settings.db_port)
    name = settings.db_name or creds.get("dbname")
    user, password = quote(creds["username"], safe=""), quote(creds["password"], safe="")
    # verify-full: TLS, the RDS CA, and the host name checked against the certificate
    return with_sslmode(
        f"postgresql://{user}:{password}@{host}:{port}/{name}", "verify-full", sslrootcert=settings.db_ca_bundle
    )


def read_country_csv(path: Path) -> tuple[list[str], list[list[object]]]:
    """Parse and type-check a country_data CSV; errors name the file, line and column."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise SchemaError(f"{where}: not UTF-8 text (byte {err.start})") from None
    reader = csv.reader(io.StringIO(text))
    names = check_header(next(reader, []), COUNTRY_DATA, where)
    known = [i for i, n in enumerate(names) if n in COUNTRY_DATA.column_names]
    columns = [names[i] for i in known]
    rows: list[list[object]] = []
    seen: set[str] = set()
    for line_no, record in enumerate(reader, start=2):
        if not any(field.strip() for field in record):
            continue
        row: list[object] = []
        for i in known:
            name, raw = names[i], (record[i].strip() if i < len(record) else "")
            col = COUNTRY_DATA.column(name)
            if raw == "":
                if name == "location":
                    raise SchemaError(f"{where} line {line_no}: empty location")
                row.append(None)
            elif col.type.value == "double":
                try:
                    row.append(float(raw))
                except ValueError:
                    raise SchemaError(f"{where} line {line_no} column {name}: {raw!r} is not a number") from None
            else:
                row.append(raw)
        location = row[columns.index("location")]
        if location in seen:
            raise SchemaError(f"{where} line {line_no}: duplicate location {location!r}")
        seen.add(location)
        rows.append(row)
    return columns, rows


def load_country_data(db_url: str, csv_path: Path, settings: Settings) -> int:
    """Create table country_data if needed and make its content exactly the CSV's, in
    one transaction (a rerun converges; a bad file changes nothing)."""
    columns, rows = read_country_csv(csv_path)
    ddl = ",\n".join(
        f"{c.name} {c.type.postgres}{' PRIMARY KEY' if c.name == 'location' else ''}" for c in COUNTRY_DATA.columns
    )
    conn = connect(db_url, settings)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(f"CREATE TABLE IF NOT EXISTS country_data (\n{ddl}\n)")
            cur.execute("LOCK TABLE country_data IN EXCLUSIVE MODE")
            cur.execute("DELETE FROM country_data")
            buf = io.StringIO()
            csv.writer(buf).writerows([["" if v is None else v for v in row] for row in rows])
            buf.seek(0)
            cur.copy_expert(f"COPY country_data ({', '.join(columns)}) FROM STDIN WITH CSV", buf)
    finally:
        conn.close()
    return len(rows)
