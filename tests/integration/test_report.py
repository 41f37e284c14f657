"""The run report of a real pipeline run on the bundled data, and `covidlake serve` at /."""

from __future__ import annotations

import base64
import http.client
import json
import re
import shutil
import threading

import pytest

from covidlake.api.serve import make_server
from covidlake.report import CHARTS

pytestmark = pytest.mark.integration

# docs/DESIGN.md: continent_stats on the bundled data
CONTINENT_COUNTS = {"Africa": 57, "Europe": 51, "Asia": 48, "North America": 41, "Oceania": 24, "South America": 14}


def chart_data(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', html, re.S)
    assert match, "the page has no chart-data block"
    return json.loads(match.group(1))


def test_report_has_every_chart(report_lake):
    lake, html = report_lake
    for name, (title, _) in CHARTS.items():
        assert f'data-chart="{name}"' in html, name
        assert title in html
        match = re.search(rf'src="data:image/png;base64,([A-Za-z0-9+/=]+)"[^>]*data-chart-image="{name}"', html)
        assert match, f"chart {name} is not embedded"
        png = base64.b64decode(match.group(1))
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000, name
        assert (lake / "report" / f"{name}.png").read_bytes() == png


def test_continent_counts_in_the_chart_data(report_lake):
    data = chart_data(report_lake[1])
    assert {r["continent"]: r["countries"] for r in data["continents"]} == CONTINENT_COUNTS
    assert [r["continent"] for r in data["continents"]] == list(CONTINENT_COUNTS)  # by countries descending


def test_chart_data_of_the_bundled_run(report_lake, bundled_run):
    data = chart_data(report_lake[1])
    run_report = bundled_run[1]
    assert len(data["clusters"]["points"]) == 184
    assert sum(r["countries"] for r in data["clusters"]["summary"]) == 184
    assert [r["hdi_category"] for r in data["hdi"]] == ["Low", "Medium", "High", "Very High"]
    assert len(data["top_countries"]) == 10 and len(data["correlation"]) == 6
    run = data["run"]
    assert run["run_id"] == run_report.ingest.run_id and run["changed"] is True
    assert run["zone_rows"]["raw"] == {"covid_data": 247, "country_data": 247}
    assert run["zone_rows"]["trusted"]["snapshot"] == 235
    assert {"ingest", "etl", "analytics"} <= set(run["stage_seconds"])
    assert run["rejected"] == run_report.quality["rejected"]


def test_runner_saved_the_run_summary(bundled_run):
    lake, run_report = bundled_run
    saved = json.loads((lake / "report" / "run.json").read_text())
    assert saved["run_id"] == run_report.ingest.run_id
    assert saved["stage_seconds"] == run_report.stage_seconds
    assert saved["zone_rows"] == run_report.zone_rows


def test_report_needs_no_network(report_lake):
    html = report_lake[1]
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.I), "an absolute URL in the page"
    assert not re.search(r"@import|url\(", html), "CSS that loads something"
    for attr in re.findall(r'\b(?:src|srcset|data)\s*=\s*"([^"]*)"', html):
        assert attr.startswith("data:"), attr[:80]
    for link in re.findall(r"<link\b[^>]*>", html):
        assert 'href="data:' in link, link
    assert "<script src" not in html and "<iframe" not in html


# --- covidlake serve ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served_report(report_lake):
    lake = report_lake[0]
    server = make_server(str(lake), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], lake
    server.shutdown()
    server.server_close()


def get(port, path, method="GET", body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
    response = conn.getresponse()
    return response.status, response.getheader("Content-Type"), response.read()


def test_serve_report_at_root(served_report):
    port, lake = served_report
    status, content_type, body = get(port, "/")
    assert status == 200 and content_type.startswith("text/html")
    assert body == (lake / "report" / "index.html").read_bytes()
    status, _, head = get(port, "/", method="HEAD")
    assert status == 200 and head == b""


def test_serve_chart_pngs(served_report):
    port, lake = served_report
    for path in ("/report/clusters.png", "/clusters.png"):
        status, content_type, body = get(port, path)
        assert (status, content_type) == (200, "image/png")
        assert body == (lake / "report" / "clusters.png").read_bytes()
    for path in ("/report/nothing.png", "/report/../run.json", "/report/run.json"):
        assert get(port, path)[0] == 404, path


def test_api_still_answers_beside_the_report(served_report):
    port, _ = served_report
    status, _, body = get(port, "/showResults", "POST", json.dumps({"table": "continent_stats"}))
    assert status == 200
    assert {r["continent"]: r["countries"] for r in json.loads(body)} == CONTINENT_COUNTS
    assert get(port, "/tables")[0] == 200


def test_serve_before_any_report(lake_copy):
    shutil.rmtree(lake_copy / "report", ignore_errors=True)
    server = make_server(str(lake_copy), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        status, content_type, body = get(server.server_address[1], "/")
        assert status == 404 and content_type.startswith("text/html")
        assert b"covidlake report" in body
    finally:
        server.shutdown()
        server.server_close()
