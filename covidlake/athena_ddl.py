"""Athena DDL for the refined tables, derived from covidlake.schemas (the one schema source).

The refined tables are plain (unpartitioned) Parquet folders at <lake>/refined/<table>/,
so "create or repair" is CREATE EXTERNAL TABLE IF NOT EXISTS: no partitions to add.
athena/generate.py writes these statements to athena/*.sql; the state machine runs the
same statements (built by the create_emr Lambda) after the Spark steps.
"""

from __future__ import annotations

from covidlake.schemas import ATHENA_DATABASE, REFINED_TABLES


def refined_table_ddl(database: str = ATHENA_DATABASE, lake_uri: str = "s3://${LakeBucket}") -> dict[str, str]:
    """{table: DDL} for every refined table, in the registry's order."""
    lake = lake_uri.rstrip("/")
    return {name: schema.athena_ddl(database, f"{lake}/refined/{name}/") for name, schema in REFINED_TABLES.items()}
