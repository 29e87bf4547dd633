"""Pick the torch device: CUDA when present, CPU otherwise, or whatever the caller names."""

from __future__ import annotations

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
