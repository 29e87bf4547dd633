"""What every training asset records about its inputs when it writes a registry entry."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from lenslab.params import REPO_ROOT, param
from orchestration.kit.history import latest_tags
from orchestration.kit.stages import Stage


def data_provenance(context: dg.AssetExecutionContext, assets: Sequence[str],
                    dvc_outs: Sequence[str]) -> dict[str, str]:
    """The Dagster data version of each input asset and the dvc.lock hash of each DVC out."""
    from lenslab.dvc_lock import dvc_lock_hashes

    versions = {f"{name} data version": latest_tags(context.instance, dg.AssetKey(name)).get(
        "dagster/data_version", "unknown") for name in assets}
    lock = dvc_lock_hashes(REPO_ROOT / "dvc.lock")
    versions.update({f"{out} (dvc.lock)": lock[out] for out in dvc_outs if out in lock})
    return versions


def stage_params(stage: Stage) -> dict[str, object]:
    """The params.yaml values a stage trained with."""
    return {key: param(key) for key in stage.params}
