"""Query backends over the refined zone. DuckDB reads the refined Parquet locally;
values come back typed by the schema registry (numbers as numbers, nulls as None)."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from covidlake.schemas import ColumnType, TableSchema, refined_table
from covidlake.storage import LakeStorage, LocalStorage


def to_json_value(value: Any, type_: ColumnType) -> Any:
    """A JSON-ready value of the declared type; NaN and missing become None."""
    if value is None:
        return None
    if type_ in (ColumnType.BIGINT, ColumnType.INT):
        return int(value)
    if type_ is ColumnType.DOUBLE:
        value = float(value)
        return None if math.isnan(value) else value
    if type_ is ColumnType.DATE:
        return value.isoformat() if isinstance(value, date) else str(value)
    return str(value)


class DuckDBBackend:
    """DuckDB over the refined Parquet of a lake (local folder, or S3 objects fetched)."""

    def __init__(self, storage: LakeStorage):
        self.storage = storage

    def _relation(self, con, schema: TableSchema):
        prefix = f"refined/{schema.name}/"
        keys = [k for k in self.storage.list(prefix) if k.endswith(".parquet")]
        if not keys:
            raise FileNotFoundError(f"refined table {schema.name} has no data at {self.storage.url(prefix)}")
        if isinstance(self.storage, LocalStorage):
            files = [str(self.storage.local_path(k)) for k in keys]
            return con.read_parquet(files)
        import io

        import pyarrow as pa
        import pyarrow.parquet as pq

        arrow = pa.concat_tables(pq.read_table(io.BytesIO(self.storage.get_bytes(k))) for k in keys)
        return con.from_arrow(arrow)

    def fetch(self, table: str, limit: int | None = None) -> list[dict[str, Any]]:
        import duckdb

        schema = refined_table(table)
        with duckdb.connect() as con:
            rel = self._relation(con, schema)
            columns = ", ".join(f'"{c.name}"' for c in schema.columns)
            rel = rel.select(columns)
            if limit is not None:
                rel = rel.limit(limit)
            rows = rel.fetchall()
        return [
            {c.name: to_json_value(v, c.type) for c, v in zip(schema.columns, row)}
            for row in rows
        ]
