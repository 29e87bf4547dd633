"""Synthetic FLICKR-AES (Ren et al., ICCV 2017), in the real distribution format.

Writes into ``distributed/``:
    FLICKR-AES-001.zip                              ``40K/<farm>_<server>_<id>_<secret>.jpg``
    FLICKR-AES_image_labeled_by_each_worker.csv     header ``worker, imagePair, score``, with the
                                                    real file's space after every comma
    FLICKR-AES_image_score.txt                      `` <name> <score>`` per line (leading space as
                                                    in the real file); score = mean rating / 5,
                                                    the paper's [0.2, 1] normalisation

Content: every image has standardised appearance attributes (lenslab.synthetic.appearance) that
drive its rendering. Each worker w has a taste t_w = c + p_w: a common taste c (near the usual
one, scaled so c . a has variance 1 over images) plus a personal part p_w, and rates
u = b_w + t_w . a + noise, quantised to 1..5 with the real rating distribution (mean ~3.0,
sd ~1.1). The personal part explains
``personal_share`` of the taste variance (a minority), so a generic model reaches Spearman ~0.5 on
a worker's ratings and personalisation can add a few points.

Worker split as in Ren et al.: train workers rate the train images (~``raters_per_image`` each);
test workers rate a disjoint set of test images (``test_raters_per_image`` test workers per
image), each test worker between 112 and 171 images, while every train worker rates fewer than
105 or more than 180, so both published count rules (105-171 and 112-180 ratings) recover exactly
the test workers.

Knobs (counts at scale 1.0; workers scale with ``scale``):
    train_workers (24), test_workers (6), train_images (400, approximate: set by the workers'
    rating counts), raters_per_image (5), test_raters_per_image (2), personal_share (0.25),
    rating_noise (1.1, sd of the per-rating noise, in units of the common taste's sd),
    max_side (128, longest image side in pixels)

Ground truth: ``image_attributes.csv`` (image, split, attributes, generic_score = c . a),
``worker_tastes.csv`` (worker, split, bias, taste_<attribute> = c + p_w, personal_<attribute> =
p_w), ``worker_split.csv`` (worker, split, n_ratings).
"""

from __future__ import annotations

import math
import statistics
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lenslab import atomic
from lenslab.seeding import rng
from lenslab.synthetic import appearance
from lenslab.synthetic.common import encode_jpeg, scaled, write_ground_truth

SOURCE = "flickr_aes"
RATINGS_FILE = "FLICKR-AES_image_labeled_by_each_worker.csv"
SCORES_FILE = "FLICKR-AES_image_score.txt"
ZIP_FILE = "FLICKR-AES-001.zip"
TEST_COUNTS = (112, 171)  # inside both reconstruction rules
TRAIN_AVOID = (105, 180)  # train workers' counts stay outside this band
RATING_SHARES = (0.08, 0.2, 0.4, 0.22, 0.1)  # P(score = 1..5), as in the real data
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def write_zip(archive: Path, members: list[tuple[str, bytes]]) -> None:
    """A byte-for-byte reproducible zip: fixed timestamps and modes, stored (JPEGs don't shrink)."""
    with atomic.atomic_open(archive, "wb") as fh, zipfile.ZipFile(fh, "w") as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)


def flickr_name(r: np.random.Generator) -> str:
    """A file name in Flickr's static-URL style: farm, server, photo id, secret."""
    secret = "".join(r.choice(list("0123456789abcdef"), 10))
    farm, server, photo = r.integers(1, 10), r.integers(1, 1000), r.integers(10**9, 3 * 10**10)
    return f"farm{farm}_{server}_{photo}_{secret}.jpg"


def worker_id(r: np.random.Generator) -> str:
    """An Amazon Mechanical Turk style worker id."""
    alphabet = list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    return "A" + "".join(r.choice(alphabet, int(r.integers(12, 14))))


def assign_raters(quotas: np.ndarray, per_image: int, r: np.random.Generator) -> list[list[int]]:
    """Images as lists of worker indices so each worker rates exactly its quota.

    Greedy: each image takes the ``per_image`` workers with the most ratings left (random tie
    order); this meets every quota when no quota exceeds the number of images.
    """
    left = quotas.astype(float).copy()
    tie = r.random(len(quotas)) * 1e-3
    images = []
    while left.max() > 0:
        order = np.argsort(-(left + tie), kind="stable")
        chosen = [int(w) for w in order[:per_image] if left[w] > 0]
        left[chosen] -= 1
        images.append(chosen)
    return images


def train_quotas(r: np.random.Generator, workers: int, mean: float, cap: int) -> np.ndarray:
    """Rating counts of train workers, outside the test band: casual (<105) or heavy (>180)."""
    light, heavy = (20, TRAIN_AVOID[0] - 1), (TRAIN_AVOID[1] + 1, 2 * TRAIN_AVOID[1])
    light_mean, heavy_mean = sum(light) / 2, sum(heavy) / 2
    p_heavy = float(np.clip((mean - light_mean) / (heavy_mean - light_mean), 0.0, 1.0))
    is_heavy = r.random(workers) < p_heavy
    counts = np.where(is_heavy, r.integers(*heavy, size=workers), r.integers(*light, size=workers))
    counts = np.minimum(counts, cap)
    # a cap inside the band (few images) turns heavy workers into casual ones
    in_band = (counts >= TRAIN_AVOID[0]) & (counts <= TRAIN_AVOID[1])
    return np.minimum(np.where(in_band, TRAIN_AVOID[0] - 1, counts), cap)


def quantise(utility: np.ndarray, sd: float) -> np.ndarray:
    """Map utilities to scores 1..5 with the real rating distribution."""
    cuts = np.array([statistics.NormalDist().inv_cdf(q) for q in np.cumsum(RATING_SHARES)[:-1]])
    cuts *= sd
    return np.searchsorted(cuts, utility) + 1


def generate(distributed: Path, ground_truth: Path, *, seed: int, scale: float = 1.0,
             train_workers: int = 24, test_workers: int = 6, train_images: int = 400,
             raters_per_image: int = 5, test_raters_per_image: int = 2,
             personal_share: float = 0.25, rating_noise: float = 1.1,
             max_side: int = 128) -> dict[str, Any]:
    """Write the zip, the ratings CSV and the score file into ``distributed``; see the doc."""
    r = rng(seed, SOURCE, "layout")
    n_train_w = scaled(train_workers, scale, minimum=raters_per_image + 1)
    n_test_w = scaled(test_workers, scale, minimum=1)
    target = scaled(train_images, scale, minimum=20)
    quotas = train_quotas(r, n_train_w, target * raters_per_image / n_train_w, cap=target)
    train_sets = assign_raters(quotas, raters_per_image, r)
    test_quotas = r.integers(TEST_COUNTS[0], TEST_COUNTS[1] + 1, size=n_test_w)
    test_sets = assign_raters(test_quotas, min(test_raters_per_image, n_test_w), r)

    workers = [worker_id(r) for _ in range(n_train_w + n_test_w)]
    n_images = len(train_sets) + len(test_sets)
    names = [flickr_name(r) for _ in range(n_images)]
    raters = train_sets + [[n_train_w + w for w in ws] for ws in test_sets]
    image_split = ["train"] * len(train_sets) + ["test"] * len(test_sets)
    order = r.permutation(n_images)  # train and test images interleave in the name space

    attrs = appearance.sample_attributes(rng(seed, SOURCE, "attributes"), n_images)
    tr = rng(seed, SOURCE, "tastes")
    d = len(appearance.ATTRIBUTES)
    common = appearance.USUAL_TASTE + tr.normal(0.0, 0.15, d)
    common = appearance.unit_variance(common)
    personal_sd = math.sqrt(personal_share / (1.0 - personal_share) / d)
    personal = tr.normal(0.0, personal_sd, (len(workers), d))
    bias = tr.normal(0.0, 0.3, len(workers))

    nr = rng(seed, SOURCE, "ratings")
    a = attrs.to_numpy()
    sd = math.sqrt(1.0 + personal_share / (1.0 - personal_share) + rating_noise**2 + 0.09)
    pairs = np.array([(w, i) for i in order for w in raters[i]])
    w_idx, i_idx = pairs[:, 0], pairs[:, 1]
    utility = (bias[w_idx] + np.einsum("nd,nd->n", a[i_idx], common + personal[w_idx])
               + nr.normal(0.0, rating_noise, len(pairs)))
    ratings = pd.DataFrame({"w": w_idx, "i": i_idx, "score": quantise(utility, sd)})
    ratings = ratings.sort_values(["w", "i"], kind="stable")

    members = []
    for i in order:
        ri = rng(seed, SOURCE, "image", int(i))
        height, width = _size(ri, max_side)
        pixels = appearance.render_photo(ri, attrs.iloc[i].to_dict(), height, width)
        members.append((f"40K/{names[i]}", encode_jpeg(pixels, quality=int(ri.integers(85, 96)))))
    write_zip(distributed / ZIP_FILE, members)

    csv_lines = ["worker, imagePair, score"] + [
        f"{workers[w]}, {names[i]}, {s}" for w, i, s in ratings.itertuples(index=False)]
    atomic.write_text(distributed / RATINGS_FILE, "\n".join(csv_lines) + "\n")
    means = ratings.groupby("i")["score"].mean()
    atomic.write_text(distributed / SCORES_FILE, "".join(
        f" {names[i]} {means[i] / 5:.4f}\n" for i in order))

    truth = attrs.copy()
    truth.insert(0, "split", image_split)
    truth.insert(0, "image", names)
    truth["generic_score"] = a @ common
    write_ground_truth(ground_truth, "image_attributes", truth.iloc[order])
    worker_split = ["train"] * n_train_w + ["test"] * n_test_w
    tastes = pd.DataFrame({"worker": workers, "split": worker_split, "bias": bias})
    for k, name in enumerate(appearance.ATTRIBUTES):
        tastes[f"taste_{name}"] = common[k] + personal[:, k]
    for k, name in enumerate(appearance.ATTRIBUTES):
        tastes[f"personal_{name}"] = personal[:, k]
    write_ground_truth(ground_truth, "worker_tastes", tastes)
    counts = ratings.groupby("w").size()
    write_ground_truth(ground_truth, "worker_split", pd.DataFrame(
        {"worker": workers, "split": worker_split,
         "n_ratings": [int(counts.get(w, 0)) for w in range(len(workers))]}))
    return {"images": n_images, "train_images": len(train_sets), "test_images": len(test_sets),
            "train_workers": n_train_w, "test_workers": n_test_w, "ratings": len(ratings),
            "mean_score": round(float(ratings["score"].mean()), 3)}


def _size(r: np.random.Generator, max_side: int) -> tuple[int, int]:
    """(height, width): landscape mostly, some portrait, like Flickr uploads."""
    short = round(max_side * r.choice([0.75, 0.667, 1.0]))
    return (short, max_side) if r.random() < 0.75 else (max_side, short)
