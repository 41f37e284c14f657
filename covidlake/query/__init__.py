"""Query backends over the refined zone, behind one small interface.

* :mod:`covidlake.query.base`: the interface, the SELECT both engines run, value typing,
  the refined-data version.
* :mod:`covidlake.query.duckdb_backend`: :class:`DuckDBBackend` reads the refined Parquet
  of a lake (one machine).
* :mod:`covidlake.query.athena`: :class:`AthenaBackend` runs SQL on Athena over the Glue
  tables (AWS): polling and paging.
* :mod:`covidlake.query.cache`: :class:`CachedResults` keeps results per table and version.

Both backends return rows as dicts typed by the schema registry (numbers as numbers, NaN
and missing values as None), in the table's natural order: both run the same SELECT, with
the registry's ``order_by`` terms as its ORDER BY.

Nothing heavy is imported at module import time: the Lambda bundle has boto3 only, and
DuckDB / pyarrow are imported inside the DuckDB backend when it queries.
"""

from covidlake.query.athena import AthenaBackend, AthenaConfig, athena_value
from covidlake.query.base import QueryBackend, read_version, select_sql, to_json_value
from covidlake.query.cache import CachedResults, CachedTable
from covidlake.query.duckdb_backend import DuckDBBackend

__all__ = [
    "AthenaBackend",
    "AthenaConfig",
    "CachedResults",
    "CachedTable",
    "DuckDBBackend",
    "QueryBackend",
    "athena_value",
    "read_version",
    "select_sql",
    "to_json_value",
]
