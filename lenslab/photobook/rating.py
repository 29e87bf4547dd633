"""Photobook rater, the plain logic: photo splits, master vectors, calibration, album selection.

A master vector ``v`` scores a photo by ``s = e . v`` (``e`` its embedding); the probability that
photo A beats photo B is ``sigmoid(a * (s_A - s_B))``, a Bradley-Terry form whose one scale ``a``
is fitted on validation pairs (Platt scaling without an intercept, so P(A>B) = 1 - P(B>A)).

The learned vector is a logistic ranking model on embedding differences (the seed's RankSVM with a
log loss, so that its outputs are probabilities), fitted on standardised embeddings; its weights
divided by the standard deviations give the vector in the embedding space. Photos, not pairs, are
split: near-duplicates (bursts) are grouped first so a burst never straddles two splits; a pair is
a training pair when both photos are training photos, a test pair when it shows a test photo, and
a validation pair otherwise. "Strict" test pairs show two test photos: the headline figures
are on those (a pair with one training photo partly measures the fitted photo).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lenslab.scaling import Standardiser
from lenslab.seeding import rng

SOURCE = "photo_preferences"
SPLITS = ("train", "val", "test")
LEARNED = "learned"
TIER_LABEL = "tier"
SCENE_LABEL = "scene"  # the user's scenes.csv (lenslab.formats.scenes)


@dataclass(frozen=True)
class PhotobookLayout:
    # the stage folders under the data root (the assets' Stage outs name these)
    EMBEDDINGS = "photobook/embeddings"
    VECTORS = "photobook/master_vectors"
    RATER = "photobook/rater"
    REPORT = "reports/photobook"

    root: Path

    @property
    def embeddings(self) -> Path:
        return self.root / self.EMBEDDINGS / "embeddings.parquet"

    @property
    def vectors_dir(self) -> Path:
        return self.root / self.VECTORS

    @property
    def vectors(self) -> Path:
        return self.vectors_dir / "vectors.npz"

    @property
    def provenance(self) -> Path:
        return self.vectors_dir / "master_vectors.json"

    @property
    def splits(self) -> Path:
        return self.vectors_dir / "photo_splits.parquet"

    @property
    def rater_dir(self) -> Path:
        return self.root / self.RATER

    @property
    def rater(self) -> Path:
        return self.rater_dir / "rater.json"

    @property
    def predictions(self) -> Path:
        return self.rater_dir / "test_predictions.parquet"

    @property
    def report(self) -> Path:
        return self.root / self.REPORT

    def ground_truth(self) -> Path:
        return self.root / "raw" / SOURCE / "ground_truth" / "quality.csv"

    def pairs(self) -> Path:
        return self.root / "raw" / SOURCE / "pairs.parquet"


def photo_rows(catalog: pd.DataFrame, sources: list[str]) -> pd.DataFrame:
    """Distinct catalog images of ``sources`` (image_id, sha256, normalised_path, source, tier,
    scene: the user's scenes.csv, null where it says nothing)."""
    rows = catalog[catalog["source"].isin(sources) & catalog["duplicate_of"].isna()]
    if rows.empty:
        raise ValueError(f"the catalog holds no images of {sources}")
    out = rows[["image_id", "sha256", "normalised_path", "source"]].copy()
    tiers = [json.loads(x).get(TIER_LABEL) if x else None for x in rows["labels"]]
    out[TIER_LABEL] = pd.array(tiers, dtype="Int64")
    out[SCENE_LABEL] = pd.array([json.loads(x).get(SCENE_LABEL) if x else None
                                 for x in rows["labels"]], dtype="str")
    return out.sort_values("image_id").reset_index(drop=True)


# ---------------------------------------------------------------- embeddings and near-duplicates

def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def similarity(z: np.ndarray) -> np.ndarray:
    """Cosine similarity of standardised embeddings (raw pooled features are all positive, so
    their plain cosine is high for any two photos)."""
    u = unit_rows(z)
    return u @ u.T


def near_duplicate_groups(z: np.ndarray, threshold: float,
                          also: np.ndarray | None = None) -> np.ndarray:
    """A group id per photo: connected components of ``similarity > threshold``, or of the
    extra links in ``also`` (an (n, n) boolean matrix, e.g. near-identical pixels)."""
    sim = similarity(z)
    parent = np.arange(len(z))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    linked = sim > threshold if also is None else (sim > threshold) | also
    for i, j in zip(*np.nonzero(np.triu(linked, k=1)), strict=True):
        parent[find(int(i))] = find(int(j))
    roots = np.array([find(i) for i in range(len(z))])
    return np.unique(roots, return_inverse=True)[1]


def scene_groups(groups: np.ndarray, scenes: pd.Series | None) -> np.ndarray:
    """``groups`` merged where photos share a scene (connected components of "same group or
    same scene"): a damaged copy or a crop the embedding does not call a near-duplicate still
    goes to its scene's split. Photos without a scene keep their group."""
    if scenes is None or scenes.isna().all():
        return groups
    parent = np.arange(groups.max() + 1)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for members in pd.Series(groups).groupby(scenes.to_numpy(), dropna=True):
        first, *rest = members[1].unique()
        for g in rest:
            parent[find(int(g))] = find(int(first))
    roots = np.array([find(int(g)) for g in groups])
    return np.unique(roots, return_inverse=True)[1]


def pixel_near_duplicates(root: Path, paths: pd.Series) -> np.ndarray:
    """(n, n) True where two image files have near-identical pixels (difference hashes within
    lenslab.split_audit's bound): burst frames the embedding threshold can miss (the split
    audit found one straddling train and test at scale 0.3)."""
    from lenslab.split_audit import NEAR_DUPLICATE_BITS, fingerprints, hamming

    prints = fingerprints([root / p for p in paths])
    return hamming(prints["dhash"].to_numpy(dtype=np.uint64)) <= NEAR_DUPLICATE_BITS


def split_groups(groups: np.ndarray, fractions: dict[str, float], seed: int) -> np.ndarray:
    """A split per photo; whole groups are shuffled (seeded) and cut by photo count."""
    total = sum(fractions[s] for s in SPLITS)
    order = rng(seed, "photobook", "split").permutation(groups.max() + 1)
    sizes = np.bincount(groups)[order]
    cum = np.cumsum(sizes) / sizes.sum()
    bounds = np.cumsum([fractions[s] / total for s in SPLITS])
    group_split = np.empty(len(order), dtype=object)
    group_split[order] = np.array(SPLITS, dtype=object)[
        np.minimum(np.searchsorted(bounds, cum - 1e-9), len(SPLITS) - 1)]
    return group_split[groups]


# ------------------------------------------------------------------------------------- pairs

@dataclass(frozen=True)
class Pairs:
    """Photo index pairs: ``first`` beat ``second`` when ``y`` is True."""

    first: np.ndarray
    second: np.ndarray
    y: np.ndarray
    # annotated pairs left out, by reason (see annotated_pairs); not carried by take or +
    dropped: dict[str, int] = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.y)

    def take(self, mask: np.ndarray) -> Pairs:
        return Pairs(self.first[mask], self.second[mask], self.y[mask])

    def __add__(self, other: Pairs) -> Pairs:
        return Pairs(np.r_[self.first, other.first], np.r_[self.second, other.second],
                     np.r_[self.y, other.y])


def annotated_pairs(pairs: pd.DataFrame, image_ids: pd.Series,
                    unusable: Mapping[str, str] | None = None) -> Pairs:
    """The preference table (left, right, winner) as index pairs.

    A pair naming a photo that is not among ``image_ids`` but is in ``unusable`` (image_id ->
    reason, :func:`lenslab.catalog.unusable_images`: quarantined, byte-duplicate) is dropped and
    counted by that reason in ``Pairs.dropped``; any other unknown photo is an error.
    """
    unusable = unusable or {}
    index = pd.Series(np.arange(len(image_ids)), index=image_ids.to_numpy())
    known = set(index.index)
    missing = sorted(set(pairs["left"]).union(pairs["right"]) - known - set(unusable))
    if missing:
        raise ValueError(f"pairs name {len(missing)} photo(s) not in the embeddings, "
                         f"e.g. {missing[:3]}")
    reasons = [next((unusable[p] for p in (left, right) if p not in known), None)
               for left, right in zip(pairs["left"], pairs["right"], strict=True)]
    keep = np.array([r is None for r in reasons], dtype=bool)
    dropped = dict(Counter(r for r in reasons if r is not None))
    kept = pairs[keep]
    return Pairs(index[kept["left"]].to_numpy(dtype=int), index[kept["right"]].to_numpy(dtype=int),
                 (kept["winner"] == "left").to_numpy(), dropped)


def pair_splits(pairs: Pairs, split: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(split per pair, strict mask): train = both train, test = shows a test photo, else val."""
    a, b = split[pairs.first], split[pairs.second]
    out = np.where((a == "test") | (b == "test"), "test",
                   np.where((a == "train") & (b == "train"), "train", "val"))
    return out, (a == "test") & (b == "test")


def tier_pairs(tiers: np.ndarray, photos: np.ndarray, min_gap: int) -> Pairs:
    """Every pair of ``photos`` whose tiers differ by at least ``min_gap`` (tier 0 is best), as
    the seed built its pairs from its tier folders; ``min_gap`` 0 adds none."""
    if min_gap <= 0:
        return Pairs(np.zeros(0, int), np.zeros(0, int), np.zeros(0, bool))
    i, j = np.meshgrid(photos, photos, indexing="ij")
    i, j = i.ravel(), j.ravel()
    keep = (tiers[j] - tiers[i]) >= min_gap  # i is the better photo
    return Pairs(i[keep], j[keep], np.ones(int(keep.sum()), bool))


@dataclass(frozen=True)
class SplitPairs:
    """The pairs of one photo split. ``train`` holds the annotated training pairs and then the
    tier pairs of the training photos; ``where`` is each annotated pair's split."""

    where: np.ndarray
    train: Pairs
    val: Pairs
    test: Pairs
    strict_test: np.ndarray  # per test pair: it shows two test photos


def split_pairs(pairs: Pairs, split: np.ndarray, tiers: np.ndarray | None = None,
                tier_gap: int = 0) -> SplitPairs:
    """Annotated pairs by photo split, plus tier pairs (``tier_gap`` > 0) among training photos."""
    where, strict = pair_splits(pairs, split)
    train = pairs.take(where == "train")
    if tiers is not None:
        train = train + tier_pairs(tiers, np.flatnonzero(split == "train"), tier_gap)
    return SplitPairs(where, train, pairs.take(where == "val"), pairs.take(where == "test"),
                      strict[where == "test"])


# ----------------------------------------------------------------------------- master vectors

def differences(e: np.ndarray, pairs: Pairs) -> np.ndarray:
    return e[pairs.first] - e[pairs.second]


def log_loss(logits: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.logaddexp(0.0, -np.where(y, logits, -logits))))


def pair_accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Share of pairs ordered as labelled; a tie (logit 0) counts half."""
    return float(np.mean(np.where(logits == 0, 0.5, (logits > 0) == y)))


@dataclass
class LearnedVector:
    vector: np.ndarray  # in the embedding space: score = e . vector
    c: float
    curve: list[dict] = field(default_factory=list)  # C, val log loss, val accuracy


def fit_learned_vector(e: np.ndarray, train: Pairs, val: Pairs, standardiser: Standardiser,
                       cs: list[float]) -> LearnedVector:
    """Logistic ranking on standardised embedding differences, no intercept (both orders of each
    pair are shown, so the model is antisymmetric). C is chosen by the validation log loss after
    the probability scale is fitted there too, as the rater will use it (the raw log loss favours
    the strongest regularisation whatever the ranking).

    The L2-penalised weights lie in the span of the training differences, so the fit runs in the
    coordinates of that span (at most one fewer than the training photos) and maps back: the same
    solution as in the full embedding space, an order of magnitude faster.
    """
    z = standardiser(e)
    used = np.unique(np.r_[train.first, train.second])
    _, sv, basis = np.linalg.svd(z[used] - z[used].mean(axis=0), full_matrices=False)
    basis = basis[sv > sv[0] * 1e-9]
    coords = z @ basis.T
    x = differences(coords, train)
    x, y = np.r_[x, -x], np.r_[train.y, ~train.y]
    xv = differences(coords, val)
    from sklearn.linear_model import LogisticRegression  # here: the asset modules import this file

    best: LearnedVector | None = None
    best_loss = np.inf
    curve = []
    for c in cs:
        w = LogisticRegression(C=c, fit_intercept=False, max_iter=5000).fit(x, y).coef_[0]
        gaps = xv @ w
        loss = log_loss(fit_scale(gaps, val.y) * gaps, val.y)
        curve.append({"C": c, "val_log_loss_calibrated": round(loss, 5),
                      "val_log_loss_raw": round(log_loss(gaps, val.y), 5),
                      "val_accuracy": round(pair_accuracy(gaps, val.y), 4)})
        if loss < best_loss:
            best_loss, best = loss, LearnedVector((basis.T @ w) / standardiser.std, c)
    assert best is not None
    best.curve = curve
    return best


# -------------------------------------------------------------------------------- calibration

def fit_scale(gaps: np.ndarray, y: np.ndarray) -> float:
    """Platt scaling without an intercept: the ``a`` of sigmoid(a * gap) by validation log loss."""
    from sklearn.linear_model import LogisticRegression

    x = np.r_[gaps, -gaps][:, None]
    t = np.r_[y, ~y]
    return float(LogisticRegression(C=1e6, fit_intercept=False, max_iter=1000)
                 .fit(x, t).coef_[0, 0])


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 10) -> tuple[pd.DataFrame, float]:
    """Reliability table over equal-width bins of P(first wins) and the expected calibration
    error (sum over bins of |mean p - win rate| weighted by the bin's share)."""
    which = np.minimum((p * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        m = which == b
        if m.any():
            rows.append({"bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}", "count": int(m.sum()),
                         "mean_p": float(p[m].mean()), "win_rate": float(y[m].mean())})
    table = pd.DataFrame(rows, columns=["bin", "count", "mean_p", "win_rate"])
    ece = float((table["count"] * (table["mean_p"] - table["win_rate"]).abs()).sum() / len(p))
    return table, ece


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int) -> float:
    """The ECE of :func:`reliability` without the table (fast enough to bootstrap): per bin,
    |sum of p - wins|, summed and divided by the pairs."""
    which = np.minimum((p * bins).astype(int), bins - 1)
    gap = (np.bincount(which, weights=p, minlength=bins)
           - np.bincount(which, weights=np.asarray(y, float), minlength=bins))
    return float(np.abs(gap).sum() / len(p))


def ece_noise_floor(p: np.ndarray, bins: int, seed: int, draws: int = 200) -> float:
    """Median ECE of a perfectly calibrated predictor on as many pairs: outcomes drawn from ``p``
    itself. An ECE near this is as good as the sample size can show."""
    r = rng(seed, "photobook", "ece_floor")
    return float(np.median([reliability(p, r.random(len(p)) < p, bins)[1]
                            for _ in range(draws)]))


# -------------------------------------------------------------------------------------- album

def select_album(scores: np.ndarray, z: np.ndarray, places: int, threshold: float,
                 names: list[str]) -> pd.DataFrame:
    """Best ``places`` photos by score, skipping a photo too similar (cosine of standardised
    embeddings > threshold) to one already picked. One row per photo, best first, with a reason."""
    if places < 1:
        raise ValueError("an album needs at least one place")
    sim = similarity(z)
    order = np.argsort(-scores, kind="stable")
    picked: list[int] = []
    rows = []
    for rank, i in enumerate(order, start=1):
        dup = [j for j in picked if sim[i, j] > threshold]
        if dup:
            j = max(dup, key=lambda k: sim[i, k])
            reason = (f"near-duplicate of {names[j]} (similarity {sim[i, j]:.2f}), "
                      "which scores higher")
            chosen = False
        elif len(picked) >= places:
            reason = f"album full: rank {rank} by score"
            chosen = False
        else:
            picked.append(int(i))
            reason = f"rank {rank} by score, no near-duplicate already chosen"
            chosen = True
        rows.append({"photo": names[i], "score": float(scores[i]), "rank": rank,
                     "chosen": chosen, "reason": reason})
    return pd.DataFrame(rows)


# -------------------------------------------------------------------------------------- rater

@dataclass
class Rater:
    """What the pipeline learned, loaded back: master vectors, their scales, the standardiser."""

    vectors: dict[str, np.ndarray]
    scales: dict[str, float]
    descriptions: dict[str, str]
    standardiser: Standardiser
    duplicate_threshold: float
    encoder: dict

    @classmethod
    def load(cls, layout: PhotobookLayout) -> Rater:
        for path in (layout.vectors, layout.provenance, layout.rater):
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing: materialise photobook_rater first")
        arrays = np.load(layout.vectors)
        rater = json.loads(layout.rater.read_text())
        names = [n for n in rater["vectors"] if rater["vectors"][n]["available"]]
        return cls(
            vectors={n: arrays[f"vector_{n}"] for n in names},
            scales={n: rater["vectors"][n]["scale"] for n in names},
            descriptions={n: rater["vectors"][n]["description"] for n in names},
            standardiser=Standardiser(arrays["mean"], arrays["std"]),
            duplicate_threshold=rater["duplicate_threshold"],
            encoder=rater["encoder"],
        )

    def probabilities(self, e: np.ndarray, vector: str) -> np.ndarray:
        """For two embeddings: each photo's calibrated probability of being the better pick."""
        if vector not in self.vectors:
            raise KeyError(f"unknown master vector {vector!r}; choose from {sorted(self.vectors)}")
        s = e @ self.vectors[vector]
        p_first = float(sigmoid(self.scales[vector] * (s[0] - s[1])))
        return np.array([p_first, 1.0 - p_first])

    def album(self, e: np.ndarray, names: list[str], places: int, vector: str) -> pd.DataFrame:
        return select_album(e @ self.vectors[vector], self.standardiser(e), places,
                            self.duplicate_threshold, names)


def ground_truth_rows(layout: PhotobookLayout, image_ids: pd.Series) -> pd.DataFrame | None:
    """The synthetic source's ground truth per photo (quality, burst, tier, appearance
    attributes), in ``image_ids``' order; None when there is none (real data)."""
    path = layout.ground_truth()
    if not path.is_file():
        return None
    truth = pd.read_csv(path).set_index("photo")
    photos = image_ids.str.replace(f"{SOURCE}:photos/", "", regex=False)
    if not photos.isin(truth.index).all():
        return None
    return truth.loc[photos]


def true_quality(layout: PhotobookLayout, image_ids: pd.Series) -> np.ndarray | None:
    """The synthetic source's latent quality per photo, or None when there is none (real data)."""
    rows = ground_truth_rows(layout, image_ids)
    return None if rows is None else rows["quality"].to_numpy()


def seed_ranksvm(e: np.ndarray, train: Pairs, c: float = 0.5) -> np.ndarray:
    """The seed's master vector, kept as the baseline: a linear hinge-loss ranker without
    intercept (RankSVM) on raw embedding differences, unit length, C fixed at the seed's 0.5."""
    from sklearn.svm import LinearSVC

    x = differences(e, train)
    w = LinearSVC(C=c, fit_intercept=False, max_iter=20000).fit(
        np.r_[x, -x], np.r_[train.y, ~train.y]).coef_[0]
    return w / np.linalg.norm(w)


# The figure the rater is judged by: pairs whose two photos were both held out. A test pair with
# one training photo partly measures memorised photos, so it is kept beside it, named so.
HEADLINE = "accuracy_labels_strict"
UNIT = "near-duplicate group (burst) of each photo"


def evaluate_vector(e: np.ndarray, vector: np.ndarray, scale: float, test: Pairs,
                    strict: np.ndarray, truth: np.ndarray | None, *, units: np.ndarray,
                    bins: int, seed: int, resamples: int, name: str) -> dict:
    """Held-out figures of one master vector: pairwise accuracy against the annotators' choices
    (and, on synthetic data, against the true quality order), on pairs with both photos held
    out (the headline) and on every pair showing a test photo, with 95% intervals from a
    bootstrap over ``units`` (a unit label per photo: its near-duplicate group; a pair counts
    once per draw of each of its two photos' units); ECE and the reliability table."""
    from lenslab.metrics import bootstrap_ci, interval

    gaps = differences(e, test) @ vector
    p = sigmoid(scale * gaps)
    table, ece = reliability(p, test.y, bins)
    pair_units = np.stack([units[test.first], units[test.second]], axis=1)

    def acc(y: np.ndarray, g: np.ndarray) -> float:
        return pair_accuracy(g, y)

    def with_ci(y: np.ndarray, g: np.ndarray, rows: np.ndarray, what: str) -> dict:
        return interval(y[rows], g[rows], acc, groups=pair_units[rows], unit=UNIT,
                        resamples=resamples, seed=seed, name=f"photobook/{name}/{what}")

    every = np.ones(len(test), bool)
    out = {"headline": HEADLINE,
           "accuracy_labels": with_ci(test.y, gaps, every, "labels"),
           "accuracy_labels_strict": with_ci(test.y, gaps, strict, "labels_strict"),
           "ece": ece, "ece_noise_floor": ece_noise_floor(p, bins, seed),
           "ece_ci95": bootstrap_ci(test.y, p, lambda yy, pp: expected_calibration_error(
               pp, yy, bins), groups=pair_units, resamples=resamples, seed=seed,
               name=f"photobook/{name}/ece"),
           "reliability": table.to_dict(orient="records")}
    if truth is not None:
        order = truth[test.first] > truth[test.second]
        out["accuracy_truth"] = with_ci(order, gaps, every, "truth")
        out["accuracy_truth_strict"] = with_ci(order, gaps, strict, "truth_strict")
        out["oracle_accuracy_labels"] = pair_accuracy(truth[test.first] - truth[test.second],
                                                      test.y)
        out["oracle_accuracy_labels_strict"] = pair_accuracy(
            (truth[test.first] - truth[test.second])[strict], test.y[strict])
    return out


def split_spread(e: np.ndarray, pairs: Pairs, groups: np.ndarray, tiers: np.ndarray, *,
                 tier_gap: int, cs: list[float], folds: int, repeats: int,
                 seed: int) -> dict[str, object]:
    """The learned vector's accuracy on pairs of two held-out photos over several seeded
    splits of the near-duplicate groups (repeated group k-fold): each fold's groups are the
    test photos, the rest are cut into train and validation groups and the vector is refitted
    there. The spread shows what one split's figure can swing by."""
    from lenslab.metrics import repeated_group_kfold

    def evaluate(train_mask: np.ndarray, test_mask: np.ndarray) -> float:
        split = np.where(test_mask, "test", "train").astype(object)
        rest = np.flatnonzero(train_mask)
        _, codes = np.unique(groups[rest], return_inverse=True)
        split[rest] = split_groups(codes, {"train": 0.75, "val": 0.25, "test": 0.0}, seed)
        by_split = split_pairs(pairs, split, tiers, tier_gap)
        if len(by_split.train) == 0 or len(by_split.val) == 0:
            return float("nan")
        vector = fit_learned_vector(e, by_split.train, by_split.val,
                                    Standardiser.fit(e[split == "train"]), cs).vector
        strict = by_split.test.take(by_split.strict_test)
        return pair_accuracy(differences(e, strict) @ vector, strict.y) if len(strict) else (
            float("nan"))

    return repeated_group_kfold(groups, evaluate, folds=folds, repeats=repeats, seed=seed,
                                name="photobook/learned")


def burst_agreement(groups: np.ndarray, bursts: np.ndarray) -> dict[str, float]:
    """How the near-duplicate groups match the true bursts, over photo pairs: precision is the
    share of same-group pairs that are one burst, recall the share of same-burst pairs put in
    one group (nan where there is no such pair)."""
    g = np.asarray(groups)
    b = np.asarray(bursts)
    same_g = g[:, None] == g[None, :]
    same_b = b[:, None] == b[None, :]
    upper = np.triu(np.ones_like(same_g), k=1)
    both = int((same_g & same_b & upper).sum())
    grouped, true = int((same_g & upper).sum()), int((same_b & upper).sum())
    return {"precision": both / grouped if grouped else float("nan"),
            "recall": both / true if true else float("nan"),
            "grouped_pairs": grouped, "burst_pairs": true, "both": both,
            "groups": len(np.unique(g)), "bursts": len(np.unique(b))}


def vector_cosines(vectors: dict[str, np.ndarray]) -> dict[str, float]:
    """Cosine between the learned vector and each other vector of the same space (the seed found
    its prompt and data vectors nearly orthogonal)."""
    learned = vectors[LEARNED]
    return {name: float(v @ learned / (np.linalg.norm(v) * np.linalg.norm(learned)))
            for name, v in vectors.items() if name != LEARNED and len(v) == len(learned)}


def _acc(entry: dict, key: str) -> str:
    from lenslab.metrics import format_ci

    if key not in entry:
        return "–"
    return f"{format_ci(entry[key]['value'], entry[key]['ci95'])} (n={entry[key]['n']})"


def report_markdown(metrics: dict, figures: dict[str, str]) -> str:
    """The photobook report: accuracies beside chance and the oracle, calibration, the album."""
    rater = metrics["rater"]
    lines = ["# Photobook rater report", "",
             f"Encoder: `{rater['encoder']['encoder']}` (pretrained: "
             f"{rater['encoder']['pretrained']}, {rater['encoder']['dim']}-d). Photos are split "
             f"train/val/test with near-duplicates kept together; {rater['strict_test_pairs']} "
             f"test pairs show two held-out photos (the headline), {rater['test_pairs']} show at "
             f"least one, {rater['val_pairs']} validation pairs fit each probability scale.", "",
             "## Held-out pairwise accuracy (95% intervals)", "",
             "Chance is 0.5. *Annotators* is agreement with the annotators' noisy choices; "
             "*true order* (synthetic data only) is agreement with the latent quality. The "
             "headline columns count pairs whose two photos were both held out; the others "
             "also count pairs with one training photo, which the vector was fitted on. "
             f"Intervals: bootstrap resampling the {UNIT} (a pair counts once per draw of "
             "each of its two photos' units).", "",
             "| master vector | annotators, both photos held out | annotators, one photo may be "
             "a training photo | true order, both held out | true order, one may be a training "
             "photo | ECE | scale |",
             "|---|---|---|---|---|---|---|"]
    for name, v in rater["vectors"].items():
        if not v["available"]:
            lines.append(f"| {name} | unavailable ({v['description']}) | | | | | |")
            continue
        lines.append(f"| {name} | {_acc(v, 'accuracy_labels_strict')} | "
                     f"{_acc(v, 'accuracy_labels')} | {_acc(v, 'accuracy_truth_strict')} | "
                     f"{_acc(v, 'accuracy_truth')} | {v['ece']:.3f} | {v['scale']:.3g} |")
    learned = rater["vectors"][LEARNED]
    if "oracle_accuracy_labels" in learned:
        lines += ["", f"Oracle (the true quality) agrees with the annotators on "
                  f"{learned.get('oracle_accuracy_labels_strict', float('nan')):.3f} of the "
                  f"pairs with both photos held out ({learned['oracle_accuracy_labels']:.3f} of "
                  "all test pairs): the ceiling any rater can reach against their noisy "
                  "choices."]
    bursts = metrics.get("near_duplicates_vs_bursts")
    if bursts:
        lines += ["", "## Near-duplicate groups against the true bursts", "",
                  f"Over photo pairs, on the generator's ground truth: precision "
                  f"{bursts['precision']:.3f} ({bursts['both']} of {bursts['grouped_pairs']} "
                  f"pairs grouped together are one burst), recall {bursts['recall']:.3f} "
                  f"({bursts['both']} of {bursts['burst_pairs']} same-burst pairs grouped "
                  f"together); {bursts['groups']} groups for {bursts['bursts']} bursts and "
                  "singles."]
    spread = metrics.get("split_spread")
    if spread:
        lines += ["", "## Over other splits", "",
                  f"The learned vector refitted on {spread['repeats']} x {spread['folds']}-fold "
                  f"seeded splits of the {spread['groups']} near-duplicate groups (each fold's "
                  "groups held out, the rest cut into train and validation): accuracy on pairs "
                  f"of two held-out photos {spread['mean']:.3f} on average, sd "
                  f"{spread['sd']:.3f}, from {spread['min']:.3f} to {spread['max']:.3f} "
                  f"({', '.join(f'{v:.3f}' for v in spread['values'])})."]
    lines += ["", "## Calibration", "",
              f"Learned vector: ECE {learned['ece']:.3f} over {rater['test_pairs']} test pairs; "
              f"a perfectly calibrated predictor would show about "
              f"{learned['ece_noise_floor']:.3f} on as many pairs (sampling noise).", "",
              pd.DataFrame(learned["reliability"]).to_markdown(index=False, floatfmt=".3f"), "",
              "## Cosine with the learned vector", ""]
    lines += [f"- {name}: {c:.3f}" for name, c in metrics["cosines"].items()]
    album = pd.DataFrame(metrics["album"])
    lines += ["", f"## Example album: {int(album['chosen'].sum())} of "
              f"{metrics['album_offered']} test photos", "",
              album[["photo", "score", "chosen", "reason"]].to_markdown(index=False,
                                                                        floatfmt=".3f"),
              "", "## Figures", ""]
    lines += [f"- {title}: `{path}`" for title, path in figures.items()]
    return "\n".join(lines) + "\n"
