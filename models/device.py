"""Pick the torch device: CUDA when present, CPU otherwise, or whatever the caller names."""

from __future__ import annotations

import contextlib

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


def mixed_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast where it helps: bfloat16 (or float16) on CUDA; full precision on CPU.

    On CPU, autocast makes these small convolutional networks slower, so it stays off there.
    bfloat16 keeps float32's range, so no gradient scaler is needed on GPUs that support it.
    """
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)
