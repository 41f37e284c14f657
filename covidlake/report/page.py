"""The report page: ``index.html`` (self-contained: charts as PNG data URIs, tables as
HTML, inline style, the data behind every chart as JSON) and one PNG per chart."""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from covidlake.report.data import chart_data, load_data
from covidlake.report.figures import CHART_TABLES, CHARTS, build_figures, png_bytes
from covidlake.report.summary import REPORT_PREFIX
from covidlake.schemas import REFINED_TABLES
from covidlake.storage import LakeStorage, LocalStorage

# Refined tables the page shows in sections of their own, beside the charts' tables.
SECTION_TABLES = ("numeric_summary",)


def other_tables() -> list[str]:
    """Refined tables that no chart or section shows, in registry order: the page lists
    each as a plain table, so a table added to the registry is in the report unasked."""
    shown = {name for names in CHART_TABLES.values() for name in names} | set(SECTION_TABLES)
    return [name for name in REFINED_TABLES if name not in shown]


def _json_for_script(value: Any) -> str:
    """JSON that is safe inside <script>: no '</script>', no '<!--', NaN as null."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    text = json.dumps(clean(value), separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _table(rows: list[dict], columns: list[str] | None = None) -> dict:
    columns = columns or (list(rows[0]) if rows else [])
    body = []
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c)
            if v is None or (isinstance(v, float) and not math.isfinite(v)):
                cells.append(("n/a", True))
            elif isinstance(v, float):
                cells.append((f"{v:,.4f}" if abs(v) < 1000 else f"{v:,.0f}", True))
            elif isinstance(v, int):
                cells.append((f"{v:,}", True))
            else:
                cells.append((str(v), False))
        body.append(cells)
    return {"columns": columns, "rows": body}


def render_html(data: dict[str, Any], pngs: dict[str, bytes]) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("covidlake.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    run = data["run"]
    tables = {
        "continents": _table(data["continent_stats"]),
        "hdi": _table(data["hdi_analysis"]),
        "correlation": _table(data["correlation_analysis"]),
        "cluster_summary": _table(data["cluster_summary"]),
        "top_countries": _table(data["top_countries"]),
        "numeric_summary": _table(
            [{"statistic": k, "value": v} for row in data["numeric_summary"][:1] for k, v in row.items()]
        ),
    }
    charts = [
        {
            "name": name,
            "title": title,
            "caption": caption,
            "src": "data:image/png;base64," + base64.b64encode(pngs[name]).decode("ascii"),
            "file": f"{name}.png",
        }
        for name, (title, caption) in CHARTS.items()
    ]
    others = [
        {
            "name": name,
            "description": REFINED_TABLES[name].description,
            "table": _table(data[name], REFINED_TABLES[name].column_names),
        }
        for name in other_tables()
    ]
    return env.get_template("report.html.j2").render(
        charts=charts,
        tables=tables,
        other_tables=others,
        run=run,
        version=data.get("refined_version") or {},
        summary_count=(data["numeric_summary"][0].get("total_records") if data["numeric_summary"] else None),
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        chart_data_json=_json_for_script(chart_data(data)),
    )


def report_dir(storage: LakeStorage) -> Path:
    if not isinstance(storage, LocalStorage):
        raise ValueError(f"{storage.uri} is not a folder: give the report an output folder (--out)")
    return storage.local_path(REPORT_PREFIX)


def write_report(storage: LakeStorage, out_dir: Path | None = None, report: Any = None) -> Path:
    """Write index.html and one PNG per chart into ``out_dir`` (default ``<lake>/report``);
    returns the path of index.html. ``report``: the RunReport of the run just finished."""
    out = Path(out_dir) if out_dir is not None else report_dir(storage)
    data = load_data(storage, report)
    pngs = {name: png_bytes(fig) for name, fig in build_figures(data).items()}
    out.mkdir(parents=True, exist_ok=True)
    for name, payload in pngs.items():
        _write_atomic(out / f"{name}.png", payload)
    index = out / "index.html"
    _write_atomic(index, render_html(data, pngs).encode("utf-8"))
    return index


def _write_atomic(path: Path, payload: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(payload)
    tmp.replace(path)
