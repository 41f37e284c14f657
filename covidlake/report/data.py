"""What the report shows: the refined tables read through the local query engine, the
data version and the last run's summary; and the data behind each chart."""

from __future__ import annotations

import json
from typing import Any

from covidlake.report.summary import load_run
from covidlake.schemas import HDI_CATEGORIES, REFINED_TABLES
from covidlake.storage import LakeStorage

# The HDI chart reads left to right from the lowest category to the highest.
HDI_ORDER = tuple(name for name, _ in reversed(HDI_CATEGORIES))


def load_data(storage: LakeStorage, report: Any = None) -> dict[str, Any]:
    """Every refined table (the registry's), as lists of row dicts, plus the data version
    and the run summary."""
    from covidlake.query import DuckDBBackend, read_version

    backend = DuckDBBackend(storage)
    data: dict[str, Any] = {name: backend.fetch(name) for name in REFINED_TABLES}
    order = {name: i for i, name in enumerate(HDI_ORDER)}
    data["hdi_analysis"].sort(key=lambda r: order.get(r["hdi_category"], len(order)))
    data["cluster_summary"].sort(key=lambda r: r["cluster"])
    version = read_version(storage)
    try:
        data["refined_version"] = json.loads(version) if version else None
    except ValueError:
        data["refined_version"] = None
    data["run"] = load_run(storage, report)
    return data


def chart_data(data: dict[str, Any]) -> dict[str, Any]:
    """What each chart shows, keyed by chart name (embedded in the page as JSON)."""
    run = data["run"]
    return {
        "continents": [{"continent": r["continent"], "countries": r["countries"]} for r in data["continent_stats"]],
        "hdi": data["hdi_analysis"],
        "correlation": data["correlation_analysis"],
        "clusters": {"points": data["clusters"], "summary": data["cluster_summary"]},
        "top_countries": data["top_countries"],
        "run": {
            "run_id": run.get("run_id"),
            "changed": run.get("changed"),
            "zone_rows": run.get("zone_rows", {}),
            "rejected": (run.get("quality") or {}).get("rejected", {}),
            "stage_seconds": run.get("stage_seconds", {}),
        },
    }
