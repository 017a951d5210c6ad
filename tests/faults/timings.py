"""Where a fault suite's time goes: each run's wall time and kind, the whole suite's wall time and
the machine's busy CPU time, written as JSON when TSE_FAULT_TIMINGS names a file (.ci/run does:
reports/fault-timings.json), for docs/faults.md's price per fault and the benchmark's comparison."""
from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

TIMINGS_VARIABLE = "TSE_FAULT_TIMINGS"


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (every state but idle and iowait)."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return {"cores": os.cpu_count(), "cpu": model, "host": platform.node(), "date": now}


def fault_kind(fault, stack_changing_only: set) -> str:
    """abort, swarm, alert (its run waits for an alert to fire and resolve), stack-changing or plain."""
    if fault.aborts:
        return "abort"
    if fault.stack == "swarm":
        return "swarm"
    if "alert_fires" in fault.fails:
        return "alert"
    return "stack-changing" if fault.fails & stack_changing_only else "plain"


# The kinds by their runs' length (CI's figures in docs/faults.md), longest first.
LONGEST_FIRST = ("alert", "abort", "stack-changing", "plain")  # a shared run's faults are all plain


def start_rank(fault, stack_changing_only: set) -> tuple:
    """Where a compose fault's run starts among the others: longest first, so that no long run starts
    last and leaves the other cores idle at the end. Among the plain ones, those naming a section 7
    scenario first: those scenarios wait for Prometheus's scrapes and Alertmanager's notifications."""
    kind = fault_kind(fault, stack_changing_only)
    waits_on_prometheus = any(tag.startswith("checklist_7_") for tag in fault.fails)
    return LONGEST_FIRST.index(kind), not waits_on_prometheus


def run_kind(faults: tuple, stack_changing_only: set) -> str:
    """A run's kind: its fault's, or `shared` for several faults in one run (tests/faults/sharing.py)."""
    return "shared" if len(faults) > 1 else fault_kind(faults[0], stack_changing_only)


def summary(scope: str, jobs: int, wall_s: float, busy_cpu_s: float, runs: list, stack_changing_only: set) -> dict:
    """The suite's figures; `runs` are the FaultRuns that ended."""
    figures = [{"faults": [fault.name for fault in run.faults], "kind": run_kind(run.faults, stack_changing_only),
                "own_images": run.own_images, "seconds": round(run.seconds, 1)}
               for run in sorted(runs, key=lambda run: run.faults[0].name)]
    return {"machine": machine(), "scope": scope, "jobs": jobs, "faults_run": sum(len(run.faults) for run in runs),
            "runs": len(runs), "wall_s": round(wall_s, 1), "busy_cpu_s": round(busy_cpu_s, 1), "faults": figures}


def write_timings(figures: dict) -> None:
    """Write `figures` where TSE_FAULT_TIMINGS says, if it says."""
    path = os.environ.get(TIMINGS_VARIABLE)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(figures, indent=2) + "\n")
