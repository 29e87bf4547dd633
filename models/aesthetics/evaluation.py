"""The aesthetics report, without Dagster: Δ Spearman over the generic model per k and method
(with intervals over test workers), parameters per user read from the stored files, the
enhancement figures, and the scorer `lenslab rate` serves."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import torch

from lenslab.aesthetics.figures import delta_figure, enhancement_figure
from lenslab.aesthetics.splits import (
    AestheticsLayout,
    report_markdown,
    worker_intervals,
    write_json,
)
from lenslab.atomic import write_text
from models.aesthetics.fit import personal_model_files
from models.aesthetics.networks import METHODS, AestheticNet, Prefix, Scorer, summarise_deltas
from models.backbones import build_trunk
from models.checkpoints import load_state


@dataclass(frozen=True)
class ReportSettings:
    seed: int
    bootstrap: int
    enhance_steps: int
    enhance_epsilon: float
    holdout: float
    min_stop: int


def _enhancement(enhanced: pd.DataFrame, steps: int, epsilon: float) -> dict:
    def median_gain(after: str, before: str) -> float:
        return float((enhanced[after] - enhanced[before]).median())

    return {
        "photos": len(enhanced), "steps": steps, "epsilon": epsilon,
        "pixel_rose": float((enhanced["pixel_score"] > enhanced["score"]).mean()),
        "edit_rose": float((enhanced["edit_score"] > enhanced["score"]).mean()),
        "pixel_gain_median": median_gain("pixel_score", "score"),
        "edit_gain_median": median_gain("edit_score", "score"),
        "pixel_generic_gain_median": median_gain("generic_pixel_score", "generic_score"),
        "edit_generic_gain_median": median_gain("generic_edit_score", "generic_score"),
        "edit_median": {c[5:]: float(enhanced[c].median()) for c in enhanced.columns
                        if c.startswith("edit_") and c != "edit_score"},
    }


def _stored_parameters(layout: AestheticsLayout) -> dict[str, int]:
    """Trainable parameters per user, counted in the stored per-user files themselves."""
    params = {}
    for method in METHODS:
        files = sorted(layout.adapters.glob(f"{method}/k*/*.pt"))
        if files:
            state = torch.load(files[0], map_location="cpu", weights_only=True)
            params[method] = int(sum(t.numel() for t in state.values()))
    return params


def evaluate_personalisation(layout: AestheticsLayout, settings: ReportSettings
                             ) -> tuple[dict, str]:
    """Write reports/aesthetics/ (metrics.json, report.md, figures); return metrics and md."""
    out = layout.report
    split = json.loads(layout.split_info.read_text())
    results = pd.read_parquet(layout.adapters / "results.parquet")
    enhanced = pd.read_parquet(layout.enhanced / "enhancement.parquet")
    per_worker = results.groupby(["k", "method", "worker"], as_index=False)[
        ["delta", "generic_rho", "personal_rho", "steps"]].mean()
    intervals = worker_intervals(per_worker, resamples=settings.bootstrap, seed=settings.seed)
    table = [{"k": int(k), "method": method, **summarise_deltas(rows["delta"]),
              "generic_rho": float(rows["generic_rho"].median()),
              "personal_rho": float(rows["personal_rho"].median()),
              "steps": float(rows["steps"].median()), **intervals[(int(k), method)]}
             for (k, method), rows in per_worker.groupby(["k", "method"], sort=True)]
    figures = {"Δ Spearman per worker": out / "delta_spearman.png",
               "example enhancements": out / "enhancements.png",
               "saliency (generic vs personal)": layout.saliency / "saliency.png"}
    delta_figure(per_worker, figures["Δ Spearman per worker"])
    enhancement_figure(enhanced.head(4), layout.enhanced, figures["example enhancements"])
    metrics = {"split": split,
               "generic": json.loads((layout.model / "training.json").read_text()),
               "results": table, "parameters": _stored_parameters(layout),
               "recipe": {"holdout": settings.holdout, "min_stop": settings.min_stop},
               "enhancement": _enhancement(enhanced, settings.enhance_steps,
                                           settings.enhance_epsilon),
               "skipped": split["skipped"],
               "seconds_per_run": {f"k={k} {m}": float(v) for (k, m), v in
                                   results.groupby(["k", "method"])["seconds"].median().items()}}
    md = report_markdown(metrics, {k: v.relative_to(layout.root).as_posix()
                                   for k, v in figures.items()})
    write_json(out / "metrics.json", metrics)
    write_text(out / "report.md", md)
    return metrics, md


def served_scorer(layout: AestheticsLayout, architecture: dict, method: str = "adapters"
                  ) -> tuple[Scorer, dict[str, dict], dict[str, dict]]:
    """The generic scorer `lenslab rate` serves, and each test worker's personal parameters
    (their model with the most shots) as named extra states: (scorer, users, states)."""
    trunk = build_trunk(architecture["backbone"])  # the prefix keeps its ImageNet weights
    cut = architecture["frozen_stages"]
    scorer = Scorer(Prefix(trunk, cut), load_state(AestheticNet(trunk, cut),
                                                   layout.model / "generic.pt"),
                    architecture["image_size"])
    users, states = {}, {}
    for i, (worker, path) in enumerate(sorted(personal_model_files(layout, method).items())):
        users[worker] = {"method": method, "k": int(path.parent.name[1:]),
                         "state": f"users/{i:04d}"}  # worker ids need not be file names
        states[users[worker]["state"]] = torch.load(path, map_location="cpu", weights_only=True)
    return scorer, users, states
