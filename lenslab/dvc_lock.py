"""What the last `dvc repro` recorded: the hashes of the pipeline's outputs in dvc.lock."""

from __future__ import annotations

from pathlib import Path

import yaml


def dvc_lock_hashes(lock_file: Path) -> dict[str, str]:
    """{out path: md5} from dvc.lock (the hashes of the last `dvc repro`); empty if none."""
    if not lock_file.is_file():
        return {}
    lock = yaml.safe_load(lock_file.read_text(encoding="utf-8")) or {}
    hashes = {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            hashes[out["path"]] = out.get("md5", "")
    return hashes
