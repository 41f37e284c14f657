"""Reading a raw CSV and typing its columns as the schema registry declares.

Every column is read as a string and typed explicitly, never inferred; the raw string
stays beside each typed column (`_raw_<name>`) so a rule can tell an empty field from
one that did not parse.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from covidlake.errors import SchemaError
from covidlake.schemas import ColumnType, TableSchema, canonical_columns

DATE_FORMAT = "yyyy-MM-dd"


def read_csv_as_strings(spark: SparkSession, path: str) -> DataFrame:
    """Every column as a string: typing is explicit (conform), never inferred."""
    return spark.read.options(header=True, inferSchema=False, mode="PERMISSIVE", encoding="UTF-8").csv(path)


def normalize_columns(df: DataFrame, where: str) -> DataFrame:
    names = canonical_columns(df.columns)  # any of OWID's layouts (schemas.detect_layout)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SchemaError(f"{where}: columns {', '.join(dupes)} appear more than once")
    return df.toDF(*names)


def require_columns(df: DataFrame, schema: TableSchema, where: str) -> None:
    missing = [c for c in schema.required_names if c not in df.columns]
    if missing:
        raise SchemaError(f"{where}: missing required column(s) {', '.join(missing)}")


def typed_column(raw: Column, type_: ColumnType) -> Column:
    if type_ is ColumnType.DATE:
        return F.to_date(raw, DATE_FORMAT)
    if type_ is ColumnType.STRING:
        return F.nullif(F.trim(raw), F.lit(""))
    return F.trim(raw).cast(type_.spark())


def with_raw_and_typed(df: DataFrame, schema: TableSchema, keep: list[str] | None = None) -> DataFrame:
    """Columns of schema typed as declared (missing optional ones as nulls), plus the
    raw strings as `_raw_<name>` so rules can tell an empty field from a bad one."""
    typed, raw = [], []
    for col in schema.columns:
        source = F.col(f"`{col.name}`") if col.name in df.columns else F.lit(None).cast("string")
        typed.append(typed_column(source, col.type).alias(col.name))
        raw.append(F.nullif(F.trim(source), F.lit("")).alias(f"_raw_{col.name}"))
    extra = [F.col(c) for c in (keep or []) if c in df.columns and c not in schema.column_names]
    return df.select(*typed, *extra, *raw)
