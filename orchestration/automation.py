"""Retraining and new data: what changed since the last materialisation, a weekly schedule that
re-materialises only that, a sensor that watches local source folders, freshness for reports.

"Changed" is what DVC would call a changed stage, read from Dagster's own records: an asset is
re-materialised when it was never materialised, when its code version moved (code or params.yaml
values, see orchestration/kit/stages.py), when one of its outputs is missing on disk, or when an
upstream asset re-runs or has a newer data version than the one it was built from, or when the
last run that set out to materialise it failed (it may have left its outputs half written). An
unchanged model is therefore never retrained.

A run whose process was killed (``kill -9``, a crash, a closed laptop) stays STARTED in the
instance until the daemon's run monitoring notices, and without the daemon it never does:
``fail_dead_runs`` marks such runs failed, so their assets count as changed and re-run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
from dagster._core.launcher import DefaultRunLauncher

from lenslab.params import param
from orchestration.kit.history import INPUT_VERSION_TAG, latest_tags
from orchestration.kit.stages import stage_of


def changed_assets(instance: dg.DagsterInstance, graph, data_root: Path) -> dict[dg.AssetKey, str]:
    """Every asset that must be re-materialised, in topological order, with the reason."""
    reasons: dict[dg.AssetKey, str] = {}
    for key in graph.toposorted_asset_keys:
        reason = _why_changed(instance, graph, key, data_root, reasons)
        if reason:
            reasons[key] = reason
    return reasons


def _why_changed(instance, graph, key: dg.AssetKey, data_root: Path,
                 changed: Mapping[dg.AssetKey, str]) -> str | None:
    node = graph.get(key)
    if instance.get_latest_materialization_event(key) is None:
        return "never materialised"
    tags = latest_tags(instance, key)
    if tags.get("dagster/code_version") != node.code_version:
        return "code or params changed"
    failed_run = _failed_since_materialised(instance, key)
    if failed_run:
        return f"its last run {failed_run[:8]} failed before materialising it"
    stage = stage_of(node.metadata)
    missing = [out for out in (stage.outs if stage else ()) if not (data_root / out).exists()]
    if missing:
        return f"output missing: {missing[0]}"
    for parent in sorted(node.parent_keys):
        name = parent.to_user_string()
        if parent in changed:
            return f"upstream {name} re-runs"
        parent_version = latest_tags(instance, parent).get("dagster/data_version")
        if parent_version != tags.get(INPUT_VERSION_TAG + name):
            return f"upstream {name} has new data"
    return None


def _failed_since_materialised(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    """The id of the run planned after ``key``'s latest materialisation, if it failed."""
    planned = instance.get_latest_planned_materialization_info(key)
    if planned is None:
        return None
    records = instance.get_asset_records([key])
    done = records[0].asset_entry.last_materialization_storage_id if records else None
    if planned.storage_id <= (done or 0):
        return None
    run = instance.get_run_by_id(planned.run_id)
    ended_badly = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
    return run.run_id if run is not None and run.status in ended_badly else None


# --- runs whose process is gone --------------------------------------------------------------

_IN_PROGRESS = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def _run_process(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """(pid, start time) of the process that runs ``run_id``: what its RUN_START event (or,
    before that, its first engine event) recorded; None if nothing recorded one yet."""
    for kind in (dg.DagsterEventType.RUN_START, dg.DagsterEventType.ENGINE_EVENT):
        records = instance.get_records_for_run(run_id, of_type=kind, limit=1).records
        event = records[0].event_log_entry if records else None
        if event is not None and event.dagster_event and event.dagster_event.pid:
            return event.dagster_event.pid, event.timestamp
    return None


def process_alive(pid: int, since: float) -> bool:
    """Whether ``pid`` is a live process that already existed at ``since`` (a Unix time); one
    started later is another process that got the pid back."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in
                    Path("/proc/stat").read_text().splitlines() if line.startswith("btime"))
    except (OSError, StopIteration, IndexError, ValueError):
        return True  # no /proc (macOS): that it exists is all we can tell
    if fields[0] in ("Z", "X"):  # a zombie: dead, its parent just has not reaped it
        return False
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return started <= since + 2.0  # btime has 1 s resolution


def fail_dead_runs(instance: dg.DagsterInstance, *, dry_run: bool = False) -> list[dg.DagsterRun]:
    """Report as failed every STARTING/STARTED run whose process no longer exists; return them.

    Only for instances whose runs run on this machine (the default run launcher): a pid means
    nothing here for runs in other pods. A run with no pid recorded yet is left alone.
    ``dry_run`` finds them without reporting anything.
    """
    if not isinstance(instance.run_launcher, DefaultRunLauncher):
        return []
    dead = []
    for run in instance.get_runs(dg.RunsFilter(statuses=_IN_PROGRESS)):
        process = _run_process(instance, run.run_id)
        if process is None or process_alive(*process):
            continue
        dead.append(run)
        if dry_run:
            continue
        instance.report_run_failed(
            run, f"the run's process (pid {process[0]}) is gone: killed or crashed; marked "
            "failed by lenslab's automation so its assets re-run")
        # a killed run never gives back its pool slots (the gpu pool)
        with contextlib.suppress(NotImplementedError):
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    return dead


def _data_root() -> Path:
    from orchestration.kit.resources import DataRoot

    return DataRoot().layout().root


@dg.schedule(
    cron_schedule=param("automation.retrain_cron"),
    target=dg.AssetSelection.all(),
    name="retrain_changed",
    description="Weekly (params.yaml automation.retrain_cron): re-materialise only the assets "
    "whose code, params or upstream data changed since their last materialisation.",
)
def retrain_changed(context: dg.ScheduleEvaluationContext):
    graph = context.repository_def.asset_graph
    for run in fail_dead_runs(context.instance):
        context.log.warning(f"run {run.run_id} was {run.status.value} with its process gone: "
                            "marked failed, its assets re-run")
    changed = changed_assets(context.instance, graph, _data_root())
    if not changed:
        return dg.SkipReason("nothing changed since the last materialisations: nothing retrained")
    for key, reason in changed.items():
        context.log.info(f"{key.to_user_string()}: {reason}")
    return dg.RunRequest(asset_selection=list(changed),
                         tags={"lenslab/changed": ",".join(k.to_user_string() for k in changed)})


# --- new data in local source folders ------------------------------------------------------

def folder_fingerprint(path: Path) -> str:
    """Names, sizes and modification times of every file under ``path`` (or of ``path``)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        st = f.stat()
        digest.update(f"{f.relative_to(path) if f != path else f.name}\0{st.st_size}\0"
                      f"{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def watched_sources(sources: Mapping[str, Mapping]) -> dict[str, Path]:
    """The sources read from disk (`local` mode with a path): the ones a sensor can watch."""
    return {name: Path(spec["path"]).expanduser() for name, spec in sources.items()
            if spec.get("mode") == "local" and spec.get("path")}


def build_new_data_sensor(sources: Mapping[str, Mapping] | None = None) -> dg.SensorDefinition:
    """One run per source whose folder (or manifest file) changed: the source and everything
    downstream of it. The first tick records what is there and requests nothing."""
    sources = param("sources") if sources is None else sources

    @dg.sensor(
        name="new_source_data",
        minimum_interval_seconds=param("automation.sensor_interval_s"),
        target=dg.AssetSelection.all(),
        description="Watches local-mode source folders and manifests (params.yaml sources.*.path) "
        "and re-ingests a source, and what depends on it, when files or rows appear.",
    )
    def new_source_data(context: dg.SensorEvaluationContext):
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        requests = []
        for name, path in watched_sources(sources).items():
            if not path.exists():
                context.log.warning(f"{name}: watched path {path} does not exist")
                continue
            fingerprint = folder_fingerprint(path)
            previous = seen.get(name)
            seen[name] = fingerprint
            if previous is None or previous == fingerprint:
                continue
            context.log.info(f"{name}: new or changed files under {path}")
            requests.append(dg.RunRequest(
                run_key=f"{name}:{fingerprint}",
                asset_selection=list(
                    dg.AssetSelection.assets(name).downstream().resolve(
                        context.repository_def.asset_graph)),
                tags={"lenslab/new_data": name}))
        context.update_cursor(json.dumps(seen, sort_keys=True))
        if not requests:
            return dg.SkipReason("no new files in the watched sources")
        return requests

    return new_source_data
