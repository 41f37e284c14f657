"""OWID's layouts of the COVID CSV: the same data in any of them gives the same tables.

The real header of every file the template, settings or docs offer as a source is kept in
tests/fixtures/owid_headers/; the bundled data is rewritten into each layout here.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from covidlake.errors import SchemaError
from covidlake.local import serve_file
from covidlake.query import DuckDBBackend
from covidlake.raw.download import download_csv
from covidlake.runner import run_pipeline
from covidlake.schemas import (
    COUNTRY_ATTRIBUTES,
    COVID_FACTS,
    REFINED_TABLES,
    canonical_columns,
    detect_layout,
)
from covidlake.settings import BUNDLED_DATA, PROJECT_ROOT
from covidlake.storage import LocalStorage

HEADERS = PROJECT_ROOT / "tests" / "fixtures" / "owid_headers"
EXPECTED_LAYOUT = {"compact.csv": "compact", "owid-covid-data.csv": "legacy", "owid-covid-latest.csv": "legacy"}
# Where a source URL may be offered as a default or an example.
OFFERING_FILES = ("template.yaml", "samconfig.toml", "covidlake/settings.py", "README.md", "docs/deploy.md")
# The country attributes OWID dropped from the compact file.
NOT_IN_COMPACT = {"aged_65_older", "aged_70_older", "cardiovasc_death_rate", "female_smokers", "male_smokers"}


def fixture_header(name: str) -> list[str]:
    return (HEADERS / name).read_text().strip().split(",")


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def rewrite_bundled(header: list[str], attribute_factor: float = 1.5) -> str:
    """data/covid_data.csv plus the country attributes of data/country_data.csv, in the
    layout of `header`. The CSV's attributes are the database's times attribute_factor:
    the tables stay the same only if the database's values win."""
    countries = {r["location"]: r for r in read_rows(BUNDLED_DATA / "country_data.csv")}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for fact in read_rows(BUNDLED_DATA / "covid_data.csv"):
        fact = {canonical_columns([k])[0]: v for k, v in fact.items()}  # last_updated_date -> date
        country = countries.get(fact["location"], {})
        row = []
        for _source_name, name in zip(header, canonical_columns(header), strict=True):
            if name in COUNTRY_ATTRIBUTES and name != "continent":
                value = country.get(name, "")
                row.append(f"{float(value) * attribute_factor!r}" if value else "")
            elif name == "continent":
                row.append(country.get("continent", ""))
            else:
                row.append(fact.get(name, ""))
        writer.writerow(row)
    return out.getvalue()


def offered_urls() -> set[str]:
    urls = set()
    for rel in OFFERING_FILES:
        path = PROJECT_ROOT / rel
        if path.exists():
            urls |= set(re.findall(r"https?://[^\s`'\"<>)]+?\.csv", path.read_text()))
    return urls


def test_every_offered_source_url_has_a_real_header_fixture():
    urls = offered_urls()
    assert "https://catalog.ourworldindata.org/garden/covid/latest/compact/compact.csv" in urls  # the default
    missing = {u for u in urls if not (HEADERS / u.rsplit("/", 1)[1]).is_file()}
    assert not missing, f"no real header in {HEADERS} for {sorted(missing)}"


def test_compact_header_is_owids_current_layout():
    header = fixture_header("compact.csv")
    assert header[:2] == ["country", "date"] and "code" in header and "location" not in header
    assert not NOT_IN_COMPACT & set(header)
    assert detect_layout(header).name == "compact"
    names = canonical_columns(header)
    assert names[:2] == ["location", "date"] and "iso_code" in names


@pytest.mark.parametrize("name", sorted(EXPECTED_LAYOUT))
def test_each_real_header_passes_the_ingest_check(name, tmp_path, settings):
    """The download path's header check (the first Ingest failed here on compact.csv)."""
    header = fixture_header(name)
    assert detect_layout(header).name == EXPECTED_LAYOUT[name]
    source = tmp_path / name
    source.write_text(rewrite_bundled(header))
    with serve_file(source) as url:
        capture = download_csv(url, tmp_path / "captured.csv", settings)
    assert capture.rows == 247
    assert set(COVID_FACTS.required_names) <= set(canonical_columns(header))


def test_a_header_without_location_or_country_still_fails_clearly(tmp_path, settings):
    header = [h for h in fixture_header("compact.csv") if h != "country"]
    source = tmp_path / "broken.csv"
    source.write_text(rewrite_bundled(header))
    with serve_file(source) as url, pytest.raises(SchemaError, match="missing required column location"):
        download_csv(url, tmp_path / "captured.csv", settings)


def refined_tables(lake: Path) -> dict[str, list[dict]]:
    backend = DuckDBBackend(LocalStorage(lake))
    return {name: backend.fetch(name) for name in REFINED_TABLES}


def test_bundled_data_in_the_compact_layout_gives_identical_refined_tables(bundled_lake, settings, tmp_path):
    source = tmp_path / "compact.csv"
    source.write_text(rewrite_bundled(fixture_header("compact.csv")))
    with serve_file(source) as url:
        report = run_pipeline(settings, lake=str(tmp_path / "lake"), source_url=url)
    assert report.processed
    assert refined_tables(tmp_path / "lake") == refined_tables(bundled_lake)
