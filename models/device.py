"""Pick the torch device: CUDA when present, CPU otherwise, or whatever the caller names."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch


def pick_device(preference: str = "auto") -> torch.device:
    """``auto`` → ``cuda`` if available else ``cpu``; any other value is used as given."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {preference!r} requested but CUDA is not available")
    return device


def describe(device: torch.device) -> str:
    """A short human description for logs and metadata."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


@dataclass(frozen=True)
class Precision:
    """How a device computes: an autocast dtype (None: full precision) and whether gradients
    need a GradScaler (float16 only: its small range underflows small gradients to zero)."""

    device_type: str
    dtype: torch.dtype | None
    scaled: bool

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler:
        """A GradScaler, a pass-through unless float16 needs it: use it for every step."""
        return torch.amp.GradScaler(self.device_type, enabled=self.scaled)


def choose_precision(device: torch.device) -> Precision:
    """bfloat16 on CUDA GPUs that support it (float32's range: no scaler); float16 with a
    GradScaler on those that do not; full precision on CPU, where autocast makes these small
    convolutional networks slower."""
    if device.type != "cuda":
        return Precision(device.type, None, False)
    if torch.cuda.is_bf16_supported():
        return Precision("cuda", torch.bfloat16, False)
    return Precision("cuda", torch.float16, True)


def mixed_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast for inference (no gradients, so no scaler): see :func:`choose_precision`."""
    return choose_precision(device).autocast()
