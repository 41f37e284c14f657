"""The run report: charts of the refined tables and of the last run, as one HTML page.

``covidlake report`` (and the end of ``covidlake run``) writes ``<lake>/report/``:

* ``index.html`` -- self-contained: every chart is embedded as a PNG data URI, the
  tables are HTML, the style is inline; nothing is fetched when it is viewed. The data
  behind every chart is kept in ``<script type="application/json" id="chart-data">``.
  Refined tables that no chart draws are listed as tables, so every table of the
  registry is in the report.
* ``<chart>.png`` -- each chart on its own (``CHARTS`` lists them).
* ``run.json`` -- the summary of the last pipeline run (written by the runner after
  every run, so the report can be rebuilt later and still show it).

One concept per module: :mod:`~covidlake.report.summary` (the run summary),
:mod:`~covidlake.report.data` (lake -> rows), :mod:`~covidlake.report.figures`
(rows -> matplotlib figures), :mod:`~covidlake.report.page` (figures and rows -> files;
its template is ``templates/report.html.j2``). The runner imports this package, so
nothing here imports matplotlib or jinja2 before a report is drawn.
"""

from covidlake.report.data import HDI_ORDER, chart_data, load_data
from covidlake.report.figures import CHARTS, build_figures, png_bytes
from covidlake.report.page import render_html, report_dir, write_report
from covidlake.report.summary import REPORT_PREFIX, RUN_KEY, load_run, run_summary, save_run_summary

__all__ = [
    "CHARTS",
    "HDI_ORDER",
    "REPORT_PREFIX",
    "RUN_KEY",
    "build_figures",
    "chart_data",
    "load_data",
    "load_run",
    "png_bytes",
    "render_html",
    "report_dir",
    "run_summary",
    "save_run_summary",
    "write_report",
]
