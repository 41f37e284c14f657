"""Query backends over the refined zone, behind one small interface.

* :class:`DuckDBBackend` reads the refined Parquet of a lake (one machine).
* :class:`AthenaBackend` runs SQL on Athena over the Glue tables (AWS).

Both return rows as dicts typed by the schema registry (numbers as numbers, NaN and
missing values as None), in the table's natural order: both run the same SELECT, with
the registry's ``order_by`` terms as its ORDER BY. The table name is only ever looked up
in :data:`covidlake.schemas.REFINED_TABLES`; SQL is built from the registry's
identifiers and terms, never from request text.

:class:`CachedResults` keeps results per table and refined-data version (the content of
``refined/_version.json``, written by analytics after it publishes), so repeated
requests do not query again until the pipeline publishes new data.

Nothing heavy is imported at module import time: the Lambda bundle has boto3 only, and
DuckDB / pyarrow are imported inside the DuckDB backend.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from covidlake.errors import QueryError, QueryTimeout, TableNotPublished
from covidlake.schemas import REFINED_VERSION_KEY, ColumnType, TableSchema, refined_table
from covidlake.storage import LakeStorage, LocalStorage

VERSION_KEY = REFINED_VERSION_KEY


# --- errors ----------------------------------------------------------------------------


# --- values ----------------------------------------------------------------------------


def to_json_value(value: Any, type_: ColumnType) -> Any:
    """A JSON-ready value of the declared type; NaN, infinities and missing become None."""
    if value is None:
        return None
    if type_ in (ColumnType.BIGINT, ColumnType.INT):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return int(value)
    if type_ is ColumnType.DOUBLE:
        value = float(value)
        return value if math.isfinite(value) else None
    if type_ is ColumnType.DATE:
        return value.isoformat() if isinstance(value, date) else str(value)
    return str(value)


def _athena_float(text: str) -> float | None:
    value = float(text)  # Athena writes NaN / Infinity / -Infinity as such
    return value if math.isfinite(value) else None


# Athena type names (as GetQueryResults' ColumnInfo reports them) -> parser of VarCharValue.
_ATHENA_PARSERS: dict[str, Callable[[str], Any]] = {
    "tinyint": int,
    "smallint": int,
    "integer": int,
    "int": int,
    "bigint": int,
    "double": _athena_float,
    "float": _athena_float,
    "real": _athena_float,
    "decimal": lambda t: float(Decimal(t)),
    "boolean": lambda t: t.lower() == "true",
    "varchar": str,
    "char": str,
    "string": str,
    "date": str,
    "timestamp": str,
}


def athena_value(text: str | None, athena_type: str) -> Any:
    """Parse one VarCharValue by the column type Athena reports; a missing value is None."""
    if text is None:
        return None
    parser = _ATHENA_PARSERS.get(athena_type.lower().split("(")[0].strip(), str)
    try:
        return parser(text)
    except (ValueError, ArithmeticError) as err:
        raise QueryError(f"Athena returned {text!r} for a column of type {athena_type}") from err


# --- the interface -----------------------------------------------------------------------


class QueryBackend(Protocol):
    def fetch(self, table: str, limit: int | None = None) -> list[dict[str, Any]]: ...

    def version(self) -> str | None:
        """The refined-data version (content of refined/_version.json); None if unknown."""


def read_version(storage: LakeStorage) -> str | None:
    """The published refined-data version, or None before the first publish."""
    try:
        raw = storage.get_bytes(VERSION_KEY)
    except FileNotFoundError:
        return None
    except Exception as err:  # S3: NoSuchKey / 404 come back as ClientError
        code = getattr(err, "response", {}).get("Error", {}).get("Code")
        if code in ("NoSuchKey", "404", "NotFound"):
            return None
        raise QueryError(f"cannot read {storage.url(VERSION_KEY)}: {err}") from err
    return raw.decode("utf-8", "replace").strip() or None


def _select_sql(schema: TableSchema, database: str | None, limit: int | None) -> str:
    """SELECT over the registry's columns, identifiers quoted, then the registry's ORDER BY
    terms (the table's natural order; SQL promises no order without them); nothing from
    the request but the limit, which is an int. Both backends run this statement."""

    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    table = f"{q(database)}.{q(schema.name)}" if database else q(schema.name)
    sql = f"SELECT {', '.join(q(c.name) for c in schema.columns)} FROM {table}"
    if schema.order_by:
        sql += f" ORDER BY {', '.join(schema.order_by)}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql


# --- DuckDB ------------------------------------------------------------------------------


class DuckDBBackend:
    """DuckDB over the refined Parquet of a lake (local folder, or S3 objects fetched)."""

    def __init__(self, storage: LakeStorage):
        self.storage = storage

    def version(self) -> str | None:
        return read_version(self.storage)

    def _relation(self, con, schema: TableSchema):
        prefix = f"refined/{schema.name}/"
        keys = [k for k in self.storage.list(prefix) if k.endswith(".parquet")]
        if not keys:
            raise TableNotPublished(f"refined table {schema.name} has no data at {self.storage.url(prefix)}")
        if isinstance(self.storage, LocalStorage):
            # Files in name order (part-00000, part-00001, ...), rows in file order:
            # DuckDB preserves insertion order, so the stored order is kept where the
            # registry declares no ORDER BY (numeric_summary, one row).
            files = [str(self.storage.local_path(k)) for k in keys]
            return con.read_parquet(files)
        import io

        import pyarrow as pa
        import pyarrow.parquet as pq

        arrow = pa.concat_tables(pq.read_table(io.BytesIO(self.storage.get_bytes(k))) for k in keys)
        return con.from_arrow(arrow)

    def sql(self, table: str, limit: int | None = None) -> str:
        return _select_sql(refined_table(table), None, limit)

    def fetch(self, table: str, limit: int | None = None) -> list[dict[str, Any]]:
        import duckdb

        schema = refined_table(table)
        with duckdb.connect() as con:
            rel = self._relation(con, schema)
            # The same statement as on Athena, over the Parquet relation named as the
            # table: both engines apply the registry's ORDER BY, so they agree by
            # construction rather than by the files' stored order.
            rows = rel.query(schema.name, self.sql(table, limit)).fetchall()
        return [{c.name: to_json_value(v, c.type) for c, v in zip(schema.columns, row, strict=True)} for row in rows]


# --- Athena ------------------------------------------------------------------------------


@dataclass
class AthenaConfig:
    workgroup: str = "primary"
    database: str = "covid_analytics"
    catalog: str = "AwsDataCatalog"
    output_location: str | None = None
    result_reuse_minutes: int = 60
    timeout_seconds: float = 20.0
    first_poll_seconds: float = 0.05
    max_poll_seconds: float = 1.0
    page_size: int = 1000


class AthenaBackend:
    """Athena over the Glue tables of the refined zone.

    One query: StartQueryExecution (result reuse on), GetQueryExecution polled with
    exponential backoff until SUCCEEDED or the deadline (then StopQueryExecution and
    :class:`QueryTimeout`), every GetQueryResults page read, values converted by the
    column types Athena reports and then checked against the registry's types.
    """

    def __init__(
        self,
        config: AthenaConfig,
        client=None,
        storage: LakeStorage | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        if client is None:
            import boto3

            client = boto3.client("athena")
        self.config = config
        self.client = client
        self.storage = storage
        self._sleep = sleep
        self._clock = clock

    def version(self) -> str | None:
        return read_version(self.storage) if self.storage is not None else None

    def sql(self, table: str, limit: int | None = None) -> str:
        return _select_sql(refined_table(table), self.config.database, limit)

    def fetch(self, table: str, limit: int | None = None) -> list[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        schema = refined_table(table)
        deadline = self._clock() + self.config.timeout_seconds
        query_id: str | None = None
        try:
            query_id = self._start(self.sql(table, limit))
            self._wait(query_id, deadline)
            return self._read(query_id, schema)
        except (ClientError, BotoCoreError) as err:
            raise QueryError(f"Athena request failed: {err}", query_id) from err

    def _start(self, sql: str) -> str:
        kwargs: dict[str, Any] = {
            "QueryString": sql,
            "QueryExecutionContext": {"Database": self.config.database, "Catalog": self.config.catalog},
            "WorkGroup": self.config.workgroup,
            "ResultReuseConfiguration": {
                "ResultReuseByAgeConfiguration": {
                    "Enabled": True,
                    "MaxAgeInMinutes": self.config.result_reuse_minutes,
                }
            },
        }
        if self.config.output_location:
            kwargs["ResultConfiguration"] = {"OutputLocation": self.config.output_location}
        return self.client.start_query_execution(**kwargs)["QueryExecutionId"]

    def _wait(self, query_id: str, deadline: float) -> None:
        delay = self.config.first_poll_seconds
        while True:
            status = self.client.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
            state = status["State"]
            if state == "SUCCEEDED":
                return
            if state in ("FAILED", "CANCELLED"):
                reason = status.get("StateChangeReason") or status.get("AthenaError", {}).get("ErrorMessage")
                raise QueryError(f"Athena query {state.lower()}: {reason or 'no reason given'}", query_id)
            remaining = deadline - self._clock()
            if remaining <= 0:
                self._stop(query_id)
                raise QueryTimeout(
                    f"Athena query still {state} after {self.config.timeout_seconds:g} s; cancelled", query_id
                )
            self._sleep(min(delay, remaining))
            delay = min(delay * 2, self.config.max_poll_seconds)

    def _stop(self, query_id: str) -> None:
        # Best effort: the timeout is what the caller must hear about.
        with contextlib.suppress(Exception):
            self.client.stop_query_execution(QueryExecutionId=query_id)

    def _read(self, query_id: str, schema: TableSchema) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        columns: list[tuple[str, str]] | None = None
        token: str | None = None
        first = True
        while True:
            kwargs: dict[str, Any] = {"QueryExecutionId": query_id, "MaxResults": self.config.page_size}
            if token:
                kwargs["NextToken"] = token
            page = self.client.get_query_results(**kwargs)
            result = page["ResultSet"]
            if columns is None:
                info = result.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                columns = [(c["Name"], c["Type"]) for c in info]
                if [n for n, _ in columns] != schema.column_names:
                    raise QueryError(
                        f"Athena table {schema.name} has columns {[n for n, _ in columns]}, "
                        f"the registry declares {schema.column_names}",
                        query_id,
                    )
            data = result.get("Rows", [])
            if first and data and [d.get("VarCharValue") for d in data[0]["Data"]] == schema.column_names:
                data = data[1:]  # a SELECT's first page starts with the header row
            first = False
            for row in data:
                cells = row["Data"]
                record = {}
                for col, (name, athena_type), cell in zip(schema.columns, columns, cells, strict=True):
                    record[name] = to_json_value(athena_value(cell.get("VarCharValue"), athena_type), col.type)
                rows.append(record)
            token = page.get("NextToken")
            if not token:
                return rows


# --- caching -----------------------------------------------------------------------------


@dataclass
class CachedTable:
    version: str
    rows: list[dict[str, Any]]
    bodies: dict[int | None, str]


class CachedResults:
    """Results per table and refined-data version, with their JSON bodies.

    The whole table is fetched once per version (refined tables are small) and a
    ``limit`` is applied in memory; the serialized body of each (table, limit) is kept
    too, so a cached request costs a dict lookup. Without a version (nothing published
    yet, or no ``_version.json``) nothing is cached.
    """

    def __init__(self, backend: QueryBackend, version_check_seconds: float = 0.0, clock=time.monotonic):
        self.backend = backend
        self.version_check_seconds = version_check_seconds
        self._clock = clock
        self._tables: dict[str, CachedTable] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._version: str | None = None
        self._version_read_at = -math.inf
        self.queries = 0  # how many times the backend was asked (for tests and metrics)

    def current_version(self) -> str | None:
        now = self._clock()
        if now - self._version_read_at >= self.version_check_seconds or self._version is None:
            self._version = self.backend.version()
            self._version_read_at = now
        return self._version

    def _lock(self, table: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(table, threading.Lock())

    def _table(self, table: str) -> tuple[CachedTable, bool]:
        version = self.current_version()
        cached = self._tables.get(table)
        if version is not None and cached is not None and cached.version == version:
            return cached, True
        with self._lock(table):  # one query per table and version, however many callers
            cached = self._tables.get(table)
            if version is not None and cached is not None and cached.version == version:
                return cached, True
            self.queries += 1
            rows = self.backend.fetch(table)
            fresh = CachedTable(version or "", rows, {})
            if version is not None:
                self._tables[table] = fresh
            return fresh, False

    def rows(self, table: str, limit: int | None = None) -> list[dict[str, Any]]:
        cached, _ = self._table(table)
        return cached.rows if limit is None else cached.rows[:limit]

    def body(self, table: str, limit: int | None = None) -> tuple[str, bool]:
        """The JSON array for (table, limit) and whether it came from the cache."""
        cached, hit = self._table(table)
        body = cached.bodies.get(limit)
        if body is None:
            rows = cached.rows if limit is None else cached.rows[:limit]
            body = json.dumps(rows, separators=(",", ":"), allow_nan=False)
            cached.bodies[limit] = body
        return body, hit
