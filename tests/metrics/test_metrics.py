"""The grouped (cluster) bootstrap against a known random-effects model, and its relatives."""

import numpy as np
import pytest

from lenslab import metrics

SIGMA_GROUP, SIGMA_ITEM, GROUPS, PER_GROUP = 1.0, 1.0, 20, 8


def _mean(y: np.ndarray, _: np.ndarray) -> float:
    return float(np.mean(y))


def _clustered(r: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """y_ij = a_i + e_ij, a_i ~ N(0, 1), e_ij ~ N(0, 1): items of a group share a_i."""
    groups = np.repeat(np.arange(GROUPS), PER_GROUP)
    y = r.normal(0, SIGMA_GROUP, GROUPS)[groups] + r.normal(0, SIGMA_ITEM, len(groups))
    return y, groups


def test_grouped_interval_is_wider_than_naive_and_matches_the_sampling_distribution():
    r = np.random.default_rng(0)
    # the sampling distribution of the mean under the model, simulated over many datasets,
    # and its closed form sqrt((s_a^2 + s_e^2 / m) / G) as a cross-check of the simulation
    true_sd = np.std([_clustered(r)[0].mean() for _ in range(4000)])
    closed = np.sqrt((SIGMA_GROUP**2 + SIGMA_ITEM**2 / PER_GROUP) / GROUPS)
    assert true_sd == pytest.approx(closed, rel=0.05)

    grouped_sd, naive_sd, grouped_cover, naive_cover = [], [], [], []
    for k in range(60):
        y, groups = _clustered(r)
        kw = {"resamples": 400, "seed": k, "name": "sim"}
        g = metrics.bootstrap_ci(y, y, _mean, groups=groups, **kw)
        n = metrics.bootstrap_ci(y, y, _mean, groups=np.arange(len(y)), **kw)
        grouped_sd.append((g[1] - g[0]) / (2 * 1.96))
        naive_sd.append((n[1] - n[0]) / (2 * 1.96))
        grouped_cover.append(g[0] <= 0 <= g[1])
        naive_cover.append(n[0] <= 0 <= n[1])
    # the naive interval treats 160 correlated items as independent: far too narrow
    assert np.mean(naive_sd) < 0.6 * np.mean(grouped_sd)
    # the grouped one estimates the true spread (a percentile bootstrap over G groups is
    # short by about sqrt((G - 1) / G) = 0.975), and covers the true mean about 95% of the time
    assert np.mean(grouped_sd) == pytest.approx(true_sd, rel=0.12)
    assert np.mean(grouped_cover) >= 0.85 and np.mean(naive_cover) < 0.8


def test_independent_items_give_the_same_interval_as_an_item_bootstrap():
    r = np.random.default_rng(1)
    y = r.normal(size=400)
    g = metrics.bootstrap_ci(y, y, _mean, groups=np.arange(400), resamples=2000, seed=1,
                             name="x")
    se = y.std() / np.sqrt(len(y))
    assert (g[1] - g[0]) / (2 * 1.96) == pytest.approx(se, rel=0.1)


def test_a_pair_enters_a_resample_once_per_draw_of_each_of_its_two_units():
    codes = np.array([[0, 1], [1, 1], [2, 0]])
    r = np.random.default_rng(3)
    counts = np.bincount(np.random.default_rng(3).integers(0, 3, 3), minlength=3)
    idx = metrics.resample_items(codes, 3, r)
    expected = [counts[0] * counts[1], counts[1] ** 2, counts[2] * counts[0]]
    assert np.bincount(idx, minlength=3).tolist() == expected


def test_binary_and_paired_figures_record_their_unit_and_are_seeded():
    r = np.random.default_rng(1)
    y = np.repeat([0, 1], 50)
    p = np.clip(y * 0.3 + r.random(100) * 0.7, 0, 1)
    groups = np.arange(100) // 4
    m = metrics.binary_metrics(y, p, groups=groups, unit="photo", resamples=300, seed=3,
                               name="x")
    lo, hi = m["roc_auc_ci95"]
    assert lo < m["roc_auc"] < hi and m["resampling"] == {"unit": "photo", "units": 25}
    again = metrics.binary_metrics(y, p, groups=groups, unit="photo", resamples=300, seed=3,
                                   name="x")
    assert again["roc_auc_ci95"] == (lo, hi)
    d = metrics.paired_auc_difference(y, p, r.random(100), groups=groups, unit="photo",
                                      resamples=300, seed=3, name="d")
    assert d["ci95"][0] < d["difference"] < d["ci95"][1] and d["difference"] > 0.2


def test_repeated_group_kfold_tests_every_group_once_per_repeat():
    groups = np.repeat(["s1", "s2", "s3"], 4)
    seen = []

    def evaluate(train: np.ndarray, test: np.ndarray) -> float:
        assert not (train & test).any() and (train | test).all()
        assert set(groups[train]).isdisjoint(groups[test])
        seen.append(tuple(sorted(set(groups[test]))))
        return float(test.sum())

    out = metrics.repeated_group_kfold(groups, evaluate, folds=3, repeats=2, seed=0, name="s")
    assert len(out["values"]) == 6 and out["mean"] == 4.0 and out["sd"] == 0.0
    assert sorted(seen[:3]) == sorted(seen[3:]) == [("s1",), ("s2",), ("s3",)]
    with pytest.raises(ValueError, match="at least 4 groups"):
        metrics.repeated_group_kfold(groups, evaluate, folds=4, repeats=1, seed=0, name="s")
