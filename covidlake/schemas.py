"""The one source of truth for every table covidlake reads or writes.

Source columns, trusted tables and the refined tables are declared here once; the
Spark jobs, the Athena DDL, the local query engine, the API, the report and the docs
derive their types (and, for the refined tables, their list) from these declarations.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum


class ColumnType(str, Enum):
    STRING = "string"
    DOUBLE = "double"
    BIGINT = "bigint"
    INT = "int"
    DATE = "date"

    @property
    def athena(self) -> str:
        return self.value

    @property
    def duckdb(self) -> str:
        return {"string": "VARCHAR", "double": "DOUBLE", "bigint": "BIGINT", "int": "INTEGER", "date": "DATE"}[
            self.value
        ]

    @property
    def json_type(self) -> str:
        return {"string": "string", "double": "number", "bigint": "integer", "int": "integer", "date": "string"}[
            self.value
        ]

    @property
    def postgres(self) -> str:
        return {
            "string": "text",
            "double": "double precision",
            "bigint": "bigint",
            "int": "integer",
            "date": "date",
        }[self.value]

    def spark(self):
        from pyspark.sql import types as T

        return {
            "string": T.StringType(),
            "double": T.DoubleType(),
            "bigint": T.LongType(),
            "int": T.IntegerType(),
            "date": T.DateType(),
        }[self.value]


S, D, L, INT, DT = ColumnType.STRING, ColumnType.DOUBLE, ColumnType.BIGINT, ColumnType.INT, ColumnType.DATE


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[Column, ...]
    description: str = ""
    # The table's natural order as SQL ORDER BY terms (Athena promises no order otherwise).
    order_by: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_names(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name} has no column {name!r}")

    def spark_schema(self):
        from pyspark.sql import types as T

        return T.StructType([T.StructField(c.name, c.type.spark(), True) for c in self.columns])

    def athena_ddl(self, database: str, location: str) -> str:
        cols = ",\n".join(f"  `{c.name}` {c.type.athena}" for c in self.columns)
        return (
            f"CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{self.name}` (\n{cols}\n)\n"
            f"STORED AS PARQUET\nLOCATION '{location.rstrip('/')}/'\n"
            "TBLPROPERTIES ('parquet.compression'='SNAPPY')"
        )


def _cols(spec: str, type_: ColumnType, required: set[str] = frozenset()) -> tuple[Column, ...]:
    return tuple(Column(n, type_, n in required) for n in spec.split())


# --- sources -------------------------------------------------------------------------

# Header names are normalised (trimmed, lower case, inner spaces to underscores) and
# these aliases applied before any column is looked up.
COLUMN_ALIASES = {"last_updated_date": "date"}

COUNTRY_DATA = TableSchema(
    "country_data",
    (
        Column("location", S, True, "country or OWID aggregate name (primary key)"),
        Column("continent", S, False, "empty for OWID aggregates"),
        *_cols(
            "population population_density median_age aged_65_older aged_70_older gdp_per_capita "
            "extreme_poverty cardiovasc_death_rate diabetes_prevalence female_smokers male_smokers "
            "handwashing_facilities hospital_beds_per_thousand life_expectancy human_development_index",
            D,
            required={"population", "population_density", "gdp_per_capita", "human_development_index"},
        ),
    ),
    "country attributes, from PostgreSQL table country_data",
)

COVID_FACTS = TableSchema(
    "covid_data",
    (
        Column("iso_code", S),
        Column("location", S, True),
        Column("date", DT, True, "`date` in OWID's daily file, `last_updated_date` in the latest file"),
        *_cols(
            "total_cases new_cases new_cases_smoothed total_deaths new_deaths new_deaths_smoothed "
            "total_cases_per_million new_cases_per_million new_cases_smoothed_per_million "
            "total_deaths_per_million new_deaths_per_million new_deaths_smoothed_per_million "
            "reproduction_rate icu_patients icu_patients_per_million hosp_patients hosp_patients_per_million "
            "weekly_icu_admissions weekly_icu_admissions_per_million weekly_hosp_admissions "
            "weekly_hosp_admissions_per_million total_tests new_tests total_tests_per_thousand "
            "new_tests_per_thousand new_tests_smoothed new_tests_smoothed_per_thousand positive_rate "
            "tests_per_case",
            D,
            required={"total_cases", "total_deaths"},
        ),
        Column("tests_units", S),
        *_cols(
            "total_vaccinations people_vaccinated people_fully_vaccinated total_boosters new_vaccinations "
            "new_vaccinations_smoothed total_vaccinations_per_hundred people_vaccinated_per_hundred "
            "people_fully_vaccinated_per_hundred total_boosters_per_hundred "
            "new_vaccinations_smoothed_per_million new_people_vaccinated_smoothed "
            "new_people_vaccinated_smoothed_per_hundred stringency_index "
            "excess_mortality_cumulative_absolute excess_mortality_cumulative excess_mortality "
            "excess_mortality_cumulative_per_million",
            D,
        ),
    ),
    "COVID facts, one row per location and date, from the CSV over HTTP",
)

# Columns the CSV may carry too (OWID's 67-column files); the database's values win.
COUNTRY_ATTRIBUTES = [c for c in COUNTRY_DATA.column_names if c != "location"]

# --- trusted zone --------------------------------------------------------------------

_fact_cols = [c for c in COVID_FACTS.columns if c.name not in ("iso_code", "location", "date")]
_country_cols = [c for c in COUNTRY_DATA.columns if c.name != "location"]
_daily_columns = (
    Column("location", S, True),
    Column("iso_code", S),
    Column("date", DT, True),
    *_country_cols,
    *_fact_cols,
)

TRUSTED_TABLES: dict[str, TableSchema] = {
    t.name: t
    for t in (
        TableSchema("daily", _daily_columns, "daily facts joined with the country attributes"),
        TableSchema(
            "snapshot",
            _daily_columns,
            "latest date per location, countries only (OWID aggregates excluded)",
        ),
        TableSchema(
            "rejected",
            (
                Column("source", S, True, "covid_data or country_data"),
                Column("rule", S, True, "the quality rule the row failed"),
                Column("location", S),
                Column("date", S, False, "the date as it arrived"),
                Column("detail", S, False, "the offending values"),
            ),
            "rows that failed a quality rule, with the rule",
        ),
    )
}

# --- refined zone --------------------------------------------------------------------
#
# One RefinedTable per refined table, in the registry's order: the order analytics builds
# and publishes them, the API lists them and the docs show them. An entry carries the
# table's columns, its natural row order, the function that builds it and what that
# function takes; everything else (the Athena DDL, the API's models and validation, the
# report, docs/api.md, docs/showResults.http) is derived from it. docs/adding-a-table.md
# walks through adding one.
#
# The builder is named ("module:function"), not imported: the Lambda API imports this
# module and must not import pyspark, so the Spark function is looked up only when Spark
# builds the tables (covidlake.refined.build). A decorator on the builder would register
# the table only in processes that import the Spark module, which the API never does.
# tests/unit/test_adding_a_table.py checks that every name resolves.

# The frame every builder may take besides other refined tables: the snapshot's countries
# (rows with a continent, plus cases_per_thousand; covidlake.refined.tables.countries).
COUNTRIES = "countries"


@dataclass(frozen=True)
class RefinedTable(TableSchema):
    # "module:function" that returns the table's DataFrame (covidlake.refined.tables)
    builder: str = ""
    # what the builder is called with, in order: COUNTRIES or refined tables listed earlier
    inputs: tuple[str, ...] = (COUNTRIES,)


# Human development categories, best first (hdi_analysis's natural order), each with the
# lowest human_development_index it takes; the last takes the rest. The Spark SQL that
# assigns them, hdi_analysis's ORDER BY and the report's chart all read this one tuple.
HDI_CATEGORIES: tuple[tuple[str, float | None], ...] = (
    ("Very High", 0.8),
    ("High", 0.7),
    ("Medium", 0.55),
    ("Low", None),
)


def hdi_rank_sql(category: str) -> str:
    """SQL ranking an HDI category column best first: `CASE c WHEN 'Very High' THEN 1 ... ELSE 4 END`."""
    names = [name for name, _ in HDI_CATEGORIES]
    whens = " ".join(f"WHEN '{name}' THEN {rank}" for rank, name in enumerate(names[:-1], start=1))
    return f"CASE {category} {whens} ELSE {len(names)} END"


REFINED_TABLES: dict[str, RefinedTable] = {
    t.name: t
    for t in (
        RefinedTable(
            "continent_stats",
            (Column("continent", S), Column("countries", L)),
            "countries per continent, by countries descending",
            ("countries DESC", "continent"),
            builder="covidlake.refined.tables:continent_stats",
        ),
        RefinedTable(
            "numeric_summary",
            (
                Column("total_records", L),
                *(
                    Column(f"{agg}_{m}", D)
                    for m in ("total_cases", "total_deaths", "population", "cases_per_thousand")
                    for agg in ("avg", "max")
                ),
            ),
            "one row of descriptive statistics over all countries",
            (),
            builder="covidlake.refined.tables:numeric_summary",
        ),
        RefinedTable(
            "top_countries",
            (
                Column("location", S),
                Column("continent", S),
                Column("total_cases", L),
                Column("population", L),
                Column("cases_per_thousand", D),
            ),
            "the ten countries with most total cases",
            ("total_cases DESC", "location"),
            builder="covidlake.refined.tables:top_countries",
        ),
        RefinedTable(
            "correlation_analysis",
            (
                Column("continent", S),
                Column("hdi_cases_correlation", D),
                Column("gdp_cases_correlation", D),
                Column("density_cases_correlation", D),
                Column("country_count", L),
                Column("avg_hdi", D),
                Column("avg_gdp", D),
            ),
            "Pearson correlations of cases per thousand with HDI, GDP and density, per continent",
            ("hdi_cases_correlation DESC NULLS LAST", "continent"),
            builder="covidlake.refined.tables:correlation_analysis",
        ),
        RefinedTable(
            "hdi_analysis",
            (
                Column("hdi_category", S),
                Column("countries", L),
                Column("avg_cases_per_thousand", D),
                Column("avg_deaths_per_million", D),
            ),
            "cases and deaths by human development category",
            (hdi_rank_sql("hdi_category"),),
            builder="covidlake.refined.tables:hdi_analysis",
        ),
        RefinedTable(
            "clusters",
            (
                Column("location", S),
                Column("continent", S),
                Column("cluster", INT),
                Column("human_development_index", D),
                Column("gdp_per_capita", D),
                Column("population_density", D),
                Column("cases_per_thousand", D),
            ),
            "K-Means (k=4) clusters on HDI, GDP per capita and population density",
            ("location",),
            builder="covidlake.refined.tables:clusters",
        ),
        RefinedTable(
            "cluster_summary",
            (
                Column("cluster", INT),
                Column("countries", L),
                Column("avg_hdi", D),
                Column("avg_gdp", D),
                Column("avg_density", D),
                Column("avg_cases_per_thousand", D),
            ),
            "per-cluster averages",
            ("cluster",),
            builder="covidlake.refined.tables:cluster_summary",
            inputs=("clusters",),
        ),
    )
}


def check_refined_tables(tables: Mapping[str, RefinedTable]) -> None:
    """Refuse a registry whose tables cannot be built in its order: each names a builder,
    and takes COUNTRIES or tables listed before it (so the order is a build order)."""
    seen: set[str] = set()
    for name, table in tables.items():
        if name != table.name or name == COUNTRIES:
            raise ValueError(f"refined table {name!r}: the key must be its name, and not {COUNTRIES!r}")
        module, _, function = table.builder.partition(":")
        if not (module and function):
            raise ValueError(f"refined table {name!r}: builder must be 'module:function', not {table.builder!r}")
        later = [i for i in table.inputs if i != COUNTRIES and i not in seen]
        if later:
            raise ValueError(f"refined table {name!r} takes {later}: only {COUNTRIES!r} or tables listed before it")
        seen.add(name)


check_refined_tables(REFINED_TABLES)

ATHENA_DATABASE = "covid_analytics"
# Written by analytics after it has published every refined table: the data version.
REFINED_VERSION_KEY = "refined/_version.json"
# the ETL's quality summary of the run whose data trusted/ holds
TRUSTED_QUALITY_KEY = "trusted/_quality.json"


def normalize_header(name: str) -> str:
    """`' Total Cases '` -> `total_cases`; aliases such as last_updated_date -> date."""
    key = re.sub(r"\s+", "_", name.strip().strip("\ufeff").strip().lower())
    return COLUMN_ALIASES.get(key, key)


# --- layouts of the COVID CSV ----------------------------------------------------------
# OWID publishes the same facts in several layouts; each is recognised by its header and
# mapped onto COVID_FACTS' names here, the one place ingest's header check and the ETL's
# read path both call. Country attributes the CSV carries too are dropped later: the
# database's values win (covidlake/trusted/build.py join_daily).


@dataclass(frozen=True)
class SourceLayout:
    name: str
    description: str
    # normalised source column -> covidlake column
    renames: Mapping[str, str] = field(default_factory=dict)


COMPACT_LAYOUT = SourceLayout(
    "compact",
    "OWID's current file (catalog.ourworldindata.org/garden/covid/latest/compact/compact.csv): "
    "`country` and `code`, facts first, fewer country attributes",
    {"country": "location", "code": "iso_code"},
)
LEGACY_LAYOUT = SourceLayout(
    "legacy", "OWID's 67-column owid-covid-data.csv (`date`) or owid-covid-latest.csv (`last_updated_date`)"
)
SPLIT_LAYOUT = SourceLayout("split", "the facts alone (data/covid_data.csv); country attributes from the database")


def detect_layout(header: Iterable[str]) -> SourceLayout:
    """Which of OWID's layouts a CSV header is (names raw or normalised)."""
    names = {normalize_header(h) for h in header}
    if "location" not in names and "country" in names:
        return COMPACT_LAYOUT
    if names & set(COUNTRY_ATTRIBUTES):
        return LEGACY_LAYOUT
    return SPLIT_LAYOUT


def canonical_columns(header: Iterable[str]) -> list[str]:
    """A CSV header in any known layout -> covidlake's column names, in the same order."""
    names = [normalize_header(h) for h in header]
    renames = detect_layout(names).renames
    return [renames.get(n, n) for n in names]


def refined_table(name: str) -> RefinedTable:
    try:
        return REFINED_TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; valid tables: {', '.join(REFINED_TABLES)}") from None
