"""The report's charts: one matplotlib figure per entry of :data:`CHARTS`.

matplotlib is imported only when charts are drawn (the runner imports the report package).
"""

from __future__ import annotations

import io
import math
from typing import Any

ZONES = ("raw", "trusted", "refined")

# name -> (title, caption); the order of the page.
CHARTS: dict[str, tuple[str, str]] = {
    "continents": ("Countries per continent", "Countries with data in the latest snapshot (table continent_stats)."),
    "hdi": (
        "Cases per thousand by HDI category",
        "Average total cases per thousand people in each Human Development Index category (table hdi_analysis).",
    ),
    "correlation": (
        "Correlation with cases per thousand, by continent",
        "Pearson correlation of cases per thousand with HDI, GDP per capita and population density, over "
        "countries that have all four values (table correlation_analysis).",
    ),
    "clusters": (
        "K-Means clusters: HDI against GDP per capita",
        "k = 4 on HDI, GDP per capita and population density, standardised (tables clusters and cluster_summary).",
    ),
    "top_countries": (
        "Top ten countries by total cases",
        "Bars: total cases; labels: cases per thousand (table top_countries).",
    ),
    "run": (
        "The last run",
        "Rows per zone, rows rejected per quality rule and time per stage of the last `covidlake run`.",
    ),
}

# The refined tables each chart draws (the page shows every other refined table as a table).
CHART_TABLES: dict[str, tuple[str, ...]] = {
    "continents": ("continent_stats",),
    "hdi": ("hdi_analysis",),
    "correlation": ("correlation_analysis",),
    "clusters": ("clusters", "cluster_summary"),
    "top_countries": ("top_countries",),
    "run": (),
}

CLUSTER_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "font.size": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titleweight": "bold",
            "axes.titlesize": 11,
        }
    )
    return plt


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _fmt_int(n: float) -> str:
    return f"{int(round(n)):,}"


def _fmt_compact(n: float) -> str:
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            return f"{n / size:.1f}{suffix}"
    return f"{n:.0f}"


def fig_continents(plt, rows: list[dict]):
    rows = list(reversed(rows))  # largest on top
    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = [r["continent"] for r in rows]
    counts = [r["countries"] for r in rows]
    bars = ax.barh(names, counts, color="#4c72b0")
    ax.bar_label(bars, padding=3)
    ax.set_xlabel("countries")
    ax.set_title(CHARTS["continents"][0])
    ax.margins(x=0.1)
    fig.tight_layout()
    return fig


def fig_hdi(plt, rows: list[dict]):
    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = [r["hdi_category"] for r in rows]
    values = [_num(r["avg_cases_per_thousand"]) for r in rows]
    bars = ax.bar(names, values, color=["#c44e52", "#dd8452", "#55a868", "#4c72b0"][: len(rows)])
    ax.bar_label(
        bars,
        labels=[f"{v:.0f}\n({r['countries']} countries)" for v, r in zip(values, rows, strict=True)],
        padding=3,
        fontsize=9,
    )
    ax.set_xlabel("Human Development Index category")
    ax.set_ylabel("avg cases per thousand")
    ax.set_title(CHARTS["hdi"][0])
    ax.margins(y=0.25)
    fig.tight_layout()
    return fig


CORRELATION_COLUMNS = (
    ("hdi_cases_correlation", "HDI"),
    ("gdp_cases_correlation", "GDP per capita"),
    ("density_cases_correlation", "population density"),
)


def fig_correlation(plt, rows: list[dict]):
    import numpy as np

    matrix = np.array([[_num(r[c]) for c, _ in CORRELATION_COLUMNS] for r in rows], dtype=float).reshape(
        len(rows), len(CORRELATION_COLUMNS)
    )
    fig, ax = plt.subplots(figsize=(7, 0.5 * max(len(rows), 2) + 1.6))
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(CORRELATION_COLUMNS)), [label for _, label in CORRELATION_COLUMNS])
    ax.set_yticks(range(len(rows)), [f"{r['continent']} (n={r['country_count']})" for r in rows])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            value = matrix[i, j]
            text = "n/a" if math.isnan(value) else f"{value:+.2f}"
            ax.text(j, i, text, ha="center", va="center", color="white" if abs(value) > 0.6 else "black")
    fig.colorbar(image, ax=ax, label="Pearson r with cases per thousand", shrink=0.9)
    ax.set_title(CHARTS["correlation"][0])
    fig.tight_layout()
    return fig


def fig_clusters(plt, points: list[dict], summary: list[dict]):
    fig, (ax, table_ax) = plt.subplots(1, 2, figsize=(11, 4.6), gridspec_kw={"width_ratios": [3, 2]})
    for row in summary:
        cluster = row["cluster"]
        mine = [p for p in points if p["cluster"] == cluster]
        ax.scatter(
            [p["gdp_per_capita"] for p in mine],
            [p["human_development_index"] for p in mine],
            s=22,
            alpha=0.8,
            color=CLUSTER_COLORS[cluster % len(CLUSTER_COLORS)],
            edgecolors="white",
            linewidths=0.4,
            label=f"cluster {cluster} ({row['countries']})",
        )
    ax.set_xscale("log")
    ax.set_xlabel("GDP per capita (log scale)")
    ax.set_ylabel("Human Development Index")
    ax.set_title(CHARTS["clusters"][0])
    ax.legend(loc="lower right", fontsize=8, frameon=False)

    table_ax.axis("off")
    header = ["cluster", "countries", "avg HDI", "avg GDP", "avg density", "avg cases/1k"]
    cells = [
        [
            str(r["cluster"]),
            str(r["countries"]),
            f"{_num(r['avg_hdi']):.3f}",
            _fmt_int(_num(r["avg_gdp"])),
            f"{_num(r['avg_density']):.0f}",
            f"{_num(r['avg_cases_per_thousand']):.0f}",
        ]
        for r in summary
    ]
    table = table_ax.table(cellText=cells, colLabels=header, loc="center", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.auto_set_column_width(list(range(len(header))))
    table.scale(1, 1.5)
    for i, row in enumerate(summary, start=1):
        table[i, 0].set_facecolor(CLUSTER_COLORS[row["cluster"] % len(CLUSTER_COLORS)])
        table[i, 0].get_text().set_color("white")
    table_ax.set_title("cluster summary (averages per cluster)")
    fig.tight_layout()
    return fig


def fig_top_countries(plt, rows: list[dict]):
    rows = list(reversed(rows))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    bars = ax.barh([r["location"] for r in rows], [_num(r["total_cases"]) for r in rows], color="#55a868")
    ax.bar_label(
        bars,
        labels=[f"{_fmt_compact(_num(r['total_cases']))}  ({_num(r['cases_per_thousand']):.0f}/1k)" for r in rows],
        padding=3,
        fontsize=9,
    )
    ax.xaxis.set_major_formatter(lambda x, _: _fmt_compact(x))
    ax.set_xlabel("total cases")
    ax.set_title(CHARTS["top_countries"][0])
    ax.margins(x=0.3)
    fig.tight_layout()
    return fig


def fig_run(plt, run: dict):
    fig, (zones_ax, rejected_ax, stages_ax) = plt.subplots(1, 3, figsize=(13, 4.2))
    # rows per zone: one bar per table, grouped by zone
    labels, values, colors = [], [], []
    zone_colors = {"raw": "#8c8c8c", "trusted": "#4c72b0", "refined": "#55a868"}
    for zone in ZONES:
        for table, n in (run.get("zone_rows") or {}).get(zone, {}).items():
            labels.append(f"{zone}/{table}")
            values.append(n)
            colors.append(zone_colors[zone])
    if labels:
        bars = zones_ax.barh(labels[::-1], values[::-1], color=colors[::-1])
        zones_ax.bar_label(bars, padding=3, fontsize=8)
        zones_ax.tick_params(axis="y", labelsize=8)
        zones_ax.margins(x=0.2)
    else:
        _empty(zones_ax, "no row counts recorded")
    zones_ax.set_title("rows per zone")

    rejected = (run.get("quality") or {}).get("rejected") or {}
    items = [
        (f"{source}: {rule}", n) for source, rules in sorted(rejected.items()) for rule, n in sorted(rules.items())
    ]
    if items:
        bars = rejected_ax.barh([k for k, _ in items][::-1], [n for _, n in items][::-1], color="#c44e52")
        rejected_ax.bar_label(bars, padding=3, fontsize=8)
        rejected_ax.tick_params(axis="y", labelsize=8)
        rejected_ax.margins(x=0.2)
    else:
        rows_in = sum(((run.get("quality") or {}).get("rows_in") or {}).values())
        _empty(rejected_ax, f"no rows rejected\n(of {rows_in:,} rows in)" if rows_in else "no rows rejected")
    rejected_ax.set_title("rejected rows per rule")

    stages = run.get("stage_seconds") or {}
    if stages:
        bars = stages_ax.barh(list(stages)[::-1], list(stages.values())[::-1], color="#8172b3")
        stages_ax.bar_label(bars, labels=[f"{v:.2f} s" for v in list(stages.values())[::-1]], padding=3, fontsize=8)
        stages_ax.margins(x=0.25)
    else:
        _empty(stages_ax, "no stage times recorded")
    stages_ax.set_title("time per stage (s)")

    changed = run.get("changed")
    verdicts = {True: "data changed: yes", False: "data changed: no (Spark stages skipped)"}
    verdict = verdicts.get(changed, "data changed: unknown")
    fig.suptitle(f"run {run.get('run_id') or '(unknown)'} — {verdict}", fontweight="bold")
    fig.tight_layout()
    return fig


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=11, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def build_figures(data: dict[str, Any]) -> dict[str, Any]:
    """One matplotlib figure per chart, keyed as :data:`CHARTS`."""
    plt = _pyplot()
    return {
        "continents": fig_continents(plt, data["continent_stats"]),
        "hdi": fig_hdi(plt, data["hdi_analysis"]),
        "correlation": fig_correlation(plt, data["correlation_analysis"]),
        "clusters": fig_clusters(plt, data["clusters"], data["cluster_summary"]),
        "top_countries": fig_top_countries(plt, data["top_countries"]),
        "run": fig_run(plt, data["run"]),
    }


def png_bytes(fig) -> bytes:
    """The figure as PNG, without a timestamp or version in its metadata (same data, same bytes)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()
