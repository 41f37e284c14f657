"""`covidlake run` progress lines: a terminal sees each stage start and then
completed in place; a pipe or file gets one line per stage."""

from __future__ import annotations

import io

from covidlake.cli import StageLines
from covidlake.runner import RunReport, timed


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_two_stages(stream) -> None:
    report = RunReport(lake="x", progress=StageLines(stream))
    with timed(report, "database"):
        stream.seen_at_start = stream.getvalue()
    try:
        with timed(report, "etl"):
            raise ValueError("boom")
    except ValueError:
        pass


def test_terminal_shows_the_stage_while_it_runs():
    out = Terminal()
    run_two_stages(out)
    assert out.seen_at_start == "  database (embedded PostgreSQL) …"
    lines = out.getvalue().split("\n")
    assert lines[0].startswith("  database (embedded PostgreSQL) …\r\033[K  database (embedded PostgreSQL)")
    assert "failed" in lines[1] and lines[1].startswith("  ETL raw -> trusted") and "…\r\033[K" in lines[1]


def test_not_a_terminal_gets_one_line_per_stage_when_it_ends():
    out = io.StringIO()
    run_two_stages(out)
    assert out.seen_at_start == ""
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("  database (embedded PostgreSQL)") and lines[0].endswith(" s")
    assert "\r" not in out.getvalue() and "failed" in lines[1]
