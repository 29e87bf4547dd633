"""Column standardisation fitted on training rows only: the one standardiser of every system."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Standardiser:
    """``(x - mean) / std`` per column; a constant column keeps std 1 (it stays constant)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, rows: np.ndarray | None = None) -> Standardiser:
        """Fitted on ``x[rows]`` (a mask or indices; all rows when None): no peeking at
        validation or test rows."""
        fit_on = x if rows is None else x[rows]
        std = fit_on.std(axis=0)
        return cls(fit_on.mean(axis=0), np.where(std > 1e-9, std, 1.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std
