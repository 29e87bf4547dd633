"""Held-out metrics with honest uncertainty: accuracy, ROC-AUC, grouped bootstrap 95% intervals.

Test items are rarely independent: pose pairs share sites, photobook pairs share photos (and
bursts), style photos share base scenes, aesthetics ratings share workers. Resampling the items
as if independent makes the interval too narrow. Every interval here is a percentile *cluster*
bootstrap: the independent unit (photo, burst, base scene, site, worker) is resampled with
replacement and each item enters the resample as often as its unit was drawn. An item that
depends on two units (a pair of photos) enters ``count(a) * count(b)`` times, the product
("pigeonhole") bootstrap for crossed designs. Every interval is seeded per metric name.

Where only two or three units exist (test sites), no bootstrap over them means much;
:func:`repeated_group_kfold` gives the spread of a figure over several seeded group splits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from lenslab.seeding import rng

Metric = Callable[[np.ndarray, np.ndarray], float]


def accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p >= 0.5) == (y == 1)))


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    # sklearn on first use: asset modules import this file, and every step start-up pays for it
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def unit_codes(groups: np.ndarray | Sequence) -> tuple[np.ndarray, int]:
    """(integer code per item and column, number of distinct units): ``groups`` is one unit
    label per item, shape (n,), or the units an item depends on, shape (n, k)."""
    g = np.asarray(groups, dtype=object)
    flat = g.reshape(len(g), -1)
    _, codes = np.unique(flat.astype(str).ravel(), return_inverse=True)
    return codes.reshape(flat.shape), int(codes.max()) + 1 if codes.size else 0


def resample_items(codes: np.ndarray, n_units: int, r: np.random.Generator) -> np.ndarray:
    """Item indices of one cluster-bootstrap resample (an item repeated as its units were)."""
    counts = np.bincount(r.integers(0, n_units, n_units), minlength=n_units)
    weight = counts[codes].prod(axis=1)
    return np.repeat(np.arange(len(codes)), weight)


def bootstrap_ci(
    y: np.ndarray, p: np.ndarray, metric: Metric, *, groups: np.ndarray | Sequence,
    resamples: int, seed: int, name: str, level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of ``metric`` over cluster resamples of the units in ``groups``
    (seeded per name). Pass each item's own id as its group for independent items."""
    y, p = np.asarray(y), np.asarray(p)
    codes, n_units = unit_codes(groups)
    if len(codes) != len(y):
        raise ValueError(f"{len(codes)} group labels for {len(y)} items")
    if n_units == 0:
        return float("nan"), float("nan")
    r = rng(seed, "bootstrap", name)
    stats = []
    for _ in range(resamples):
        idx = resample_items(codes, n_units, r)
        if len(idx) == 0:
            continue
        value = metric(y[idx], p[idx])
        if np.isfinite(value):  # AUC is undefined on a resample with one class
            stats.append(value)
    if not stats:
        return float("nan"), float("nan")
    lo, hi = np.percentile(stats, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def n_units(groups: np.ndarray | Sequence) -> int:
    return unit_codes(groups)[1]


def interval(y: np.ndarray, p: np.ndarray, metric: Metric, *, groups: np.ndarray | Sequence,
             unit: str, resamples: int, seed: int, name: str) -> dict[str, object]:
    """A figure with its grouped 95% interval, what was resampled and how many of them."""
    y, p = np.asarray(y), np.asarray(p)
    return {"value": metric(y, p), "n": len(y),
            "ci95": bootstrap_ci(y, p, metric, groups=groups, resamples=resamples, seed=seed,
                                 name=name),
            "unit": unit, "units": n_units(groups)}


def binary_metrics(y: np.ndarray, p: np.ndarray, *, groups: np.ndarray | Sequence, unit: str,
                   resamples: int, seed: int, name: str) -> dict[str, object]:
    """Accuracy and ROC-AUC with grouped 95% bootstrap intervals, and the confusion matrix."""
    from sklearn.metrics import confusion_matrix

    y, p = np.asarray(y), np.asarray(p, dtype=float)
    cm = confusion_matrix(y, (p >= 0.5).astype(int), labels=[0, 1])
    kw = {"groups": groups, "resamples": resamples, "seed": seed}
    return {
        "n": len(y),
        "accuracy": accuracy(y, p),
        "accuracy_ci95": bootstrap_ci(y, p, accuracy, name=f"{name}/accuracy", **kw),
        "roc_auc": roc_auc(y, p),
        "roc_auc_ci95": bootstrap_ci(y, p, roc_auc, name=f"{name}/roc_auc", **kw),
        "resampling": {"unit": unit, "units": n_units(groups)},
        "confusion": {"rows_true_0_1": cm.tolist()},
    }


def paired_difference(
    y: np.ndarray, p_model: np.ndarray, p_base: np.ndarray, metric: Metric, *,
    groups: np.ndarray | Sequence, unit: str, resamples: int, seed: int, name: str,
) -> dict[str, object]:
    """metric(model) - metric(baseline) on the same cluster resamples, so the interval reflects
    the paired comparison (both scored the same units)."""
    both = np.stack([np.asarray(p_model, float), np.asarray(p_base, float)], axis=1)

    def diff(yy: np.ndarray, pp: np.ndarray) -> float:
        return metric(yy, pp[:, 0]) - metric(yy, pp[:, 1])

    return {"difference": diff(np.asarray(y), both),
            "ci95": bootstrap_ci(y, both, diff, groups=groups, resamples=resamples, seed=seed,
                                 name=name),
            "unit": unit, "units": n_units(groups)}


def paired_auc_difference(
    y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, *, groups: np.ndarray | Sequence,
    unit: str, resamples: int, seed: int, name: str,
) -> dict[str, object]:
    """AUC(a) - AUC(b) on the same grouped resamples."""
    return paired_difference(y, p_a, p_b, roc_auc, groups=groups, unit=unit,
                             resamples=resamples, seed=seed, name=name)


def repeated_group_kfold(
    groups: np.ndarray | Sequence, evaluate: Callable[[np.ndarray, np.ndarray], float], *,
    folds: int, repeats: int, seed: int, name: str,
) -> dict[str, object]:
    """The spread of a figure over seeded group splits, for when too few units exist for a
    bootstrap over them: each repeat shuffles the units, cuts them into ``folds`` folds, and
    ``evaluate(train_mask, test_mask)`` (boolean masks over the items; refit on train, score on
    test) runs once per fold. Returns every value with their mean, sd, min and max."""
    codes, units = unit_codes(groups)
    codes = codes[:, 0]
    if units < folds:
        raise ValueError(f"{folds} folds need at least {folds} groups, got {units}")
    values = []
    for rep in range(repeats):
        order = rng(seed, "group_kfold", name, rep).permutation(units)
        fold_of = np.empty(units, dtype=int)
        fold_of[order] = np.arange(units) % folds
        for k in range(folds):
            test = fold_of[codes] == k
            values.append(float(evaluate(~test, test)))
    v = np.asarray(values)
    ok = v[np.isfinite(v)]
    return {"values": values, "mean": float(ok.mean()) if len(ok) else float("nan"),
            "sd": float(ok.std(ddof=1)) if len(ok) > 1 else float("nan"),
            "min": float(ok.min()) if len(ok) else float("nan"),
            "max": float(ok.max()) if len(ok) else float("nan"),
            "folds": folds, "repeats": repeats, "groups": units}


def format_ci(value: float, ci: Sequence[float]) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
