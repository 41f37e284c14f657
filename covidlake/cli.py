"""The `covidlake` command: run the pipeline on one machine, query its tables, load
country_data into any PostgreSQL."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from covidlake.api.serve import serve as _serve
from covidlake.schemas import REFINED_TABLES
from covidlake.settings import BUNDLED_DATA, get_settings
from covidlake.smoke import smoke as _smoke

lake_option = click.option(
    "--lake", default=None, help="lake folder or s3://bucket/prefix [env COVIDLAKE_LAKE_URI, default ./lake]"
)


class PipelineError(click.ClickException):
    exit_code = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """covidlake: a batch data lake for COVID-19 data."""


@cli.command()
@lake_option
@click.option("--source-url", default=None, help="the COVID CSV URL (default: bundled data served on 127.0.0.1)")
@click.option("--db-url", default=None, help="use this PostgreSQL instead of the embedded one")
@click.option(
    "--country-csv",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="load this file into the embedded database instead of the bundled country_data.csv",
)
@click.option("--force", is_flag=True, help="reprocess even if the sources did not change")
@click.option("--wait", type=click.FloatRange(0), default=None, help="seconds to wait for another run on this lake")
@click.option("--log-level", default="WARNING", show_default=True)
def run(lake, source_url, db_url, country_csv, force, wait, log_level) -> None:
    """Run the whole pipeline: database, ingest, ETL, analytics, query."""
    from covidlake.observability import (
        NAMESPACE,
        add_ingest_metrics,
        add_quality_metrics,
        console_logger,
        emit_to_console,
    )
    from covidlake.runner import run_pipeline

    settings = get_settings()
    if wait is not None:
        settings = settings.model_copy(update={"lock_wait_seconds": wait})
    if db_url and country_csv:
        raise click.UsageError("--country-csv loads the embedded database; it cannot be combined with --db-url")
    console_logger(level=log_level)
    try:
        report = run_pipeline(settings, lake, source_url, db_url, country_csv, force, progress=StageLines())
    except Exception as err:  # every stage's error ends the run with its message
        raise PipelineError(f"{type(err).__name__}: {err}") from err
    from aws_lambda_powertools import Metrics

    metrics = Metrics(namespace=NAMESPACE, service="covidlake")
    add_ingest_metrics(metrics, report.ingest.to_dict())
    if report.quality:
        add_quality_metrics(metrics, report.quality)
    if log_level.upper() in ("DEBUG", "INFO"):
        emit_to_console(metrics)
    print_report(report)
    from covidlake.report import write_report
    from covidlake.storage import open_lake

    if report.lake.startswith("s3://"):
        click.echo("\nreport: not written for an s3:// lake (use `covidlake report --lake <uri> --out <folder>`)")
    else:
        click.echo(f"\nreport: {write_report(open_lake(report.lake), report=report)}")


STAGE_LABELS = {
    "database": "database (embedded PostgreSQL)",
    "ingest": "download and ingest",
    "spark_start": "Spark start",
    "etl": "ETL raw -> trusted",
    "analytics": "analytics trusted -> refined",
    "query": "query",
}


class StageLines:
    """Progress on stderr: on a terminal each stage shows when it starts and is completed
    in place when it ends; otherwise one line per stage, when it ends."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def started(self, stage: str) -> None:
        if self.tty:
            self.stream.write(f"  {STAGE_LABELS.get(stage, stage):<30} …")
            self.stream.flush()

    def finished(self, stage: str, seconds: float, detail: str, ok: bool) -> None:
        status = f"{seconds:7.2f} s" if ok else "  failed"
        line = f"  {STAGE_LABELS.get(stage, stage):<30} {status}{'  ' + detail if detail else ''}"
        self.stream.write(("\r\033[K" if self.tty else "") + line + "\n")
        self.stream.flush()


def print_report(report) -> None:
    ingest = report.ingest
    click.echo(f"lake: {report.lake}")
    click.echo(f"run: {ingest.run_id}  changed: {str(ingest.changed).lower()}")
    if not ingest.changed:
        click.echo("sources unchanged: no raw object written, Spark stages skipped")
    click.echo("\nrows per zone")
    for zone, tables in report.zone_rows.items():
        click.echo(f"  {zone:<8} " + ", ".join(f"{t}={n}" for t, n in tables.items()))
    if report.quality.get("rejected"):
        click.echo("  rejected " + json.dumps(report.quality["rejected"]))
    click.echo("\ntime per stage (s)")
    click.echo("  " + ", ".join(f"{s}={t:.2f}" for s, t in report.stage_seconds.items()))
    click.echo("\ncontinent_stats")
    print_table(report.continent_stats)


def print_table(rows: list[dict]) -> None:
    if not rows:
        click.echo("  (no rows)")
        return
    names = list(rows[0])
    cells = [[_fmt(r[n]) for n in names] for r in rows]
    widths = [max(len(n), *(len(c[i]) for c in cells)) for i, n in enumerate(names)]
    click.echo("  " + "  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)))
    for row in cells:
        click.echo(
            "  " + "  ".join(c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(row, widths, strict=True))
        )


def _fmt(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e6 else f"{value:.0f}"
    return str(value)


def _numeric(text: str) -> bool:
    return text.replace(".", "", 1).replace("-", "", 1).isdigit()


@cli.command()
@click.argument("table", type=click.Choice(list(REFINED_TABLES)))
@lake_option
@click.option("--json", "as_json", is_flag=True, help="print a JSON array of row objects")
@click.option("--limit", type=click.IntRange(1), default=None)
def query(table, lake, as_json, limit) -> None:
    """Print a refined table."""
    from covidlake.errors import TableNotPublished
    from covidlake.query import DuckDBBackend
    from covidlake.storage import open_lake

    try:
        rows = DuckDBBackend(open_lake(lake or get_settings().lake_uri)).fetch(table, limit)
    except TableNotPublished as err:
        raise PipelineError(f"{err} (run `covidlake run` first)") from None
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        print_table(rows)


@cli.command("report")
@lake_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="write here instead of <lake>/report (required for an s3:// lake)",
)
def report_command(lake: str | None, out: Path | None) -> None:
    """Write the run report: <lake>/report/index.html (self-contained) and one PNG per chart."""
    from covidlake.errors import QueryError
    from covidlake.report import write_report
    from covidlake.storage import LocalStorage, open_lake

    storage = open_lake(lake or get_settings().lake_uri)
    if out is None and not isinstance(storage, LocalStorage):
        raise click.UsageError(f"{storage.uri} is not a folder: give an output folder with --out")
    try:
        index = write_report(storage, out)
    except QueryError as err:
        failure = click.ClickException(f"{err.message} (run `covidlake run` first)")
        failure.exit_code = 2  # as `covidlake query` on a lake without data
        raise failure from None
    click.echo(str(index))


@cli.command("load-country-data")
@click.option("--db-url", required=True, help="postgresql://user:password@host:port/covid_data")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=BUNDLED_DATA / "country_data.csv",
    show_default=True,
)
def load_country_data_command(db_url, csv_path) -> None:
    """Create table country_data in any PostgreSQL and load a CSV into it (idempotent)."""
    from covidlake.errors import SchemaError, SourceError
    from covidlake.raw.postgres import load_country_data, redact

    try:
        rows = load_country_data(db_url, csv_path, get_settings())
    except (SchemaError, SourceError) as err:
        raise PipelineError(str(err)) from None
    click.echo(f"loaded {rows} rows into country_data at {redact(db_url)}")


@cli.command("ingest")
@lake_option
@click.option("--source-url", required=True)
@click.option("--db-url", required=True)
@click.option("--force", is_flag=True)
def ingest_command(lake, source_url, db_url, force) -> None:
    """Capture both sources into a lake's raw zone (a folder or s3://), print the result."""
    from covidlake.raw.ingest import ingest
    from covidlake.storage import open_lake

    settings = get_settings()
    try:
        result = ingest(open_lake(lake or settings.lake_uri), source_url, db_url, settings, force=force)
    except Exception as err:
        raise PipelineError(f"{type(err).__name__}: {err}") from err
    click.echo(json.dumps(result.to_dict(), indent=2))


@cli.command("preflight")
@click.option("--stack", "stack_name", required=True, help="the deployed CloudFormation stack")
@click.option("--db-url", default=None, help="reach country_data through this URL (e.g. a port forward)")
@click.option("--region", default=None, help="AWS region [default: your AWS configuration]")
def preflight_command(stack_name, db_url, region) -> None:
    """Check what no template can create (EMR tags, NAT routes, job code, country_data, alert
    subscription) with your AWS credentials; print the fix for each failure."""
    import boto3

    from covidlake.preflight import format_checks, run_preflight

    checks = run_preflight(stack_name, boto3.session.Session(region_name=region), get_settings(), db_url)
    click.echo(format_checks(checks))
    if not all(c.ok for c in checks):
        sys.exit(1)


@cli.command("class-archive")
def class_archive_command() -> None:
    """Build the JVM class archive that shortens Spark's start in local runs (once per JDK
    and Spark install; `make install` runs it). Prints the archive's path."""
    from covidlake.class_archive import archive_path, build_archive

    settings = get_settings()
    if not settings.spark_class_archive:
        click.echo("class archive switched off (COVIDLAKE_SPARK_CLASS_ARCHIVE=false)")
        return
    existing = archive_path(settings)
    if existing is not None and existing.is_file():
        click.echo(f"class archive: {existing} (already built)")
        return
    try:
        path = build_archive(settings)
    except Exception as err:
        raise PipelineError(f"class archive not built: {type(err).__name__}: {err}") from err
    click.echo(f"class archive: {path}" if path else "class archive: this JVM made none (runs go on without it)")


def main() -> None:
    cli(prog_name="covidlake")


cli.add_command(_serve)
cli.add_command(_smoke)

if __name__ == "__main__":
    sys.exit(main())
