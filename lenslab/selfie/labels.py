"""Selfie quality, the plain logic: labels from popularity, the feature cache, honest metrics.

Good/bad labels follow the UCF Selfie paper and Karpathy's #selfie post: the extremes of the
popularity score are labelled (bottom quantile bad, top quantile good) and the ambiguous middle is
left out. The split comes first, drawn per content hash (so a duplicate never straddles two)
and blind to popularity; the two thresholds are then the quantiles of the *training* rows only,
so no validation or test popularity shapes the labels the models are judged on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lenslab.formats.selfies import ATTRIBUTES
from lenslab.metrics import format_ci
from lenslab.seeding import rng

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Thresholds:
    bad: float  # popularity at or below: bad
    good: float  # at or above: good


def selfie_rows(catalog: pd.DataFrame) -> pd.DataFrame:
    """The catalog's selfies, one row per distinct image, popularity and attributes as columns."""
    rows = catalog[(catalog["source"] == "selfies") & catalog["duplicate_of"].isna()]
    rows = rows.drop_duplicates("sha256")
    labels = pd.DataFrame([json.loads(x) if x else {} for x in rows["labels"]], index=rows.index)
    missing = [c for c in ("popularity", *ATTRIBUTES) if c not in labels.columns]
    if missing:
        raise ValueError(f"selfie labels lack {missing[:5]} (not a UCF Selfie catalog?)")
    out = rows[["image_id", "sha256", "normalised_path"]].copy()
    out["popularity"] = labels["popularity"].astype(float)
    for name in ATTRIBUTES:
        out[name] = labels[name].fillna(0).astype("int8")
    return out.reset_index(drop=True)


def thresholds_from(popularity: pd.Series, bad_quantile: float,
                    good_quantile: float) -> Thresholds:
    """The popularity at the two quantiles of the rows given (the training rows)."""
    if not 0 < bad_quantile <= good_quantile < 1:
        raise ValueError(f"need 0 < bad_quantile <= good_quantile < 1, got "
                         f"{bad_quantile}, {good_quantile}")
    if popularity.empty:
        raise ValueError("no training selfies to draw the label thresholds from")
    return Thresholds(float(popularity.quantile(bad_quantile)),
                      float(popularity.quantile(good_quantile)))


def quantile_labels(selfies: pd.DataFrame, thresholds: Thresholds) -> pd.DataFrame:
    """Keep popularity at or below ``thresholds.bad`` (label 0) or at or above
    ``thresholds.good`` (label 1); the middle is left out."""
    pop = selfies["popularity"]
    bad, good = pop <= thresholds.bad, pop >= thresholds.good
    kept = selfies[bad | good].copy()
    kept.insert(4, "label", good[bad | good].astype("int8"))
    return kept.reset_index(drop=True)


def random_split(sha256s: pd.Series, fractions: dict[str, float], seed: int) -> np.ndarray:
    """A split name per row, blind to popularity: rows in content-hash order, shuffled (seeded)
    and cut by the fractions."""
    total = sum(fractions[s] for s in SPLITS)
    order = np.argsort(sha256s.to_numpy(), kind="stable")
    idx = order[rng(seed, "selfie", "split").permutation(len(order))]
    cuts = np.round(np.cumsum([fractions[s] / total for s in SPLITS]) * len(idx)).astype(int)
    out = np.empty(len(idx), dtype=object)
    for name, lo, hi in zip(SPLITS, [0, *cuts[:-1]], cuts, strict=True):
        out[idx[lo:hi]] = name
    return out


def build_labels(
    catalog: pd.DataFrame, *, bad_quantile: float, good_quantile: float,
    fractions: dict[str, float], seed: int,
) -> tuple[pd.DataFrame, Thresholds]:
    """The labelled selfies with their split (the selfie_labels table): split first, thresholds
    from the training rows, then every split labelled with them."""
    rows = selfie_rows(catalog)
    rows.insert(4, "split", random_split(rows["sha256"], fractions, seed))
    thresholds = thresholds_from(rows.loc[rows["split"] == "train", "popularity"],
                                 bad_quantile, good_quantile)
    return quantile_labels(rows, thresholds), thresholds


# --- transfer-value cache ------------------------------------------------------------------

CACHE_KEY = ("sha256", "backbone", "image_size")


def read_cache(path) -> pd.DataFrame:
    """The cached transfer values (sha256, backbone, image_size, features), empty if none."""
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        return pd.DataFrame({"sha256": pd.Series(dtype=str), "backbone": pd.Series(dtype=str),
                             "image_size": pd.Series(dtype="int64"),
                             "features": pd.Series(dtype=object)})


def missing_from_cache(
    cache: pd.DataFrame, sha256s: Sequence[str], backbone: str, image_size: int
) -> list[str]:
    """The hashes whose values for this backbone and size are not cached yet (in order)."""
    have = cache.loc[(cache["backbone"] == backbone) & (cache["image_size"] == image_size),
                     "sha256"]
    have_set = set(have)
    return [s for s in dict.fromkeys(sha256s) if s not in have_set]


def add_to_cache(
    cache: pd.DataFrame, sha256s: Sequence[str], features: np.ndarray, backbone: str,
    image_size: int,
) -> pd.DataFrame:
    new = pd.DataFrame({"sha256": list(sha256s), "backbone": backbone,
                        "image_size": image_size,
                        "features": list(features.astype(np.float32))})
    merged = pd.concat([cache, new], ignore_index=True) if len(cache) else new
    return merged.drop_duplicates(list(CACHE_KEY), keep="last").reset_index(drop=True)


def lookup(cache: pd.DataFrame, sha256s: Sequence[str], backbone: str,
           image_size: int) -> np.ndarray:
    """An (n, d) float32 matrix of cached values in the order of ``sha256s``."""
    rows = cache[(cache["backbone"] == backbone) & (cache["image_size"] == image_size)]
    by_sha = rows.set_index("sha256")["features"]
    return np.stack([np.asarray(by_sha[s], dtype=np.float32) for s in sha256s])


def errors_by_attribute(frame: pd.DataFrame, correct: np.ndarray,
                        min_count: int = 3) -> pd.DataFrame:
    """Error rate with each attribute present (1) vs absent (-1); unlabelled (0) rows skipped.

    Sorted by how much more often the classifier errs when the attribute is present.
    """
    wrong = ~np.asarray(correct, dtype=bool)
    rows = []
    for name in ATTRIBUTES:
        values = frame[name].to_numpy()
        on, off = values == 1, values == -1
        if on.sum() < min_count or off.sum() < min_count:
            continue
        rows.append({"attribute": name, "n_present": int(on.sum()),
                     "error_present": float(wrong[on].mean()), "n_absent": int(off.sum()),
                     "error_absent": float(wrong[off].mean())})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["difference"] = table["error_present"] - table["error_absent"]
    return table.sort_values("difference", ascending=False).reset_index(drop=True)


def quality_problems(metrics: dict) -> list[str]:
    """Why the selfie models fail their quality bar (empty: they pass): both transfer models
    beat the from-scratch CNN on test ROC-AUC, and every model's 95% interval is above 0.5."""
    m = metrics["models"]
    problems = [f"{n} ≤ scratch" for n in ("head", "finetune")
                if m[n]["roc_auc"] <= m["scratch"]["roc_auc"]]
    problems += [f"{n} CI touches 0.5" for n in m if m[n]["roc_auc_ci95"][0] <= 0.5]
    return problems


def _resampling_line(metrics: dict) -> str:
    r = next(iter(metrics["models"].values())).get("resampling", {})
    return (f"95% intervals: percentile bootstrap resampling test {r.get('unit', 'item')}s "
            f"({r.get('units', '?')} of them).")


def report_markdown(metrics: dict, errors: pd.DataFrame, figures: dict[str, str]) -> str:
    """The selfie report as markdown (also shown as Dagster metadata)."""
    lines = ["# Selfie quality: good vs bad selfies", "",
             f"Labels: popularity ≤ q{metrics['labels']['bad_quantile']} bad, "
             f"≥ q{metrics['labels']['good_quantile']} good; "
             f"test images: {metrics['labels']['test']} "
             f"({metrics['labels']['test_good']} good). Chance ROC-AUC 0.5. Thresholds are the "
             "quantiles of the training rows only.", "",
             _resampling_line(metrics), "",
             "| model | test accuracy [95% CI] | test ROC-AUC [95% CI] | best epoch (val AUC) |",
             "|---|---|---|---|"]
    for name, m in metrics["models"].items():
        lines.append(f"| {name} | {format_ci(m['accuracy'], m['accuracy_ci95'])} | "
                     f"{format_ci(m['roc_auc'], m['roc_auc_ci95'])} | "
                     f"{m['best_epoch']} ({m['best_val_auc']:.3f}) |")
    lines += ["", "Paired bootstrap, AUC difference vs the from-scratch CNN:", ""]
    for name, d in metrics["vs_scratch"].items():
        lines.append(f"- {name}: {format_ci(d['difference'], d['ci95'])}")
    lines += ["", "Confusion matrices (rows: true bad, good; columns: predicted bad, good):", ""]
    for name, m in metrics["models"].items():
        lines.append(f"- {name}: {m['confusion']['rows_true_0_1']}")
    lines += ["", f"## Where the errors concentrate ({metrics['error_model']}, test)", ""]
    lines.append(errors.head(10).to_markdown(index=False, floatfmt=".2f")
                 if len(errors) else "_(too few test images)_")
    lines += ["", "## Figures", ""]
    lines += [f"- {what}: `{path}`" for what, path in figures.items()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SelfieLayout:
    """Where the selfie system keeps its files under the data root."""

    # the stage folders under the data root (the assets' Stage outs name these)
    LABELS = "selfie/labels"
    FEATURES = "selfie/features"
    MODELS = "selfie/models"
    REPORT = "reports/selfie"

    root: Path

    @property
    def labels(self) -> Path:
        return self.root / self.LABELS / "selfie_labels.parquet"

    @property
    def features(self) -> Path:
        return self.root / self.FEATURES / "transfer_values.parquet"

    @property
    def models(self) -> Path:
        return self.root / self.MODELS

    @property
    def predictions(self) -> Path:
        return self.models / "predictions.parquet"

    @property
    def report(self) -> Path:
        return self.root / self.REPORT
