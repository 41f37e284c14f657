"""Reading a raw CSV and typing its columns as the schema registry declares; reading a
trusted table back with its declared schema.

Every column is read as a string and typed explicitly, never inferred; the raw string
stays beside each typed column (`_raw_<name>`) so a rule can tell an empty field from
one that did not parse.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from covidlake.errors import SchemaError
from covidlake.schemas import TRUSTED_TABLES, ColumnType, TableSchema, canonical_columns

DATE_FORMAT = "yyyy-MM-dd"


def read_csv_as_strings(spark: SparkSession, path: str, columns: list[str] | None = None) -> DataFrame:
    """Every column as a string: typing is explicit (conform), never inferred. `columns`,
    the header as Spark names it (ingest records it: raw.capture.spark_column_names),
    saves the Spark job that would read the header; the header line is skipped either way."""
    reader = spark.read.options(header=True, inferSchema=False, mode="PERMISSIVE", encoding="UTF-8")
    if columns:
        reader = reader.schema(T.StructType([T.StructField(name, T.StringType()) for name in columns]))
    return reader.csv(path)


def read_trusted(spark: SparkSession, url: str, table: str) -> DataFrame:
    """A trusted table's Parquet with the registry's schema: given the schema, Spark
    starts no job to read the files' footers for it."""
    return spark.read.schema(TRUSTED_TABLES[table].spark_schema()).parquet(url)


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


def quote(name: str) -> str:
    """A Spark SQL identifier (any header text, backticks doubled)."""
    return "`" + name.replace("`", "``") + "`"


def sql_string(value: str) -> str:
    """A Spark SQL string literal (backslash escapes, the parser's default)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def typed_sql(raw: str, type_: ColumnType) -> str:
    """The SQL that types the raw string expression `raw` as declared. (SQL text, not
    Column calls: each pyspark.sql.functions call is a py4j round trip of milliseconds,
    and a wide schema makes hundreds of them; a SQL string is parsed in the JVM.)"""
    if type_ is ColumnType.DATE:
        return f"to_date({raw}, '{DATE_FORMAT}')"
    if type_ is ColumnType.STRING:
        return f"nullif(trim({raw}), '')"
    return f"CAST(trim({raw}) AS {type_.value})"


def with_raw_and_typed(df: DataFrame, schema: TableSchema, keep: list[str] | None = None) -> DataFrame:
    """Columns of schema typed as declared (missing optional ones as nulls), plus the
    raw strings as `_raw_<name>` so rules can tell an empty field from a bad one."""
    typed, raw = [], []
    for col in schema.columns:
        source = quote(col.name) if col.name in df.columns else "CAST(NULL AS string)"
        typed.append(f"{typed_sql(source, col.type)} AS {quote(col.name)}")
        raw.append(f"nullif(trim({source}), '') AS {quote('_raw_' + col.name)}")
    extra = [quote(c) for c in (keep or []) if c in df.columns and c not in schema.column_names]
    return df.selectExpr(*typed, *extra, *raw)
