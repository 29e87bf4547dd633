"""The one home of the project's parameters: `params.yaml` at the repository root."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
PARAMS_FILE = Path(os.environ.get("LENSLAB_PARAMS", REPO_ROOT / "params.yaml"))


@cache
def load_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    """Read params.yaml once per process (it is the source of every Config default)."""
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def param(dotted: str, default: Any = None) -> Any:
    """Look up a dotted key such as ``sources.oxford_pets.mode``."""
    node: Any = load_params()
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node
