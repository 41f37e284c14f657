"""The benchmark's reference: the ETL's raw -> trusted conversion done by DuckDB.

Same inputs (the two raw CSVs of the lake), same work as covidlake.trusted.job.write_trusted: every
column read as text then typed explicitly, the same quality rules in the same order
(the first failed rule wins, with the same details), duplicates by
(location, date) numbered by a window, the good facts joined with the good country
rows (database values win), and the three tables written as Parquet (snapshot from the
written daily table), then the counts. Not a second implementation for production:
a yardstick for what one machine can do with this conversion.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from covidlake.schemas import (
    COUNTRY_ATTRIBUTES,
    COUNTRY_DATA,
    COVID_FACTS,
    TRUSTED_TABLES,
    ColumnType,
    normalize_header,
)
from covidlake.trusted.rules import NON_NEGATIVE, POSITIVE


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _typed(raw: str, type_: ColumnType) -> str:
    if type_ is ColumnType.DATE:
        return f"try_strptime({raw}, '%Y-%m-%d')::DATE"
    if type_ is ColumnType.STRING:
        return raw
    return f"TRY_CAST({raw} AS {type_.duckdb})"


def _failures(checks: dict[str, str]) -> str:
    parts = [f"CASE WHEN {cond} THEN '{name}=' || coalesce(_raw_{name}, 'null') END" for name, cond in checks.items()]
    return f"concat_ws(', ', {', '.join(parts)})"


def _typed_select(source: str, header: list[str], schema, keep: dict[str, str]) -> str:
    present = {normalize_header(h): h for h in header}
    cols = []
    for col in schema.columns:
        raw = f"nullif(trim({_q(present[col.name])}), '')" if col.name in present else "NULL::VARCHAR"
        cols.append(f"{raw} AS _raw_{col.name}")
    for alias, name in keep.items():
        cols.append(f"{_q(present[name])} AS {alias}")
    raw_select = f"SELECT {', '.join(cols)} FROM {source}"
    typed = [f"{_typed(f'_raw_{c.name}', c.type)} AS {_q(c.name)}" for c in schema.columns]
    return f"SELECT {', '.join(typed)}, * FROM ({raw_select})"


def _rule_case(rules: list[tuple[str, str, str]]) -> tuple[str, str]:
    rule = "CASE " + " ".join(f"WHEN coalesce({cond}, false) THEN '{name}'" for name, cond, _ in rules) + " END"
    detail = "CASE " + " ".join(f"WHEN coalesce({cond}, false) THEN {why}" for name, cond, why in rules) + " END"
    return rule, detail


def _unparseable(schema) -> dict[str, str]:
    return {
        c.name: f"(_raw_{c.name} IS NOT NULL AND {_q(c.name)} IS NULL)"
        for c in schema.columns
        if c.type is not ColumnType.STRING
    }


def _any(conds) -> str:
    return "(" + " OR ".join(f"coalesce({c}, false)" for c in conds) + ")"


def write_trusted(con: duckdb.DuckDBPyConnection, covid_csv: str, country_csv: str, out: Path) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    read = "read_csv('{}', header=true, all_varchar=true)"
    covid_header = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {read.format(covid_csv)}").fetchall()]
    country_header = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {read.format(country_csv)}").fetchall()]
    covid_names = {normalize_header(h): h for h in covid_header}
    carried = {f"_csv_{c}": c for c in COUNTRY_ATTRIBUTES if c in covid_names}

    # countries: typed, flagged
    raw_order = ", ".join(f"_raw_{c.name} ASC NULLS LAST" for c in COUNTRY_DATA.columns)
    unp = _unparseable(COUNTRY_DATA)
    hdi = {"human_development_index": "NOT (human_development_index BETWEEN 0 AND 1)"}
    positive = {c: f"{c} <= 0" for c in POSITIVE}
    rule, detail = _rule_case(
        [
            ("missing_location", "location IS NULL", "'location is empty'"),
            ("unparseable_number", _any(unp.values()), _failures(unp)),
            ("hdi_out_of_range", hdi["human_development_index"], _failures(hdi)),
            ("non_positive_population", _any(positive.values()), _failures(positive)),
            ("duplicate_location", "_copy > 1", "'copy ' || _copy"),
        ]
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE countries AS
            SELECT *, {rule} AS _rule, {detail} AS _detail FROM (
              SELECT *, row_number() OVER (PARTITION BY location ORDER BY {raw_order}) AS _copy
              FROM ({_typed_select(read.format(country_csv), country_header, COUNTRY_DATA, {})}))"""
    )

    # facts: typed, flagged (streamed, not materialised)
    raw_order = ", ".join(f"_raw_{c.name} ASC NULLS LAST" for c in COVID_FACTS.columns)
    unp = _unparseable(COVID_FACTS)
    bad_date = {"date": f"({unp.pop('date')} OR date IS NULL)"}
    negative = {c: f"{c} < 0" for c in NON_NEGATIVE}
    rule, detail = _rule_case(
        [
            ("missing_location", "location IS NULL", "'location is empty'"),
            ("unparseable_date", bad_date["date"], _failures(bad_date)),
            ("unparseable_number", _any(unp.values()), _failures(unp)),
            ("negative_count", _any(negative.values()), _failures(negative)),
            ("unknown_location", "NOT _known_location", "'location is not in country_data'"),
            ("duplicate_location_date", "_copy > 1", "'copy ' || _copy"),
        ]
    )
    facts = f"""
        SELECT *, {rule} AS _rule, {detail} AS _detail FROM (
          SELECT t.*, k.location IS NOT NULL AS _known_location,
                 row_number() OVER (PARTITION BY t.location, t.date ORDER BY {raw_order}) AS _copy
          FROM ({_typed_select(read.format(covid_csv), covid_header, COVID_FACTS, carried)}) t
          LEFT JOIN (SELECT DISTINCT location FROM countries WHERE location IS NOT NULL) k USING (location))"""
    con.execute(f"CREATE OR REPLACE TEMP VIEW facts AS {facts}")

    daily_cols = []
    for col in TRUSTED_TABLES["daily"].columns:
        if col.name in COUNTRY_ATTRIBUTES:
            csv_value = (
                _typed(f"nullif(trim(f._csv_{col.name}), '')", col.type) if f"_csv_{col.name}" in carried else "NULL"
            )
            daily_cols.append(f"coalesce(c.{_q(col.name)}, {csv_value})::{col.type.duckdb} AS {_q(col.name)}")
        else:
            daily_cols.append(f"f.{_q(col.name)}::{col.type.duckdb} AS {_q(col.name)}")
    # One pass over the facts: the flagged rows go to a temp table (good ones and
    # rejected ones are split from it), as the Spark job persists its flagged facts.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE flagged AS SELECT * EXCLUDE ("
        + ", ".join(f"_raw_{c.name}" for c in COVID_FACTS.columns if c.name != "date")
        + ") FROM facts"
    )
    con.execute(
        f"""COPY (SELECT {", ".join(daily_cols)} FROM flagged f
                  LEFT JOIN (SELECT * FROM countries WHERE _rule IS NULL) c USING (location)
                  WHERE f._rule IS NULL)
            TO '{out / "daily"}' (FORMAT parquet, COMPRESSION snappy, PER_THREAD_OUTPUT true, OVERWRITE true)"""
    )
    snapshot_cols = ", ".join(_q(c) for c in TRUSTED_TABLES["snapshot"].column_names)
    con.execute(
        f"""COPY (SELECT {snapshot_cols} FROM read_parquet('{out / "daily"}/*.parquet')
                  WHERE continent IS NOT NULL
                  QUALIFY row_number() OVER (PARTITION BY location ORDER BY date DESC) = 1
                  ORDER BY location)
            TO '{out / "snapshot.parquet"}' (FORMAT parquet, COMPRESSION snappy)"""
    )
    con.execute(
        f"""COPY (SELECT 'country_data' AS source, _rule AS rule, location, NULL::VARCHAR AS date, _detail AS detail
                  FROM countries WHERE _rule IS NOT NULL
                  UNION ALL
                  SELECT 'covid_data', _rule, location, _raw_date, _detail FROM flagged WHERE _rule IS NOT NULL)
            TO '{out / "rejected.parquet"}' (FORMAT parquet, COMPRESSION snappy)"""
    )
    rows = {
        "daily": con.execute(f"SELECT count(*) FROM read_parquet('{out / 'daily'}/*.parquet')").fetchone()[0],
        "snapshot": con.execute(f"SELECT count(*) FROM read_parquet('{out / 'snapshot.parquet'}')").fetchone()[0],
        "rejected": con.execute(f"SELECT count(*) FROM read_parquet('{out / 'rejected.parquet'}')").fetchone()[0],
    }
    con.execute("DROP TABLE flagged")
    return rows


def run(
    covid_csv: str,
    country_csv: str,
    out: Path,
    threads: int | None = None,
    memory_limit: str | None = None,
    temp_dir: str | None = None,
) -> dict:
    config: dict = {}
    if threads:
        config["threads"] = threads
    if memory_limit:
        config["memory_limit"] = memory_limit
    if temp_dir:
        config["temp_directory"] = temp_dir
    started = time.perf_counter()
    con = duckdb.connect(config=config)
    con.execute("SET enable_progress_bar = false")
    try:
        rows = write_trusted(con, covid_csv, country_csv, out)
    finally:
        con.close()
    # uncapped by default (DuckDB's own limit, 80 % of RAM): a cap that makes it spill
    # would flatter Spark's ratio at 10^7 rows
    return {"seconds": round(time.perf_counter() - started, 2), "rows": rows, "memory_limit": memory_limit or "none"}
