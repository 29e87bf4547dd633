"""What each asset reads and writes on disk, declared once.

The same declaration gives the asset its Dagster metadata and code version, and gives `dvc.yaml`
its stage (see orchestration/dvc_stages.py), so the asset graph and the DVC pipeline cannot drift.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from lenslab.params import REPO_ROOT, param

# Code every stage runs: a change here re-runs everything.
COMMON_CODE = ("lenslab/__init__.py", "lenslab/params.py", "lenslab/paths.py",
               "lenslab/atomic.py", "lenslab/errors.py", "lenslab/seeding.py",
               "lenslab/records.py", "orchestration/resources.py", "orchestration/stages.py")

METADATA_KEY = "lenslab/stage"


@dataclass(frozen=True)
class Stage:
    """outs: folders/files under the data root; code: repo paths; params: params.yaml keys.

    persist: outs that are caches the asset updates incrementally; DVC must not delete them
    before the stage runs (it deletes plain outs).
    metrics, plots: files under the data root that `dvc metrics show` / `dvc plots show` read
    (kept out of DVC's cache, like DVC's own metrics files).
    """

    outs: tuple[str, ...]
    code: tuple[str, ...]
    params: tuple[str, ...] = ()
    persist: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    plots: tuple[str, ...] = ()

    def all_code(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*COMMON_CODE, *self.code)))

    def metadata(self) -> dict[str, object]:
        return {METADATA_KEY: {"outs": list(self.outs), "code": list(self.code),
                               "params": list(self.params), "persist": list(self.persist),
                               "metrics": list(self.metrics), "plots": list(self.plots)}}

    def code_version(self) -> str:
        """Hash of the asset's code and of its params.yaml values, as DVC's stage hash.

        Dagster marks the asset unsynced when either changes, and the retraining schedule
        (orchestration/automation.py) re-materialises exactly those assets.
        """
        values = json.dumps({key: param(key) for key in self.params}, sort_keys=True,
                            default=str)
        digest = hashlib.sha256(_hash_paths(self.all_code()).encode())
        digest.update(values.encode())
        return digest.hexdigest()[:16]

    def asset_kwargs(self) -> dict[str, object]:
        """What ``@dg.asset`` takes from the stage: its metadata and its code version."""
        return {"metadata": self.metadata(), "code_version": self.code_version()}


def _files_under(rel: str) -> Iterable[str]:
    path = REPO_ROOT / rel
    if path.is_file():
        yield rel
        return
    for f in sorted(path.rglob("*.py")):
        if "__pycache__" not in f.parts:
            yield f.relative_to(REPO_ROOT).as_posix()


@cache
def _hash_paths(paths: tuple[str, ...]) -> str:
    """Hash of the code an asset runs."""
    digest = hashlib.sha256()
    for rel in paths:
        for f in _files_under(rel):
            digest.update(f.encode())
            digest.update((REPO_ROOT / f).read_bytes())
    return digest.hexdigest()[:16]


def stage_of(metadata: dict) -> Stage | None:
    raw = metadata.get(METADATA_KEY)
    if raw is None:
        return None
    value = getattr(raw, "value", raw)  # a MetadataValue wraps the dict once loaded
    return Stage(tuple(value["outs"]), tuple(value["code"]), tuple(value["params"]),
                 tuple(value.get("persist", ())), tuple(value.get("metrics", ())),
                 tuple(value.get("plots", ())))
