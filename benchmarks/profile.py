"""Summarise a Spark event log per SQL execution: wall time, what it wrote or
computed, task time, input, shuffle and spill bytes.

    python -m benchmarks.profile /tmp/covidlake-bench/n1000000/eventlog/local-…
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

SQL_START = "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionStart"
SQL_END = "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionEnd"
METRICS = {
    "internal.metrics.executorRunTime": "task_ms",
    "internal.metrics.input.bytesRead": "input_bytes",
    "internal.metrics.shuffle.write.bytesWritten": "shuffle_write_bytes",
    "internal.metrics.diskBytesSpilled": "spill_bytes",
}


def _what(plan: str, description: str) -> str:
    first = plan.splitlines()[1] if plan.count("\n") else plan
    written = re.search(r"InsertIntoHadoopFsRelationCommand (\S+)", plan)
    if written:
        parts = [p for p in written.group(1).rstrip(",").split("/") if p]
        return "write " + "/".join(parts[-2:])
    for op in ("HashAggregate", "Window", "SortMergeJoin", "BroadcastHashJoin", "Scan csv", "Scan parquet"):
        if op in plan:
            return f"{description[:40]} ({first.strip()[:60]})"
    return description[:60]


def summarise_event_log(path: Path) -> list[dict]:
    executions: dict[int, dict] = {}
    stage_execution: dict[int, int] = {}
    for line in Path(path).read_text().splitlines():
        event = json.loads(line)
        kind = event.get("Event")
        if kind == SQL_START:
            executions[event["executionId"]] = {
                "id": event["executionId"],
                "what": _what(event.get("physicalPlanDescription", ""), event.get("description", "")),
                "start": event["time"],
                "stages": 0,
                **{v: 0 for v in METRICS.values()},
            }
        elif kind == SQL_END and event["executionId"] in executions:
            executions[event["executionId"]]["end"] = event["time"]
        elif kind == "SparkListenerJobStart":
            execution = (event.get("Properties") or {}).get("spark.sql.execution.id")
            if execution is not None:
                for stage in event.get("Stage IDs", []):
                    stage_execution[stage] = int(execution)
        elif kind == "SparkListenerStageCompleted":
            info = event["Stage Info"]
            execution = executions.get(stage_execution.get(info["Stage ID"], -1))
            if execution is None:
                continue
            execution["stages"] += 1
            for acc in info.get("Accumulables", []):
                key = METRICS.get(acc.get("Name"))
                if key:
                    execution[key] += int(acc.get("Value", 0))
    out = []
    for e in executions.values():
        e["wall_ms"] = e.pop("end", e["start"]) - e.pop("start")
        out.append(e)
    return out


def format_profile(rows: list[dict], top: int = 12) -> str:
    rows = sorted(rows, key=lambda r: r["wall_ms"], reverse=True)[:top]
    lines = [
        "| SQL execution | wall s | task s | stages | input MB | shuffle write MB | spill MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['what']} | {r['wall_ms'] / 1000:.1f} | {r['task_ms'] / 1000:.1f} | {r['stages']} | "
            f"{r['input_bytes'] / 1e6:,.0f} | {r['shuffle_write_bytes'] / 1e6:,.0f} | {r['spill_bytes'] / 1e6:,.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_profile(summarise_event_log(Path(sys.argv[1]))))
