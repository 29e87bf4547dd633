"""What bounds the photobook rater's held-out pair accuracy on the synthetic photo preferences.

    .venv/bin/python bench/rater/ceiling.py [--data-root DIR] [--splits 5] [--json FILE]

Without ``--data-root`` it first builds the pipeline's photobook artefacts in a temporary folder
(as ``bench/rater/run.py`` does). For the pipeline's photo split and ``--splits - 1`` more (split
seeds ``seed + 1``, ``seed + 2``, ...; near-duplicate groups kept whole, as master_vectors splits)
every reader is scored on the same held-out test pairs, against the annotators' choices and
against the true quality order:

* ``learned``: the pipeline's fit (logistic ranking on the training and tier pairs, C and the
  Platt scale chosen on validation pairs) on the recorded embeddings;
* ``embedding, true-quality labels``: a ridge regression of the *true* quality on the training
  photos' embeddings (alpha by leave-one-out), supervision no real dataset has: about the best a
  master vector in this embedding can do with this many photos;
* ``true attributes``: the learned fit on the generator's appearance attributes instead of the
  embedding, a perfect reader of what the photos were made to show;
* ``oracle``: the true quality itself. Its agreement with the annotators bounds every rater.

Prints a markdown table (mean and standard deviation over the splits, then the pipeline's split).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV

from lenslab.params import param
from lenslab.photobook.rating import (
    PhotobookLayout,
    SplitPairs,
    annotated_pairs,
    differences,
    fit_learned_vector,
    fit_scale,
    ground_truth_rows,
    near_duplicate_groups,
    pair_accuracy,
    reliability,
    sigmoid,
    split_groups,
    split_pairs,
)
from lenslab.scaling import Standardiser
from lenslab.synthetic.appearance import ATTRIBUTES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import build_data_root  # this folder's pipeline set-up


def scores_figures(scores: np.ndarray, by_split: SplitPairs, truth: np.ndarray) -> dict:
    """Accuracy of photo scores on the test pairs, against the annotators and the true order."""
    test = by_split.test
    gaps = scores[test.first] - scores[test.second]
    return {"vs_annotators": pair_accuracy(gaps, test.y),
            "vs_true_order": pair_accuracy(gaps, truth[test.first] > truth[test.second])}


def learned_figures(x: np.ndarray, by_split: SplitPairs, truth: np.ndarray,
                    train_photos: np.ndarray) -> dict:
    """The pipeline's fit on features ``x``: accuracy as scores_figures, and the calibrated ECE."""
    fit = fit_learned_vector(x, by_split.train, by_split.val, Standardiser.fit(x[train_photos]),
                             param("photobook.c_grid"))
    scale = fit_scale(differences(x, by_split.val) @ fit.vector, by_split.val.y)
    p = sigmoid(scale * (differences(x, by_split.test) @ fit.vector))
    _, ece = reliability(p, by_split.test.y, param("photobook.reliability_bins"))
    return {**scores_figures(x @ fit.vector, by_split, truth), "ece": ece, "C": fit.c}


def ridge_on_truth(e: np.ndarray, truth: np.ndarray, train_photos: np.ndarray) -> np.ndarray:
    """Photo scores from a ridge regression of the true quality on the training embeddings."""
    z = Standardiser.fit(e[train_photos])(e)
    ridge = RidgeCV(alphas=np.logspace(-2, 6, 17)).fit(z[train_photos], truth[train_photos])
    return ridge.predict(z)


def ceilings(root: Path, splits: int) -> pd.DataFrame:
    layout = PhotobookLayout(root)
    table = pd.read_parquet(layout.embeddings)
    photos = table["image_id"]
    e = np.stack(table["embedding"].to_numpy()).astype(np.float64)
    rows = ground_truth_rows(layout, photos)
    if rows is None:
        raise SystemExit(f"{root}: no synthetic ground truth (quality.csv), so no ceilings")
    truth, attributes = rows["quality"].to_numpy(), rows[list(ATTRIBUTES)].to_numpy()
    pairs = annotated_pairs(pd.read_parquet(layout.pairs()), photos)
    tiers = table["tier"].fillna(-1).to_numpy(dtype=int)
    groups = near_duplicate_groups(Standardiser.fit(e)(e), param("photobook.duplicate_threshold"))
    rows = []
    for k in range(splits):
        split = split_groups(groups, param("photobook.split_fractions"), param("seed") + k)
        by_split = split_pairs(pairs, split, tiers, param("photobook.tier_gap"))
        train_photos = np.flatnonzero(split == "train")
        readers = {
            "learned (embedding)": learned_figures(e, by_split, truth, train_photos),
            "embedding, true-quality labels": scores_figures(
                ridge_on_truth(e, truth, train_photos), by_split, truth),
            "true attributes": learned_figures(attributes, by_split, truth, train_photos),
            "oracle (true quality)": scores_figures(truth, by_split, truth),
        }
        for reader, figures in readers.items():
            rows.append({"split": k, "reader": reader, "test_pairs": len(by_split.test),
                         **figures})
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame) -> str:
    lines = ["| reader | vs annotators (mean ± sd) | vs true order | ECE | pipeline's split: "
             "vs annotators / true order |", "|---|---|---|---|---|"]
    for reader, g in frame.groupby("reader", sort=False):
        first = g[g["split"] == 0].iloc[0]
        ece = f"{g['ece'].mean():.3f}" if g["ece"].notna().any() else ""
        lines.append(f"| {reader} | {g['vs_annotators'].mean():.3f} ± "
                     f"{g['vs_annotators'].std(ddof=0):.3f} | {g['vs_true_order'].mean():.3f} | "
                     f"{ece} | {first['vs_annotators']:.3f} / {first['vs_true_order']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=None,
                    help="a data tree the pipeline has written photobook/ into")
    ap.add_argument("--splits", type=int, default=5, help="photo splits (the pipeline's first)")
    ap.add_argument("--json", type=Path, default=None, help="also write every row here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_root or Path(tmp)
        if args.data_root is None:
            build_data_root(root)
        frame = ceilings(root, args.splits)
        recorded = json.loads(PhotobookLayout(root).rater.read_text())["vectors"]["learned"]
    pipeline = frame[(frame["split"] == 0) & (frame["reader"] == "learned (embedding)")].iloc[0]
    print(markdown(frame))
    print(f"\nphotobook_rater recorded {recorded['accuracy_labels']['value']:.3f} on the "
          f"pipeline's split; this run's refit gives {pipeline['vs_annotators']:.3f} "
          f"({int(pipeline['test_pairs'])} test pairs)")
    if args.json:
        args.json.write_text(frame.to_json(orient="records", indent=2))


if __name__ == "__main__":
    main()
