"""Weights on disk: state_dicts written atomically, read back with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def save_state(model: nn.Module, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)


def load_state(model: nn.Module, path: Path) -> nn.Module:
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model
