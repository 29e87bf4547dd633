"""Deterministic seeds: every random draw derives its generator from the root seed and a name."""

from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(root_seed: int, *names: str | int) -> int:
    """A stable 63-bit seed for the stream called ``names`` under ``root_seed``."""
    key = "/".join([str(root_seed), *map(str, names)]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1


def rng(root_seed: int, *names: str | int) -> np.random.Generator:
    """A numpy Generator for the named stream; the same names always give the same draws."""
    return np.random.default_rng(derive_seed(root_seed, *names))
