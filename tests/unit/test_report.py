"""The run report on a small refined zone (no Spark): charts, page, escaping, run summary."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from covidlake import report as rpt
from covidlake.cli import cli
from covidlake.storage import LocalStorage
from tests.unit.api.sample_lake import CONTINENTS, write_sample_lake

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def chart_data(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', html, re.S)
    assert match, "no chart-data block"
    return json.loads(match.group(1))


def fake_run(changed=True, quality=None, stages=None):
    ingest = SimpleNamespace(to_dict=lambda: {"run_id": "20260101T000000Z-abc123", "changed": changed})
    return SimpleNamespace(
        lake="/somewhere",
        ingest=ingest,
        processed=changed,
        stage_seconds=stages or {"database": 1.0, "ingest": 0.1, "etl": 12.5, "analytics": 8.25, "query": 0.1},
        zone_rows={"raw": {"covid_data": 250}, "trusted": {"daily": 240, "rejected": 10}, "refined": {"clusters": 60}},
        quality=quality
        if quality is not None
        else {
            "rows_in": {"covid_data": 250, "country_data": 247},
            "rows_out": {"daily": 240, "snapshot": 230},
            "rejected": {"covid_data": {"negative_count": 7, "unknown_location": 3}},
        },
    )


@pytest.fixture
def lake(tmp_path) -> Path:
    write_sample_lake(tmp_path / "lake")
    return tmp_path / "lake"


def test_write_report_files_and_chart_data(lake):
    storage = LocalStorage(lake)
    index = rpt.write_report(storage, report=fake_run())
    assert index == lake / "report" / "index.html"
    html = index.read_text()
    for name in rpt.CHARTS:
        png = (lake / "report" / f"{name}.png").read_bytes()
        assert png.startswith(PNG_MAGIC), name
        match = re.search(rf'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"[^>]*data-chart-image="{name}"', html)
        assert match, f"chart {name} not embedded"
        assert base64.b64decode(match.group(1)) == png
    data = chart_data(html)
    assert {r["continent"]: r["countries"] for r in data["continents"]} == dict(CONTINENTS)
    assert data["run"]["rejected"] == {"covid_data": {"negative_count": 7, "unknown_location": 3}}
    assert data["run"]["changed"] is True
    assert "negative_count" in html and "unknown_location" in html  # the rejected-rows table
    assert [r["hdi_category"] for r in data["hdi"]] == sorted(
        [r["hdi_category"] for r in data["hdi"]], key=rpt.HDI_ORDER.index
    )


def test_same_data_same_png_bytes(lake, tmp_path):
    storage = LocalStorage(lake)
    run = fake_run()
    rpt.write_report(storage, tmp_path / "a", report=run)
    rpt.write_report(storage, tmp_path / "b", report=run)
    for name in ("continents", "correlation", "clusters"):
        assert (tmp_path / "a" / f"{name}.png").read_bytes() == (tmp_path / "b" / f"{name}.png").read_bytes()


def test_text_from_the_data_is_escaped(lake):
    storage = LocalStorage(lake)
    data = rpt.load_data(storage, fake_run())
    evil = "</script><script>alert(1)</script><b>x</b>"
    data["top_countries"][0]["location"] = evil
    html = rpt.render_html(data, {name: PNG_MAGIC for name in rpt.CHARTS})
    assert evil not in html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in html  # the table cell
    assert chart_data(html)["top_countries"][0]["location"] == evil  # the JSON, intact after parsing
    assert html.count("<script") == 2  # the data block and the self-check, nothing injected


def test_run_summary_is_saved_and_read_back(lake):
    storage = LocalStorage(lake)
    saved = rpt.save_run_summary(storage, fake_run())
    on_disk = json.loads((lake / "report" / "run.json").read_text())
    assert on_disk == saved
    assert on_disk["run_id"] == "20260101T000000Z-abc123" and on_disk["stage_seconds"]["etl"] == 12.5
    html = rpt.write_report(storage).read_text()  # standalone: no RunReport given
    assert chart_data(html)["run"]["stage_seconds"]["analytics"] == 8.25
    assert "20260101T000000Z-abc123" in html


def test_unchanged_run_takes_rejected_rows_from_the_trusted_zone(lake):
    storage = LocalStorage(lake)
    storage.put_bytes(
        "trusted/_quality.json",
        json.dumps(
            {
                "run_id": "older",
                "rows_in": {"covid_data": 9},
                "rows_out": {},
                "rejected": {"covid_data": {"missing_location": 2}},
            }
        ).encode(),
    )
    rpt.save_run_summary(storage, fake_run(changed=False, quality={}, stages={"database": 0.5, "ingest": 0.1}))
    data = chart_data(rpt.write_report(storage).read_text())
    assert data["run"]["changed"] is False
    assert data["run"]["rejected"] == {"covid_data": {"missing_location": 2}}
    assert "no — Spark stages skipped" in (lake / "report" / "index.html").read_text()


def test_report_without_any_run_summary(lake):
    html = rpt.write_report(LocalStorage(lake)).read_text()
    data = chart_data(html)
    assert data["run"]["run_id"] is None and data["run"]["stage_seconds"] == {}
    assert "unknown" in html


def test_cli_report(lake, tmp_path):
    result = CliRunner().invoke(cli, ["report", "--lake", str(lake)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(lake / "report" / "index.html")
    out = tmp_path / "elsewhere"
    result = CliRunner().invoke(cli, ["report", "--lake", str(lake), "--out", str(out)])
    assert result.exit_code == 0 and (out / "index.html").is_file() and (out / "clusters.png").is_file()


def test_cli_report_before_any_run(tmp_path):
    result = CliRunner().invoke(cli, ["report", "--lake", str(tmp_path / "empty")])
    assert result.exit_code == 2
    assert "covidlake run" in result.output
