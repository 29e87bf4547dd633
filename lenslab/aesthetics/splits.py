"""Personalised aesthetics, the plain logic: the worker split, k-shot draws, targets, the report.

FLICKR-AES ships no split file. Ren et al. (ICCV 2017) hold out the workers with a middling number
of ratings (37 of 210 on the real data); ``rater_split`` rebuilds that rule from the ratings
(``lenslab.formats.flickr_aes.worker_split``), checks what the rule promises (train and test
workers rate disjoint images; on the full real data, 37 test workers) and fingerprints the result
so a changed split is visible. Every k-shot draw is seeded from the root seed and the
(worker, k, repeat) it belongs to, and the seed is written beside the draw.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lenslab.errors import DataError
from lenslab.formats.flickr_aes import TEST_WORKER_RATINGS, worker_split
from lenslab.seeding import derive_seed, rng

REAL_WORKERS, REAL_TEST_WORKERS = 210, 37  # FLICKR-AES as Ren et al. split it


@dataclass(frozen=True)
class AestheticsLayout:
    """Where the aesthetics system keeps its files under the data root."""

    # the stage folders under the data root (the assets' Stage outs name these)
    SPLITS = "aesthetics/splits"
    MODEL = "aesthetics/model"
    PERSONAL = "aesthetics/personal"
    ENHANCED = "aesthetics/enhanced"
    SALIENCY = "aesthetics/saliency"
    REPORT = "reports/aesthetics"

    root: Path

    @property
    def splits(self) -> Path:
        return self.root / self.SPLITS

    @property
    def workers(self) -> Path:
        return self.splits / "workers.parquet"

    @property
    def draws(self) -> Path:
        return self.splits / "kshot_draws.parquet"

    @property
    def split_info(self) -> Path:
        return self.splits / "split.json"

    @property
    def model(self) -> Path:
        return self.root / self.MODEL

    @property
    def features(self) -> Path:
        return self.model / "prefix_features.pt"

    @property
    def adapters(self) -> Path:
        return self.root / self.PERSONAL

    @property
    def enhanced(self) -> Path:
        return self.root / self.ENHANCED

    @property
    def saliency(self) -> Path:
        return self.root / self.SALIENCY

    @property
    def report(self) -> Path:
        return self.root / self.REPORT


def rater_split(ratings: pd.DataFrame, low: int = TEST_WORKER_RATINGS[0],
                high: int = TEST_WORKER_RATINGS[1]) -> pd.DataFrame:
    """One row per worker: split (train/test by the count rule) and n_ratings; checked."""
    if ratings.empty:
        raise DataError(Path("ratings.parquet"), "no ratings to split")
    split = worker_split(ratings, low, high)
    workers = pd.DataFrame({"worker": split.index, "split": split.to_numpy(),
                            "n_ratings": ratings.groupby("worker").size()
                            .loc[split.index].to_numpy()})
    test = set(workers.loc[workers["split"] == "test", "worker"])
    if not test or len(test) == len(workers):
        raise DataError(Path("ratings.parquet"),
                        f"the {low}-{high} ratings rule gives {len(test)} test workers of "
                        f"{len(workers)}: not a FLICKR-AES worker split")
    rated_by_test = set(ratings.loc[ratings["worker"].isin(test), "image_id"])
    rated_by_train = set(ratings.loc[~ratings["worker"].isin(test), "image_id"])
    shared = rated_by_test & rated_by_train
    if shared:
        raise DataError(Path("ratings.parquet"), f"{len(shared)} images rated by both train "
                        f"and test workers (e.g. {sorted(shared)[0]}): the split leaks")
    if len(workers) == REAL_WORKERS and len(test) != REAL_TEST_WORKERS:
        raise DataError(Path("ratings.parquet"), f"{len(test)} test workers, Ren et al. have "
                        f"{REAL_TEST_WORKERS}")
    return workers.sort_values(["split", "worker"]).reset_index(drop=True)


def split_fingerprint(workers: pd.DataFrame) -> str:
    """A short hash of the (worker, split) pairs: the split's version."""
    text = "\n".join(f"{w},{s}" for w, s in sorted(zip(workers["worker"], workers["split"],
                                                        strict=True)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_against_truth(workers: pd.DataFrame, truth: pd.DataFrame) -> list[str]:
    """Workers whose rebuilt split differs from the generator's ground truth (synthetic data)."""
    known = truth.set_index("worker")["split"]
    mine = workers.set_index("worker")["split"]
    common = mine.index.intersection(known.index)
    return sorted(w for w in common if mine[w] != known[w])


def kshot_draws(ratings: pd.DataFrame, workers: pd.DataFrame, ks: list[int],
                repeats: list[int], min_heldout: int, seed: int,
                ) -> tuple[pd.DataFrame, list[str]]:
    """For each test worker, k and repeat: k shots, the rest held out (seeded per draw).

    Rows: worker, k, repeat, seed, image_id, score, role ("shot" or "heldout"). A worker with
    fewer than k + ``min_heldout`` ratings is skipped for that k; the messages say who and why.
    """
    if len(ks) != len(repeats):
        raise ValueError(f"ks {ks} and repeats {repeats} must have the same length")
    test = workers.loc[workers["split"] == "test", "worker"]
    rows, skipped = [], []
    for worker in sorted(test):
        mine = ratings[ratings["worker"] == worker].sort_values("image_id")
        for k, n_rep in zip(ks, repeats, strict=True):
            if len(mine) < k + min_heldout:
                skipped.append(f"worker {worker} skipped at k={k}: {len(mine)} ratings, needs "
                               f"{k} shots + {min_heldout} held out")
                continue
            for rep in range(n_rep):
                s = derive_seed(seed, "aesthetics", "kshot", worker, k, rep)
                shot = np.zeros(len(mine), bool)
                shot[rng(s).choice(len(mine), k, replace=False)] = True
                rows.append(pd.DataFrame({
                    "worker": worker, "k": k, "repeat": rep, "seed": s,
                    "image_id": mine["image_id"].to_numpy(), "score": mine["score"].to_numpy(),
                    "role": np.where(shot, "shot", "heldout")}))
    columns = ["worker", "k", "repeat", "seed", "image_id", "score", "role"]
    draws = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)
    return draws, skipped


def mean_ratings(ratings: pd.DataFrame, workers: pd.DataFrame) -> pd.Series:
    """image_id -> mean rating over train workers only (the generic model's target)."""
    train = set(workers.loc[workers["split"] == "train", "worker"])
    return ratings[ratings["worker"].isin(train)].groupby("image_id")["score"].mean()


def validation_images(image_ids: list[str], fraction: float, seed: int) -> set[str]:
    """A seeded share of the train workers' images held out to pick the generic model's epoch."""
    ids = sorted(image_ids)
    n = max(1, round(fraction * len(ids)))
    return {ids[i] for i in rng(seed, "aesthetics", "validation").permutation(len(ids))[:n]}


def image_paths(catalog: pd.DataFrame, image_ids: list[str], quarantine: pd.DataFrame
                ) -> tuple[pd.Series, dict[str, str]]:
    """(image_id -> normalised path of the usable ``image_ids``, in order; image_id -> why it was
    dropped). A rated image the catalog quarantined is dropped with the reason, so one bad file
    does not stop the stage; one neither catalogued nor quarantined is an error (the catalog is
    older than the ratings)."""
    from lenslab.catalog import unusable_images

    rows = catalog[catalog["source"] == "flickr_aes"].drop_duplicates("image_id")
    paths = rows.set_index("image_id")["normalised_path"]
    unusable = unusable_images(catalog, quarantine)
    dropped = {i: unusable[i] for i in image_ids if i not in paths.index and i in unusable}
    missing = sorted(set(image_ids) - set(paths.index) - set(dropped))
    if missing:
        raise DataError(Path("catalog/image_catalog.parquet"),
                        f"{len(missing)} rated images not in the catalog, e.g. {missing[0]}")
    return paths.loc[[i for i in image_ids if i not in dropped]], dropped


WORKER_UNIT = "test worker"


def _median(values: np.ndarray, _: np.ndarray) -> float:
    return float(np.median(values))


def worker_intervals(per_worker: pd.DataFrame, *, resamples: int,
                     seed: int) -> dict[tuple[int, str], dict[str, object]]:
    """Per (k, method), 95% intervals of the median Δ Spearman and of the median personal and
    generic ρ, from a bootstrap over test workers (a worker's repeats are averaged first: the
    worker, not the rating, is the unit). ``per_worker``: k, method, worker, delta,
    generic_rho, personal_rho."""
    from lenslab.metrics import bootstrap_ci, n_units

    out = {}
    for (k, method), rows in per_worker.groupby(["k", "method"], sort=True):
        workers = rows["worker"].to_numpy()
        entry: dict[str, object] = {"unit": WORKER_UNIT, "units": n_units(workers)}
        for column, key in (("delta", "median_ci95"), ("generic_rho", "generic_rho_ci95"),
                            ("personal_rho", "personal_rho_ci95")):
            v = rows[column].to_numpy(dtype=float)
            entry[key] = bootstrap_ci(v, v, _median, groups=workers, resamples=resamples,
                                      seed=seed, name=f"aesthetics/{k}/{method}/{column}")
        out[(int(k), str(method))] = entry
    return out


def _ci(row: dict, key: str) -> str:
    ci = row.get(key)
    return "" if ci is None else f" [{ci[0]:+.3f}, {ci[1]:+.3f}]"


def report_markdown(metrics: dict, figures: dict[str, str]) -> str:
    """The aesthetics report: Δ Spearman per k and method, parameters, enhancement, skips."""
    lines = ["# Personalised aesthetics", "",
             f"Split: {metrics['split']['train_workers']} train / "
             f"{metrics['split']['test_workers']} test workers (rule "
             f"{metrics['split']['rule']}, version {metrics['split']['fingerprint']}). "
             f"Generic model: validation Spearman {metrics['generic']['val_spearman']:.3f} "
             f"(ridge head on the frozen network: {metrics['generic']['ridge_val_spearman']:.3f}).",
             "", "## Change in Spearman over the generic model, per test worker",
             "", "Held-out images of each test worker; a worker's value is the mean over repeats. "
             "Every method starts at the generic model; a change is kept only when it lowers the "
             f"MSE on {metrics['recipe']['holdout']:.0%} of the shots held aside, and with fewer "
             f"than {metrics['recipe']['min_stop']} held-aside shots the user keeps the generic "
             "model (steps = 0).",
             " 95% intervals: bootstrap over test workers (the unit; a worker's repeats are "
             "averaged first).",
             "", "| k | method | median Δ [95% CI] | mean ± sd Δ | improved | generic ρ (median) "
             "| personal ρ (median) [95% CI] | steps (median) |",
             "|---|---|---|---|---|---|---|---|"]
    for row in metrics["results"]:
        lines.append(
            f"| {row['k']} | {row['method']} | {row['median']:+.3f}{_ci(row, 'median_ci95')} | "
            f"{row['mean']:+.3f} ± "
            f"{row['sd']:.3f} | {row['improved']:.0%} of {row['n']} | "
            f"{row['generic_rho']:.3f} | {row['personal_rho']:.3f}"
            f"{_ci(row, 'personal_rho_ci95')} | {row['steps']:.0f} |")
    lines += ["", "## Trainable parameters per user", "", "| method | parameters | of full |",
              "|---|---|---|"]
    full = metrics["parameters"]["full"]
    for method, n in metrics["parameters"].items():
        lines.append(f"| {method} | {n:,} | {n / full:.1%} |")
    e = metrics["enhancement"]
    lines += ["", "## Enhancement (personal adapters model, held-out photos)", "",
              f"- pixel gradient ascent (ε={e['epsilon']}, {e['steps']} steps): score rose on "
              f"{e['pixel_rose']:.0%} of {e['photos']} photos, median gain "
              f"{e['pixel_gain_median']:+.3f} (generic model's view: "
              f"{e['pixel_generic_gain_median']:+.3f})",
              f"- global edits: score rose on {e['edit_rose']:.0%}, median gain "
              f"{e['edit_gain_median']:+.3f} (generic model's view: "
              f"{e['edit_generic_gain_median']:+.3f}); median edits "
              + ", ".join(f"{k} {v:+.2f}" for k, v in e["edit_median"].items())]
    if metrics["skipped"]:
        lines += ["", "## Skipped", ""] + [f"- {s}" for s in metrics["skipped"]]
    lines += ["", "## Figures", ""] + [f"- {name}: `{path}`" for name, path in figures.items()]
    return "\n".join(lines) + "\n"


def quality_problems(metrics: dict) -> list[str]:
    """Why the personalised models fall short (empty: they pass): at the largest k the adapters
    must raise the median per-worker Spearman over the generic model, with at most 10% of a full
    fine-tune's parameters; at the smallest k no method may lower the median."""
    ks = sorted({r["k"] for r in metrics["results"]})
    if not ks:
        return ["no personalisation results"]
    problems = []
    top = [r for r in metrics["results"] if r["k"] == ks[-1] and r["method"] == "adapters"]
    if not top or top[0]["median"] <= 0:
        problems.append(f"adapters do not help at k={ks[-1]}")
    problems += [f"{r['method']} lowers the median at k={ks[0]}"
                 for r in metrics["results"] if r["k"] == ks[0] and r["median"] < 0]
    p = metrics["parameters"]
    if p.get("adapters", 0) > 0.1 * p.get("full", 0):
        problems.append("adapters exceed 10% of a full fine-tune")
    return problems


def write_json(path: Path, payload: dict) -> None:
    from lenslab.atomic import write_text

    write_text(path, json.dumps(payload, indent=2, default=float))
