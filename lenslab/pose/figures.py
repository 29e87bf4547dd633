"""The landmark similarity report: the seed's table with intervals, neighbours, role models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lenslab.metrics import accuracy, binary_metrics, format_ci, n_units, paired_difference
from lenslab.pose.pairs import NEGATIVE_KINDS, PoseLayout, pair_counts, role_models

TITLES = {"frozen": "MobileNetV2 frozen + FC", "frozen_pose": "MobileNetV2 frozen + FC + POSE",
          "finetuned": "MobileNetV2 fine-tuned + FC",
          "finetuned_pose": "MobileNetV2 fine-tuned + FC + POSE"}
POSE_OF = {"frozen": "frozen_pose", "finetuned": "finetuned_pose"}  # image-only -> with pose


# Fewer test sites than this and a bootstrap over sites means little (two sites give three
# distinct resamples): the intervals then resample the Site::Pose folders, which misses the
# between-site spread; only repeated site splits (retraining per split) would show that.
MIN_SITES = 5


def resampling_units(test: pd.DataFrame) -> tuple[np.ndarray, str]:
    """(the two units each test pair depends on, the unit's name): its sites when enough test
    sites exist, else its two Site::Pose folders."""
    sites = set(test["site_a"]) | set(test["site_b"])
    if len(sites) >= MIN_SITES:
        return test[["site_a", "site_b"]].to_numpy(), "site"
    folders = np.stack([test["site_a"].astype(str) + "::" + test["pose_a"].astype(str),
                        test["site_b"].astype(str) + "::" + test["pose_b"].astype(str)], 1)
    return folders, (f"Site::Pose folder (only {len(sites)} test sites: the between-site "
                     "spread is not in the interval)")


def _accuracy_gain(y: np.ndarray, p_pose: np.ndarray, p_image: np.ndarray, *,
                   groups: np.ndarray, unit: str, resamples: int, seed: int, name: str) -> dict:
    return paired_difference(y, p_pose, p_image, accuracy, groups=groups, unit=unit,
                             resamples=resamples, seed=seed, name=name)


def neighbours(scores: pd.DataFrame, images: pd.DataFrame, model: str, queries: int = 4,
               k: int = 3) -> list[dict]:
    """For the first ``queries`` test photos with a person: the ``k`` most similar test photos."""
    both = pd.concat([scores.rename(columns={"a": "q", "b": "n"}),
                      scores.rename(columns={"b": "q", "a": "n"})])
    info = images.set_index("image_id")
    out = []
    for q in images.loc[(images["split"] == "test") & images["has_person"], "image_id"][:queries]:
        top = both[both["q"] == q].nlargest(k, f"p_{model}")
        out.append({"query": q, "label": f"{info.at[q, 'site']}::{info.at[q, 'pose']}",
                    "neighbours": [{"image_id": n, "p": float(v),
                                    "label": f"{info.at[n, 'site']}::{info.at[n, 'pose']}"}
                                   for n, v in zip(top["n"], top[f"p_{model}"], strict=True)]})
    return out


def neighbour_figure(examples: list[dict], images: pd.DataFrame, data_root: Path,
                     path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    files = images.set_index("image_id")["normalised_path"]
    cols = 1 + max((len(e["neighbours"]) for e in examples), default=0)
    fig, axes = plt.subplots(max(len(examples), 1), cols, figsize=(2.2 * cols,
                                                                    2.4 * max(len(examples), 1)),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for row, e in enumerate(examples):
        cells = [(e["query"], f"query\n{e['label']}")]
        cells += [(n["image_id"], f"p={n['p']:.2f}\n{n['label']}") for n in e["neighbours"]]
        for col, (image_id, title) in enumerate(cells):
            with Image.open(data_root / files[image_id]) as im:
                axes[row, col].imshow(im.convert("RGB"))
            axes[row, col].set_title(title, fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def build_report(layout: PoseLayout, data_root: Path, models: Sequence[str], *, resamples: int,
                 seed: int) -> tuple[dict, str]:
    """metrics.json content and report.md text; writes neighbours.png."""
    import json

    pairs = pd.read_parquet(layout.pairs)
    images = pd.read_parquet(layout.images)
    preds = pd.read_parquet(layout.models / "predictions.parquet")
    scores = pd.read_parquet(layout.models / "test_image_scores.parquet")
    training = json.loads((layout.models / "training.json").read_text())
    test = preds[preds["split"] == "test"].reset_index(drop=True)
    y = test["label"].to_numpy()
    groups, unit = resampling_units(test)
    metrics: dict = {"chance_accuracy": 0.5, "test_pairs": len(test), "models": {},
                     "pose_gain": {}, "resampling": {"unit": unit,
                                                     "units": n_units(groups)}}
    for name in models:
        p = test[f"p_{name}"].to_numpy()
        m = binary_metrics(y, p, groups=groups, unit=unit, resamples=resamples, seed=seed,
                           name=f"pose/{name}")
        ok = (p >= 0.5) == (y == 1)
        kinds = [k for k in ("positive", *NEGATIVE_KINDS) if (test["kind"] == k).any()]
        m["accuracy_by_kind"] = {k: float(ok[test["kind"] == k].mean()) for k in kinds}
        m["best_epoch"] = training[name]["best_epoch"]
        metrics["models"][name] = m
    for image_only, with_pose in POSE_OF.items():
        if image_only in models and with_pose in models:
            metrics["pose_gain"][image_only] = _accuracy_gain(
                y, test[f"p_{with_pose}"].to_numpy(), test[f"p_{image_only}"].to_numpy(),
                groups=groups, unit=unit, resamples=resamples, seed=seed,
                name=f"pose/gain/{image_only}")
    best = max(models, key=lambda n: metrics["models"][n]["roc_auc"])
    test_images = images[images["split"] == "test"]
    roles = role_models(test_images, scores, best)
    with_truth = roles["true_role_model"].notna()
    metrics["role_models"] = {"model": best, "queries": len(roles),
                              "accuracy": float(roles["correct"].mean()) if len(roles) else 0.0,
                              "found_when_one_exists": float(
                                  (roles["correct"] & with_truth).sum() / max(with_truth.sum(),
                                                                              1))}
    examples = neighbours(scores, images, best)
    metrics["neighbours"] = examples
    neighbour_figure(examples, images, data_root, layout.report / "neighbours.png")
    return metrics, _markdown(metrics, pair_counts(pairs), roles)


def _markdown(metrics: dict, counts: pd.DataFrame, roles: pd.DataFrame) -> str:
    lines = ["# Landmark pose similarity", "",
             "Pairs per split (split by site: no image, and no site, is in two splits):", "",
             counts.to_markdown(), "",
             f"Test pairs: {metrics['test_pairs']} (balanced; chance accuracy 0.5). 95% "
             f"intervals: bootstrap resampling {metrics['resampling']['unit']} "
             f"({metrics['resampling']['units']} units; a pair counts once per draw of each "
             "of its two units).", "",
             "| network | test accuracy [95% CI] | test ROC-AUC [95% CI] | best epoch |",
             "|---|---|---|---|"]
    for name, m in metrics["models"].items():
        lines.append(f"| {TITLES.get(name, name)} | {format_ci(m['accuracy'], m['accuracy_ci95'])}"
                     f" | {format_ci(m['roc_auc'], m['roc_auc_ci95'])} | {m['best_epoch']} |")
    lines += ["", "Accuracy by pair type (test):", "",
              "| network | " + " | ".join(next(iter(metrics["models"].values()))
                                        ["accuracy_by_kind"]) + " |",
              "|---|" + "---|" * len(next(iter(metrics["models"].values()))["accuracy_by_kind"])]
    for name, m in metrics["models"].items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in m["accuracy_by_kind"]
                                                 .values()) + " |")
    lines += ["", "Accuracy gained by the pose branch (paired bootstrap over the same units):", ""]
    for name, g in metrics["pose_gain"].items():
        lines.append(f"- {name}: {format_ci(g['difference'], g['ci95'])}")
    r = metrics["role_models"]
    lines += ["", f"## Role models ({r['model']})", "",
              "For each test photo with a person, the earliest earlier test photo the model "
              "calls similar, against the earliest earlier photo of the same site and pose.", "",
              f"Agreement: {r['accuracy']:.2f} of {r['queries']} queries; found when one "
              f"exists: {r['found_when_one_exists']:.2f}.", "",
              roles.head(8).assign(**{c: roles[c].head(8).map(_short)
                                      for c in ("query", "true_role_model", "predicted")})
              .to_markdown(index=False) if len(roles) else "_(no queries)_",
              "", "## Nearest neighbours", "", "![neighbours](neighbours.png)", ""]
    for e in metrics["neighbours"]:
        lines.append(f"- {e['label']}: " + ", ".join(f"{n['label']} ({n['p']:.2f})"
                                                      for n in e["neighbours"]))
    return "\n".join(lines) + "\n"


def _short(image_id: object) -> str:
    """``landmark_photos:Data/Site/Pose/file`` -> ``Site/Pose/file``."""
    return "" if not isinstance(image_id, str) else image_id.split("Data/", 1)[-1]
