"""DuckDB over the refined Parquet of a lake (one machine).

DuckDB and pyarrow are imported when a query runs, never at module import: the Lambda
bundle has neither.
"""

from __future__ import annotations

from typing import Any

from covidlake.errors import TableNotPublished
from covidlake.query.base import read_version, select_sql, to_json_value
from covidlake.schemas import TableSchema, refined_table
from covidlake.storage import LakeStorage, LocalStorage


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
        return select_sql(refined_table(table), None, limit)

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
