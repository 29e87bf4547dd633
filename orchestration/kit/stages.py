"""What each asset reads and writes on disk, declared once.

The same declaration gives the asset its Dagster metadata and code version, and gives `dvc.yaml`
its stage (see orchestration/dvc_stages.py), so the asset graph and the DVC pipeline cannot drift.
The code an asset runs is never listed: it is its module's project imports, followed transitively
(orchestration/kit/code_deps.py), plus the non-Python files it declares in ``extra_code``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from lenslab.params import REPO_ROOT, param
from orchestration.kit.code_deps import code_files

METADATA_KEY = "lenslab/stage"


@dataclass(frozen=True)
class Stage:
    """module: the asset module (``__name__``); outs: folders/files under the data root;
    params: params.yaml keys; extra_code: repo files the asset runs that no import reaches
    (a script it starts as a subprocess).

    persist: outs that are caches the asset updates incrementally; DVC must not delete them
    before the stage runs (it deletes plain outs).
    metrics, plots: files under the data root that `dvc metrics show` / `dvc plots show` read
    (cached by DVC, so each commit and experiment keeps its own).
    """

    module: str
    outs: tuple[str, ...]
    params: tuple[str, ...] = ()
    persist: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    plots: tuple[str, ...] = ()
    extra_code: tuple[str, ...] = ()

    def all_code(self, root: Path = REPO_ROOT) -> tuple[str, ...]:
        """Every repository file the asset runs: derived imports, then the declared extras."""
        return tuple(dict.fromkeys((*code_files(self.module, root), *self.extra_code)))

    def metadata(self) -> dict[str, object]:
        return {METADATA_KEY: {"module": self.module, "outs": list(self.outs),
                               "params": list(self.params), "persist": list(self.persist),
                               "metrics": list(self.metrics), "plots": list(self.plots),
                               "extra_code": list(self.extra_code)}}

    def code_version(self, root: Path = REPO_ROOT) -> str:
        """Hash of the asset's code and of its params.yaml values, as DVC's stage hash.

        Dagster marks the asset unsynced when either changes, and the retraining schedule
        (orchestration/automation.py) re-materialises exactly those assets.
        """
        values = json.dumps({key: param(key) for key in self.params}, sort_keys=True,
                            default=str)
        digest = hashlib.sha256()
        for rel in self.all_code(root):
            digest.update(rel.encode() + b"\0")
            digest.update((root / rel).read_bytes())
        digest.update(values.encode())
        return digest.hexdigest()[:16]

    def asset_kwargs(self) -> dict[str, object]:
        """What ``@dg.asset`` takes from the stage: its metadata and its code version."""
        return {"metadata": self.metadata(), "code_version": self.code_version()}


def stage_of(metadata: dict) -> Stage | None:
    raw = metadata.get(METADATA_KEY)
    if raw is None:
        return None
    value = getattr(raw, "value", raw)  # a MetadataValue wraps the dict once loaded
    return Stage(value["module"], tuple(value["outs"]), tuple(value["params"]),
                 tuple(value.get("persist", ())), tuple(value.get("metrics", ())),
                 tuple(value.get("plots", ())), tuple(value.get("extra_code", ())))
