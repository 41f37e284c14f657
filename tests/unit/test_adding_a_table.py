"""Adding a refined table is one registry entry (docs/adding-a-table.md): a table
registered by a test shows up in the API, the Athena DDL, the generated docs and the
report, and the generated files are current for the registry as committed."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from covidlake.athena_ddl import refined_table_ddl
from covidlake.report import write_report
from covidlake.report.page import other_tables
from covidlake.schemas import REFINED_TABLES, RefinedTable, check_refined_tables
from covidlake.storage import LocalStorage
from tests.unit.api.sample_lake import sample_rows, write_sample_lake, write_table
from tests.unit.throwaway_table import ROWS, THROWAWAY

ROOT = Path(__file__).resolve().parents[2]


def load_script(relative: str):
    """athena/generate.py or docs/generate.py (scripts, not modules), imported afresh."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(f"generate_{path.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def registered(monkeypatch):
    """THROWAWAY in the registry for one test (monkeypatch takes it out afterwards)."""
    monkeypatch.setitem(REFINED_TABLES, THROWAWAY.name, THROWAWAY)
    return THROWAWAY


@pytest.fixture
def lake_with_throwaway(tmp_path, registered) -> Path:
    lake = tmp_path / "lake"
    write_sample_lake(lake)
    write_table(lake, THROWAWAY.name, ROWS)
    return lake


# --- the committed files are the registry's -----------------------------------------------


@pytest.mark.parametrize("script", ["athena/generate.py", "docs/generate.py"])
def test_generated_files_are_current(script):
    assert load_script(script).main(["--check"]) == 0, f"run: python {script}"


@pytest.mark.parametrize("script", ["athena/generate.py", "docs/generate.py"])
def test_check_fails_once_the_registry_changes(script, registered, capsys):
    assert load_script(script).main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err


# --- a new table, found everywhere ---------------------------------------------------------


def test_new_table_gets_its_athena_ddl(registered):
    ddl = refined_table_ddl("db", "s3://bucket")
    assert list(ddl)[-1] == THROWAWAY.name
    assert "`continent` string,\n  `doubled_countries` bigint" in ddl[THROWAWAY.name]
    assert "LOCATION 's3://bucket/refined/throwaway_doubled/'" in ddl[THROWAWAY.name]
    files = load_script("athena/generate.py").rendered()
    assert ROOT / "athena" / "throwaway_doubled.sql" in files


def test_new_table_is_in_the_generated_docs(registered):
    files = load_script("docs/generate.py").rendered()
    http = files[ROOT / "docs" / "showResults.http"]
    assert "### throwaway_doubled: twice the countries per continent" in http
    assert '{"table": "throwaway_doubled"}' in http
    api_md = files[ROOT / "docs" / "api.md"]
    assert "| `throwaway_doubled` | twice the countries" in api_md
    assert "`doubled_countries` bigint | `continent` |" in api_md


def test_new_table_is_in_the_report(lake_with_throwaway):
    assert other_tables() == [THROWAWAY.name]
    html = write_report(LocalStorage(lake_with_throwaway)).read_text()
    section = html.split('data-table="throwaway_doubled"', 1)[1].split("</section>", 1)[0]
    assert "twice the countries per continent" in section
    assert "<th>doubled_countries</th>" in section
    for row in ROWS:
        assert f'<td>{row["continent"]}</td><td class="num">{row["doubled_countries"]}</td>' in section


def test_new_table_is_in_the_api_tests_sample_lake(registered):
    assert sample_rows()[THROWAWAY.name] == [{"continent": "sample", "doubled_countries": 2}]


def test_report_lists_no_extra_table_for_the_committed_registry():
    assert other_tables() == []  # every committed table is drawn by a chart or has its section


# The API is checked as Lambda runs it, in a fresh interpreter: its models and table list
# are built when it is imported, so the table is registered before that import.
API_SCRIPT = """
import base64, importlib.util, json, sys
from pathlib import Path

if sys.argv[1] == "register":
    from covidlake.schemas import REFINED_TABLES
    from tests.unit.throwaway_table import THROWAWAY
    REFINED_TABLES[THROWAWAY.name] = THROWAWAY

spec = importlib.util.spec_from_file_location("show_results_app", "functions/show_results/app.py")
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
sample = json.loads(Path("events/show_results_api.json").read_text())


class Context:
    function_name, function_version, memory_limit_in_mb = "test", "$LATEST", 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id = "req-1"


def call(method, path, body=None):
    event = json.loads(json.dumps(sample))
    event["routeKey"] = f"{method} {path}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["body"] = base64.b64encode(json.dumps(body).encode()).decode() if body is not None else None
    event["isBase64Encoded"] = body is not None
    result = app.lambda_handler(event, Context())
    text = result["body"]
    if result.get("isBase64Encoded"):
        text = base64.b64decode(text).decode()
    return {"status": result["statusCode"], "body": json.loads(text)}


answers = {
    "tables": call("GET", "/tables"),
    "rows": call("POST", "/showResults", {"table": "throwaway_doubled"}),
    "openapi": call("GET", "/openapi.json"),
}
Path(sys.argv[2]).write_text(json.dumps(answers))
"""


def api_answers(lake: Path, tmp_path: Path, mode: str) -> dict:
    out = tmp_path / f"answers-{mode}.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        "COVIDLAKE_LAKE_URI": str(lake),
        "COVIDLAKE_QUERY_BACKEND": "duckdb",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }
    done = subprocess.run(
        [sys.executable, "-c", API_SCRIPT, mode, str(out)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def test_new_table_is_served_by_the_api(lake_with_throwaway, tmp_path):
    answers = api_answers(lake_with_throwaway, tmp_path, "register")
    assert answers["tables"]["status"] == 200
    listed = {t["name"]: t for t in answers["tables"]["body"]}
    assert [c["name"] for c in listed[THROWAWAY.name]["columns"]] == THROWAWAY.column_names
    assert answers["rows"] == {"status": 200, "body": ROWS}
    assert THROWAWAY.name in json.dumps(answers["openapi"]["body"])


def test_api_refuses_the_table_when_it_is_not_registered(lake_with_throwaway, tmp_path):
    """The negative control: the same lake and request, the committed registry."""
    answers = api_answers(lake_with_throwaway, tmp_path, "committed")
    assert THROWAWAY.name not in {t["name"] for t in answers["tables"]["body"]}
    assert answers["rows"]["status"] == 400
    assert THROWAWAY.name not in answers["rows"]["body"]["valid_tables"]


# --- what the registry refuses ------------------------------------------------------------


def refined(name: str, builder: str = "m:f", inputs: tuple[str, ...] = ("countries",)) -> RefinedTable:
    return RefinedTable(name, (), builder=builder, inputs=inputs)


@pytest.mark.parametrize(
    "tables, message",
    [
        ({"a": refined("a", inputs=("b",)), "b": refined("b")}, "only 'countries' or tables listed before it"),
        ({"a": refined("a", inputs=("nope",))}, "only 'countries' or tables listed before it"),
        ({"a": refined("a", builder="module_without_function")}, "builder must be 'module:function'"),
        ({"a": refined("b")}, "the key must be its name"),
        ({"countries": refined("countries")}, "the key must be its name"),
    ],
)
def test_registry_refuses_tables_it_cannot_build_in_order(tables, message):
    with pytest.raises(ValueError, match=message):
        check_refined_tables(tables)


def test_registry_accepts_a_table_that_reads_an_earlier_one():
    check_refined_tables({"a": refined("a"), "b": refined("b", inputs=("a", "countries"))})


def test_every_builder_resolves_to_the_function_named_after_its_table():
    from covidlake.refined.build import builder

    for name, table in REFINED_TABLES.items():
        assert callable(builder(table)), name
        assert builder(table).__name__ == name  # each builder is named after its table
