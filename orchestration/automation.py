"""Retraining and new data: what changed since the last materialisation, a weekly schedule that
re-materialises only that, a sensor that watches local source folders, freshness for reports.

"Changed" is what DVC would call a changed stage, read from Dagster's own records: an asset is
re-materialised when it was never materialised, when its code version moved (code or params.yaml
values, see orchestration/kit/stages.py), when one of its outputs is missing on disk, or when an
upstream asset re-runs or has a newer data version than the one it was built from. An unchanged
model is therefore never retrained.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import dagster as dg

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
