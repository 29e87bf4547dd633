"""Weights on disk: written atomically, read back with ``weights_only=True``.

Every checkpoint and model file goes through :func:`save_object`: it is written to a temporary
file beside its destination, fsync'd and renamed into place, so a run killed mid-write (SIGKILL,
a full disk) leaves the previous file or none, never a torn one that a resume would choke on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from lenslab.atomic import atomic_open


def save_object(obj: Any, path: Path) -> None:
    """``torch.save(obj, path)``, atomically."""
    with atomic_open(Path(path), "wb") as fh:
        torch.save(obj, fh)


def save_state(model: nn.Module, path: Path) -> None:
    save_object(model.state_dict(), path)


def load_state(model: nn.Module, path: Path) -> nn.Module:
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model
