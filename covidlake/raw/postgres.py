"""The country attributes source: table country_data in PostgreSQL. Connecting (TLS,
credentials from Secrets Manager on AWS), extracting it as CSV into the raw zone, and
loading it from a CSV (the local database and `covidlake load-country-data`)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlsplit, urlunsplit

from covidlake.errors import SchemaError, SourceError
from covidlake.raw.capture import Capture, check_header, count_csv_rows
from covidlake.schemas import COUNTRY_DATA
from covidlake.settings import Settings


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
    counted = count_csv_rows([data], COUNTRY_DATA, "country_data extract")
    return Capture(dest, hashlib.sha256(data).hexdigest(), len(data), counted.rows, columns=counted.columns)


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
