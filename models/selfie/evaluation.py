"""The selfie report, without Dagster: held-out metrics with intervals, what the errors share,
and views inside the networks (PCA/t-SNE of transfer values, saliency, stage activations)."""

from __future__ import annotations

import json

import pandas as pd
import torch

from lenslab.atomic import write_text
from lenslab.metrics import binary_metrics, paired_auc_difference
from lenslab.seeding import derive_seed
from lenslab.selfie.figures import activation_grid, feature_maps, saliency_grid
from lenslab.selfie.labels import (
    SelfieLayout,
    errors_by_attribute,
    lookup,
    read_cache,
    report_markdown,
)
from models.backbones import build_trunk
from models.checkpoints import load_state
from models.images import load_images
from models.selfie.classifiers import FineTuned, TransferHead, saliency, stage_activations
from models.selfie.fit import MODELS


def _figures(layout: SelfieLayout, labels: pd.DataFrame, test_rows: pd.DataFrame,
             preds: pd.DataFrame, *, backbone: str, image_size: int, finetune_size: int,
             head_hidden: int, samples: int, seed: int, device: torch.device) -> dict:
    out = layout.report
    figures = {"PCA of transfer values": out / "pca.png",
               "t-SNE of transfer values": out / "tsne.png",
               "gradient saliency": out / "saliency.png",
               "per-stage activations": out / "activations.png"}
    features = lookup(read_cache(layout.features), labels["sha256"], backbone, image_size)
    feature_maps(features, labels["label"].to_numpy(), seed,
                 figures["PCA of transfer values"], figures["t-SNE of transfer values"])
    # samples: the first good and bad test selfies, in the table's (seeded) order
    per_class = max(1, samples // 2)
    picks = pd.concat([test_rows[test_rows["label"] == c].head(per_class) for c in (1, 0)])
    images = load_images([layout.root / p for p in picks["normalised_path"]], finetune_size)
    trunk = build_trunk(backbone, pretrained=False)
    model = load_state(FineTuned(trunk, TransferHead(trunk.dim, head_hidden)),
                       layout.models / "finetune.pt")
    p_good = preds.set_index("image_id").loc[picks["image_id"], "p_finetune"].to_numpy()
    titles = [f"{'good' if lab else 'bad'}, P(good)={p:.2f}"
              for lab, p in zip(picks["label"], p_good, strict=True)]
    saliency_grid(images.numpy(), saliency(model, images, device), titles,
                  figures["gradient saliency"])
    stages = [s for s in (1, 3, 6, 10, 13, 17) if s < len(trunk.stages)]
    activation_grid(images.numpy(), stage_activations(trunk, images, stages, device),
                    figures["per-stage activations"])
    return {k: v.relative_to(layout.root).as_posix() for k, v in figures.items()}


def evaluate_selfie(layout: SelfieLayout, *, backbone: str, image_size: int, finetune_size: int,
                    head_hidden: int, samples: int, seed: int, resamples: int,
                    thresholds: dict, device: torch.device) -> tuple[dict, pd.DataFrame, str]:
    """Write reports/selfie/ (metrics.json, report.md, figures); return the metrics, the error
    table and the markdown."""
    labels = pd.read_parquet(layout.labels)
    preds = pd.read_parquet(layout.predictions)
    training = json.loads((layout.models / "training.json").read_text())
    test = preds[preds["split"] == "test"].reset_index(drop=True)
    y = test["label"].to_numpy()
    # one row per distinct photo (labels are deduplicated by content): the photo is the unit
    kw = {"resamples": resamples, "seed": seed, "groups": test["sha256"].to_numpy(),
          "unit": "photo"}
    models = {}
    for name in MODELS:
        models[name] = binary_metrics(y, test[f"p_{name}"].to_numpy(), name=name, **kw)
        models[name].update(best_epoch=training[name]["best_epoch"],
                            best_val_auc=training[name]["best_val_auc"])
    vs_scratch = {n: paired_auc_difference(y, test[f"p_{n}"].to_numpy(),
                                           test["p_scratch"].to_numpy(),
                                           name=f"{n}-scratch", **kw)
                  for n in ("head", "finetune")}
    # which transfer model to dissect (and serve) is chosen on validation, like everything else
    error_model = max(("head", "finetune"), key=lambda n: training[n]["best_val_auc"])
    test_rows = labels.set_index("image_id").loc[test["image_id"]].reset_index()
    correct = (test[f"p_{error_model}"].to_numpy() >= 0.5) == (y == 1)
    errors = errors_by_attribute(test_rows, correct)
    figures = _figures(layout, labels, test_rows, preds, backbone=backbone,
                       image_size=image_size, finetune_size=finetune_size,
                       head_hidden=head_hidden, samples=samples, seed=seed, device=device)
    metrics = {
        "labels": {**thresholds, "test": len(y), "test_good": int(y.sum())},
        "models": models, "vs_scratch": vs_scratch, "error_model": error_model,
        "errors_by_attribute": errors.to_dict(orient="records"),
        "bootstrap": {"resamples": resamples,
                      "seeds": {n: derive_seed(seed, "bootstrap", f"{n}/roc_auc")
                                for n in MODELS}},
    }
    md = report_markdown(metrics, errors, figures)
    write_text(layout.report / "metrics.json", json.dumps(metrics, indent=2, default=float))
    write_text(layout.report / "report.md", md)
    return metrics, errors, md
