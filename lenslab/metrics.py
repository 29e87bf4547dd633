"""Held-out metrics with honest uncertainty: accuracy, ROC-AUC, bootstrap 95% intervals.

Every interval is a percentile bootstrap over the test items, seeded per metric name so reports
are reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score

from lenslab.seeding import rng


def accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p >= 0.5) == (y == 1)))


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def bootstrap_ci(
    y: np.ndarray, p: np.ndarray, metric: Callable[[np.ndarray, np.ndarray], float],
    *, resamples: int, seed: int, name: str, level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of ``metric`` over resamples of the test images (seeded per name)."""
    r = rng(seed, "bootstrap", name)
    stats = []
    for _ in range(resamples):
        idx = r.integers(0, len(y), len(y))
        if len(np.unique(y[idx])) == 2:  # AUC needs both classes in the resample
            stats.append(metric(y[idx], p[idx]))
    lo, hi = np.percentile(stats, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def binary_metrics(y: np.ndarray, p: np.ndarray, *, resamples: int, seed: int,
             name: str) -> dict[str, object]:
    """Accuracy and ROC-AUC with 95% bootstrap intervals, and the confusion matrix."""
    y, p = np.asarray(y), np.asarray(p, dtype=float)
    cm = confusion_matrix(y, (p >= 0.5).astype(int), labels=[0, 1])
    return {
        "n": len(y),
        "accuracy": accuracy(y, p),
        "accuracy_ci95": bootstrap_ci(y, p, accuracy, resamples=resamples, seed=seed,
                                      name=f"{name}/accuracy"),
        "roc_auc": roc_auc(y, p),
        "roc_auc_ci95": bootstrap_ci(y, p, roc_auc, resamples=resamples, seed=seed,
                                     name=f"{name}/roc_auc"),
        "confusion": {"rows_true_0_1": cm.tolist()},
    }


def paired_auc_difference(
    y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, *, resamples: int, seed: int, name: str,
) -> dict[str, object]:
    """AUC(a) - AUC(b) on the same resamples, so the interval reflects the paired comparison."""
    both = np.stack([p_a, p_b], axis=1)

    def diff(yy: np.ndarray, pp: np.ndarray) -> float:
        return roc_auc(yy, pp[:, 0]) - roc_auc(yy, pp[:, 1])

    lo, hi = bootstrap_ci(y, both, diff, resamples=resamples, seed=seed, name=name)
    return {"difference": diff(np.asarray(y), both), "ci95": (lo, hi)}


def format_ci(value: float, ci: Sequence[float]) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
