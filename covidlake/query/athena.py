"""Athena over the Glue tables of the refined zone: start a query, poll it with backoff
against a deadline, read every result page, type the values.

boto3 is imported when the first query runs (a client can also be passed in).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from covidlake.defaults import (
    DEFAULT_ATHENA_CATALOG,
    DEFAULT_ATHENA_RESULT_REUSE_MINUTES,
    DEFAULT_ATHENA_WORKGROUP,
    DEFAULT_QUERY_TIMEOUT_SECONDS,
)
from covidlake.errors import QueryError, QueryTimeout
from covidlake.query.base import read_version, select_sql, to_json_value
from covidlake.schemas import ATHENA_DATABASE, TableSchema, refined_table
from covidlake.storage import LakeStorage

if TYPE_CHECKING:
    from covidlake.settings import Settings

# GetQueryResults returns at most this many rows per page (its MaxResults ceiling).
ATHENA_MAX_PAGE_ROWS = 1000
# Polling GetQueryExecution: the first wait, doubled after each poll up to the cap.
FIRST_POLL_SECONDS = 0.05
MAX_POLL_SECONDS = 1.0


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


@dataclass
class AthenaConfig:
    """How the backend talks to Athena: the Athena fields of Settings plus polling and paging."""

    workgroup: str = DEFAULT_ATHENA_WORKGROUP
    database: str = ATHENA_DATABASE
    catalog: str = DEFAULT_ATHENA_CATALOG
    output_location: str | None = None
    result_reuse_minutes: int = DEFAULT_ATHENA_RESULT_REUSE_MINUTES
    timeout_seconds: float = DEFAULT_QUERY_TIMEOUT_SECONDS
    first_poll_seconds: float = FIRST_POLL_SECONDS
    max_poll_seconds: float = MAX_POLL_SECONDS
    page_size: int = ATHENA_MAX_PAGE_ROWS

    @classmethod
    def from_settings(cls, settings: Settings) -> AthenaConfig:
        return cls(
            workgroup=settings.athena_workgroup,
            database=settings.athena_database,
            catalog=settings.athena_catalog,
            output_location=settings.athena_output_location,
            result_reuse_minutes=settings.athena_result_reuse_minutes,
            timeout_seconds=settings.query_timeout_seconds,
        )


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
        self.config = config
        self._client = client
        self.storage = storage
        self._sleep = sleep
        self._clock = clock

    @property
    def client(self):  # noqa: ANN201 (a boto3 Athena client)
        """Made on first use, so a handler builds its backend at cold start without a region."""
        if self._client is None:
            import boto3

            self._client = boto3.client("athena")
        return self._client

    def version(self) -> str | None:
        return read_version(self.storage) if self.storage is not None else None

    def sql(self, table: str, limit: int | None = None) -> str:
        return select_sql(refined_table(table), self.config.database, limit)

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
