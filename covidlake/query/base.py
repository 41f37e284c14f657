"""What every query backend shares: the interface, the one SELECT both engines run, the
typing of values by the schema registry, and the refined-data version.

The table name is only ever looked up in :data:`covidlake.schemas.REFINED_TABLES`; SQL is
built from the registry's identifiers and terms, never from request text.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any, Protocol

from covidlake.errors import QueryError
from covidlake.schemas import REFINED_VERSION_KEY, ColumnType, TableSchema
from covidlake.storage import LakeStorage


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


class QueryBackend(Protocol):
    def fetch(self, table: str, limit: int | None = None) -> list[dict[str, Any]]: ...

    def version(self) -> str | None:
        """The refined-data version (content of refined/_version.json); None if unknown."""


def read_version(storage: LakeStorage) -> str | None:
    """The published refined-data version, or None before the first publish."""
    try:
        raw = storage.get_bytes(REFINED_VERSION_KEY)
    except FileNotFoundError:  # both storage backends say so for a missing key
        return None
    except Exception as err:
        raise QueryError(f"cannot read {storage.url(REFINED_VERSION_KEY)}: {err}") from err
    return raw.decode("utf-8", "replace").strip() or None


def select_sql(schema: TableSchema, database: str | None, limit: int | None) -> str:
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
