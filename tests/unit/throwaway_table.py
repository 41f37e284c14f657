"""A refined table that exists only in tests: registered the way docs/adding-a-table.md
says (one registry entry naming its builder), to show that the API, the DDL, the docs,
the report and the Spark build all pick a new table up from the registry alone.

Importing this module registers nothing (and imports no pyspark): tests register
THROWAWAY with ``monkeypatch.setitem(REFINED_TABLES, THROWAWAY.name, THROWAWAY)``, which
takes it out again after the test.
"""

from __future__ import annotations

from covidlake.schemas import Column, ColumnType, RefinedTable

THROWAWAY = RefinedTable(
    "throwaway_doubled",
    (Column("continent", ColumnType.STRING), Column("doubled_countries", ColumnType.BIGINT)),
    "twice the countries per continent (a table registered by tests only)",
    ("continent",),
    builder="tests.unit.throwaway_table:throwaway_doubled",
    inputs=("continent_stats",),
)

# What the builder gives on tests/unit/api/sample_lake.py's continent_stats, in natural order.
ROWS = [
    {"continent": "Africa", "doubled_countries": 114},
    {"continent": "Asia", "doubled_countries": 96},
    {"continent": "Europe", "doubled_countries": 102},
    {"continent": "North America", "doubled_countries": 82},
    {"continent": "Oceania", "doubled_countries": 48},
    {"continent": "South America", "doubled_countries": 28},
]


def throwaway_doubled(continent_stats):
    """The builder: continent_stats -> continent, countries * 2, by continent."""
    from covidlake.refined.tables import conform

    doubled = continent_stats.selectExpr("continent", "countries * 2 AS doubled_countries").orderBy("continent")
    return conform(doubled, "throwaway_doubled")
