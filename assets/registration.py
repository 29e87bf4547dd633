"""How every training asset writes its registry entry: one `register_model`, one card layout."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from lenslab.params import REPO_ROOT
from orchestration.kit.config import used_values
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


def register_model(context: dg.AssetExecutionContext, family: str, model: Any, *,
                   stage: Stage, configs: Sequence[dg.Config], inputs: Sequence[str],
                   dvc_outs: Sequence[str], card: Mapping[str, Any], problems: Sequence[str],
                   data_root, extra_states: Mapping | None = None, asset: str | None = None):
    """Write ``model`` as a new version of ``family``, promoted only when ``problems`` is empty.

    The card gets, beside what the caller gives (architecture, metrics, backbone, ...): the
    asset that trained the weights (``asset``, by default the registering one) and the code
    version of its ``stage``, the parameter values this run used (launchpad overrides
    included, by params.yaml key), the input data versions and the dvc.lock hashes.
    """
    from models import registry

    for problem in problems:
        context.log.warning(f"{family} model not promoted: {problem}")
    full = {**card,
            "asset": asset or context.asset_key.to_user_string(),
            "code_version": stage.code_version(),
            "params": used_values(*configs),
            "data": data_provenance(context, inputs, dvc_outs)}
    full["metrics"] = {**card.get("metrics", {}), "quality_problems": list(problems)}
    return registry.register(data_root, family, model, card=full, promote=not problems,
                             extra_states=extra_states)


def stage_params(stage: Stage) -> dict[str, object]:
    from lenslab.params import param

    return {key: param(key) for key in stage.params}
