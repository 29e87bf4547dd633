"""One line per asset as it finishes, read from the instance's event log while a run goes on.

`dg launch` prints every Dagster event (hundreds of lines); `orchestration.launch` sends those to
a log file and prints this instead: `[3/32] image_catalog  12.4 s  images 1,234`, then a summary.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import dagster as dg

EVENTS = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.ASSET_MATERIALIZATION,
          dg.DagsterEventType.STEP_FAILURE}
# the figure a line shows: the first metadata key that ends with one of these, in this order
HEADLINE_SUFFIXES = ("test_auc", "_top1", "test_accuracy", "val_spearman", "accuracy",
                     "records", "images", "pairs", "rows", "runs")


def headline(metadata: Mapping[str, object]) -> str:
    """One figure from an asset's materialisation metadata, e.g. ``test_top1 0.93``."""
    for suffix in HEADLINE_SUFFIXES:
        for key, value in metadata.items():
            raw = getattr(value, "value", value)
            if key.endswith(suffix) and isinstance(raw, int | float) and not isinstance(raw, bool):
                return f"{key} {raw:,.4g}" if isinstance(raw, float) else f"{key} {raw:,}"
    return ""


def _new_run(instance: dg.DagsterInstance, known: set[str]) -> str | None:
    runs = instance.get_runs(limit=5)
    fresh = [r for r in runs if r.run_id not in known]
    return fresh[0].run_id if fresh else None


def follow(command: Sequence[str], expected: int, log_path: Path,
           echo: Callable[[str], None] = print, poll_s: float = 1.0) -> int:
    """Run ``command`` (a `dg launch`) with its output in ``log_path``; echo a line per asset
    materialised or step failed as the run records it; return the command's exit code."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with dg.DagsterInstance.get() as instance, log_path.open("w") as log:
        known = {r.run_id for r in instance.get_runs(limit=5)}
        process = subprocess.Popen(list(command), stdout=log, stderr=subprocess.STDOUT)
        run_id, seen, started, done, failed = None, 0, {}, 0, []
        while True:
            exited = process.poll() is not None
            run_id = run_id or _new_run(instance, known)
            if run_id:
                records = instance.all_logs(run_id, of_type=EVENTS)
                for record in records[seen:]:
                    event = record.dagster_event
                    step = event.step_key or "?"
                    if event.event_type == dg.DagsterEventType.STEP_START:
                        started[step] = record.timestamp
                    elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
                        done += 1
                        seconds = record.timestamp - started.get(step, record.timestamp)
                        name = event.asset_key.to_user_string()
                        figure = headline(record.asset_materialization.metadata)
                        echo(f"[{done}/{expected}] {name:<24} {seconds:7.1f} s  {figure}")
                    else:
                        failed.append(step)
                        echo(f"[failed] {step}: see {log_path}")
                seen = len(records)
            if exited:
                break
            time.sleep(poll_s)
    status = "finished" if process.returncode == 0 and not failed else "FAILED"
    echo(f"{status}: {done} of {expected} assets materialised in "
         f"{time.monotonic() - start:.0f} s" + (f"; failed: {', '.join(failed)}" if failed
                                                 else "") + f"; Dagster's log: {log_path}")
    return process.returncode or (1 if failed else 0)
