"""The Athena backend under moto, with seeded query results.

moto runs no SQL: results are queued through its documented seeding endpoint
(/moto-api/static/athena/query-results) and handed to the next executions in order.
moto returns every row in one page and never reports FAILED, so two small patches of
moto (not of our code) add paging by MaxResults/NextToken and a failing execution.
"""

from __future__ import annotations

import json

import boto3
import pytest
import requests
from moto import mock_aws
from moto.athena.models import athena_backends
from moto.moto_api import state_manager

from covidlake import api
from covidlake.errors import QueryError, QueryTimeout
from covidlake.query import AthenaBackend, AthenaConfig, CachedResults, athena_value
from covidlake.settings import Settings
from covidlake.storage import S3Storage

REGION = "us-east-1"
ACCOUNT = "123456789012"


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="lake")
        athena = boto3.client("athena", region_name=REGION)
        athena.create_work_group(Name="covidlake", Configuration={})
        yield {"s3": s3, "athena": athena}
    state_manager.unset_transition("athena::execution")


def seed(*results: tuple[list[tuple[str, str]], list[list[str | None]]], header: bool = True) -> None:
    """Queue results: each is ([(column, athena type)], rows of VarCharValues; None = null)."""
    payload = {"account_id": ACCOUNT, "region": REGION, "results": []}
    for columns, rows in results:
        data = ([[name for name, _ in columns]] if header else []) + rows
        payload["results"].append(
            {
                "rows": [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in data],
                "column_info": [
                    {
                        "CatalogName": "hive",
                        "SchemaName": "",
                        "TableName": "",
                        "Name": n,
                        "Label": n,
                        "Type": t,
                        "Precision": 0,
                        "Scale": 0,
                        "Nullable": "UNKNOWN",
                        "CaseSensitive": t == "varchar",
                    }
                    for n, t in columns
                ],
            }
        )
    resp = requests.post("http://motoapi.amazonaws.com/moto-api/static/athena/query-results", json=payload)
    assert resp.status_code == 201


CONTINENT_COLUMNS = [("continent", "varchar"), ("countries", "bigint")]
CONTINENT_ROWS = [["Africa", "57"], ["Europe", "51"], ["Asia", "48"]]


def backend(aws, **overrides) -> AthenaBackend:
    settings = {"workgroup": "covidlake", "timeout_seconds": 5, "first_poll_seconds": 0.001, **overrides}
    config = AthenaConfig(**settings)
    return AthenaBackend(config, client=aws["athena"], storage=S3Storage("lake", client=aws["s3"]))


def executions():
    return athena_backends[ACCOUNT][REGION].executions


def test_rows_converted_by_reported_types(aws):
    seed((CONTINENT_COLUMNS, CONTINENT_ROWS))
    rows = backend(aws).fetch("continent_stats")
    assert rows == [
        {"continent": "Africa", "countries": 57},
        {"continent": "Europe", "countries": 51},
        {"continent": "Asia", "countries": 48},
    ]
    assert all(type(r["countries"]) is int for r in rows)


def test_doubles_nan_and_nulls(aws):
    columns = [
        ("hdi_category", "varchar"),
        ("countries", "bigint"),
        ("avg_cases_per_thousand", "double"),
        ("avg_deaths_per_million", "double"),
    ]
    seed((columns, [["Very High", "66", "350.5", "NaN"], ["Low", "32", "5.0E0", None], [None, None, "Infinity", "1"]]))
    rows = backend(aws).fetch("hdi_analysis")
    assert rows == [
        {"hdi_category": "Very High", "countries": 66, "avg_cases_per_thousand": 350.5, "avg_deaths_per_million": None},
        {"hdi_category": "Low", "countries": 32, "avg_cases_per_thousand": 5.0, "avg_deaths_per_million": None},
        {"hdi_category": None, "countries": None, "avg_cases_per_thousand": None, "avg_deaths_per_million": 1.0},
    ]
    assert type(rows[2]["avg_deaths_per_million"]) is float


def test_registry_type_wins_over_a_drifted_athena_type(aws):
    # A table declared with countries as varchar in Glue: still a JSON integer out.
    seed(([("continent", "varchar"), ("countries", "varchar")], [["Africa", "57"]]))
    assert backend(aws).fetch("continent_stats") == [{"continent": "Africa", "countries": 57}]


def test_athena_value_parsers():
    assert athena_value("12", "integer") == 12 and athena_value("1.5", "decimal(10,2)") == 1.5
    assert athena_value("true", "boolean") is True and athena_value("2026-11-27", "date") == "2026-11-27"
    assert athena_value(None, "bigint") is None
    with pytest.raises(QueryError):
        athena_value("abc", "bigint")


def test_sql_is_built_from_the_registry_and_reuse_is_on(aws):
    seen = {}
    aws["athena"].meta.events.register(
        "provide-client-params.athena.StartQueryExecution", lambda params, **_: seen.update(params)
    )
    seed((CONTINENT_COLUMNS, CONTINENT_ROWS))
    backend(aws, result_reuse_minutes=30).fetch("continent_stats", limit=2)
    assert seen["QueryString"] == (
        'SELECT "continent", "countries" FROM "covid_analytics"."continent_stats" '
        "ORDER BY countries DESC, continent LIMIT 2"
    )
    assert seen["WorkGroup"] == "covidlake"
    assert seen["QueryExecutionContext"] == {"Database": "covid_analytics", "Catalog": "AwsDataCatalog"}
    assert seen["ResultReuseConfiguration"] == {
        "ResultReuseByAgeConfiguration": {"Enabled": True, "MaxAgeInMinutes": 30}
    }
    with pytest.raises(KeyError):
        backend(aws).sql("continent_stats; DROP TABLE x")


def test_sql_orders_by_the_registry_terms_only(aws):
    """Athena promises no order without ORDER BY: every table with declared terms gets
    them, in the registry's order, before the LIMIT; numeric_summary (one row) has none."""
    from covidlake.schemas import REFINED_TABLES

    b = backend(aws)
    for name, schema in REFINED_TABLES.items():
        sql = b.sql(name)
        if schema.order_by:
            assert sql.endswith(f'FROM "covid_analytics"."{name}" ORDER BY ' + ", ".join(schema.order_by))
            assert b.sql(name, limit=5).endswith(" ORDER BY " + ", ".join(schema.order_by) + " LIMIT 5")
        else:
            assert "ORDER BY" not in sql
    assert b.sql("numeric_summary", limit=1).endswith('FROM "covid_analytics"."numeric_summary" LIMIT 1')
    assert b.sql("hdi_analysis").endswith(
        "ORDER BY CASE hdi_category WHEN 'Very High' THEN 1 WHEN 'High' THEN 2 WHEN 'Medium' THEN 3 ELSE 4 END"
    )
    # nothing else from the caller reaches the SQL: an unknown name is refused before any SQL
    with pytest.raises(KeyError):
        b.sql("continent_stats ORDER BY 1")


@pytest.fixture
def paged_moto(monkeypatch):
    """moto ignores MaxResults/NextToken: page its seeded rows the way Athena does."""
    from moto.athena.responses import AthenaResponse

    calls = []

    def get_query_results(self):
        exec_id = self._get_param("QueryExecutionId")
        size = int(self._get_param("MaxResults") or 1000)
        start = int(self._get_param("NextToken") or 0)
        result = self.athena_backend.get_query_results(exec_id).to_dict()
        rows = result["ResultSet"]["Rows"]
        result["ResultSet"]["Rows"] = rows[start : start + size]
        if start + size < len(rows):
            result["NextToken"] = str(start + size)
        calls.append((start, size))
        return json.dumps(result)

    monkeypatch.setattr(AthenaResponse, "get_query_results", get_query_results)
    return calls


def test_every_page_is_read(aws, paged_moto):
    rows = [
        [f"Country {i:04d}", "Europe", str(i % 4), "0.8", "30000.0", "100.5", None if i % 7 else "12.5"]
        for i in range(2345)
    ]
    columns = [
        ("location", "varchar"),
        ("continent", "varchar"),
        ("cluster", "integer"),
        ("human_development_index", "double"),
        ("gdp_per_capita", "double"),
        ("population_density", "double"),
        ("cases_per_thousand", "double"),
    ]
    seed((columns, rows))
    got = backend(aws, page_size=1000).fetch("clusters")
    assert paged_moto == [(0, 1000), (1000, 1000), (2000, 1000)]  # header + 2345 rows = 2346
    assert len(got) == 2345
    assert [r["location"] for r in got] == [r[0] for r in rows]  # header skipped once, order kept
    assert got[0]["cases_per_thousand"] == 12.5 and got[1]["cases_per_thousand"] is None
    assert type(got[5]["cluster"]) is int


def test_failed_query_raises_with_query_id(aws, monkeypatch):
    from moto.athena.models import AthenaBackend as MotoAthena

    original = MotoAthena.get_query_execution

    def failing(self, exec_id):
        execution = original(self, exec_id)
        execution.status = "FAILED"
        return execution

    monkeypatch.setattr(MotoAthena, "get_query_execution", failing)
    with pytest.raises(QueryError) as err:
        backend(aws).fetch("continent_stats")
    assert err.value.query_id in executions()
    assert "failed" in err.value.message and not isinstance(err.value, QueryTimeout)


def test_timed_out_query_is_cancelled(aws):
    state_manager.set_transition(model_name="athena::execution", transition={"progression": "manual", "times": 10_000})
    slow = backend(aws, timeout_seconds=0.3, max_poll_seconds=0.05)
    with pytest.raises(QueryTimeout) as err:
        slow.fetch("continent_stats")
    assert err.value.query_id in executions()
    assert executions()[err.value.query_id].status == "CANCELLED"


def test_polling_backs_off_until_the_deadline(aws):
    state_manager.set_transition(model_name="athena::execution", transition={"progression": "manual", "times": 10_000})
    now = [0.0]
    sleeps: list[float] = []

    def sleep(s):
        sleeps.append(s)
        now[0] += s

    b = AthenaBackend(
        AthenaConfig(workgroup="covidlake", timeout_seconds=3.0, first_poll_seconds=0.1, max_poll_seconds=1.0),
        client=aws["athena"],
        sleep=sleep,
        clock=lambda: now[0],
    )
    with pytest.raises(QueryTimeout):
        b.fetch("continent_stats")
    assert sleeps[:4] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert max(sleeps) <= 1.0 and sum(sleeps) == pytest.approx(3.0)


def test_polls_until_succeeded(aws):
    state_manager.set_transition(model_name="athena::execution", transition={"progression": "manual", "times": 3})
    seed((CONTINENT_COLUMNS, CONTINENT_ROWS))
    assert len(backend(aws).fetch("continent_stats")) == 3


def test_missing_workgroup_is_a_query_error(aws):
    with pytest.raises(QueryError) as err:
        AthenaBackend(AthenaConfig(workgroup="nope"), client=aws["athena"]).fetch("continent_stats")
    assert err.value.query_id is None


def test_column_drift_is_a_query_error(aws):
    seed(([("continent", "varchar"), ("n", "bigint")], [["Africa", "57"]]))
    with pytest.raises(QueryError, match="registry declares"):
        backend(aws).fetch("continent_stats")


def test_cache_follows_the_version_object_in_s3(aws):
    aws["s3"].put_object(Bucket="lake", Key="refined/_version.json", Body=b'{"run_id": "a"}')
    seed((CONTINENT_COLUMNS, CONTINENT_ROWS), (CONTINENT_COLUMNS, CONTINENT_ROWS[:1]))
    cached = CachedResults(backend(aws))
    first, hit1 = cached.body("continent_stats")
    second, hit2 = cached.body("continent_stats", limit=2)
    assert (hit1, hit2) == (False, True) and len(executions()) == 1
    assert json.loads(second) == json.loads(first)[:2]
    aws["s3"].put_object(Bucket="lake", Key="refined/_version.json", Body=b'{"run_id": "b"}')
    third, hit3 = cached.body("continent_stats")
    assert not hit3 and len(executions()) == 2
    assert json.loads(third) == [{"continent": "Africa", "countries": 57}]


def test_no_version_object_means_no_cache(aws):
    seed((CONTINENT_COLUMNS, CONTINENT_ROWS), (CONTINENT_COLUMNS, CONTINENT_ROWS))
    cached = CachedResults(backend(aws))
    cached.body("continent_stats")
    cached.body("continent_stats")
    assert len(executions()) == 2


# --- the handler, configured for Athena by settings ----------------------------------------


ATHENA_SETTINGS = {
    "query_backend": "athena",
    "lake_uri": "s3://lake",
    "athena_workgroup": "covidlake",
    "query_timeout_seconds": 0.3,
}


@pytest.fixture
def athena_settings(aws, handler_holder):
    """The handler over the service that these settings describe, as the Lambda builds it."""

    def _use(**overrides) -> None:
        service = api.build_service(Settings(**{**ATHENA_SETTINGS, **overrides}))
        handler_holder["handler"] = api.create_lambda_handler(service, observe=False)

    _use()
    return _use


def test_handler_on_athena(athena_settings, api_handler_athena):
    aws_version = b'{"run_id": "a"}'
    boto3.client("s3", region_name=REGION).put_object(Bucket="lake", Key="refined/_version.json", Body=aws_version)
    seed((CONTINENT_COLUMNS, CONTINENT_ROWS))
    status, _, body = api_handler_athena({"table": "continent_stats"})
    assert status == 200 and body[0] == {"continent": "Africa", "countries": 57}
    status, _, body = api_handler_athena({"table": "continent_stats", "limit": 1})
    assert status == 200 and body == [{"continent": "Africa", "countries": 57}]
    assert len(executions()) == 1  # the second request came from the cache


def test_handler_on_athena_timeout_is_504(athena_settings, api_handler_athena):
    state_manager.set_transition(model_name="athena::execution", transition={"progression": "manual", "times": 10_000})
    status, headers, body = api_handler_athena({"table": "clusters"})
    assert status == 504
    assert body["query_id"] in executions()
    assert headers["Access-Control-Allow-Origin"] == "*"


def test_handler_on_athena_failure_is_502(athena_settings, api_handler_athena):
    athena_settings(athena_workgroup="missing")
    status, _, body = api_handler_athena({"table": "clusters"})
    assert status == 502 and "WorkGroup" not in body["message"] and body["request_id"]  # the detail is logged


@pytest.fixture
def api_handler_athena(invoke):
    from covidlake.api.serve import to_event

    def call(payload):
        event = to_event(
            "POST", "/showResults", [("content-type", "application/json")], json.dumps(payload).encode(), "127.0.0.1"
        )
        return invoke(event)

    return call
