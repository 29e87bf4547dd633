"""Training the three selfie classifiers on the data tree, without Dagster, and the served model.

The seed's head (FC + softmax) on cached transfer values, the fine-tuned trunk starting from that
head, and a small CNN from random weights as the baseline; each keeps its best epoch by
validation ROC-AUC and scores the validation and test selfies.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from lenslab.atomic import write_parquet, write_text
from lenslab.selfie.labels import SelfieLayout, lookup, read_cache
from models.backbones import build_trunk
from models.checkpoints import load_state, save_state
from models.images import load_images
from models.selfie.classifiers import (
    FineTuned,
    SmallCNN,
    TrainResult,
    TrainSettings,
    TransferHead,
    predict_proba,
    train_classifier,
)

MODELS = ("head", "finetune", "scratch")


@dataclass(frozen=True)
class SelfieSettings:
    backbone: str
    image_size: int  # of the cached transfer values
    batch_size: int
    head_hidden: int
    head_lr: float
    head_epochs: int
    finetune_size: int
    finetune_epochs: int
    finetune_lr: float
    finetune_frozen_stages: int
    scratch_size: int
    scratch_epochs: int
    scratch_lr: float


@dataclass
class SelfieFit:
    results: dict[str, TrainResult]
    timings: dict[str, float]
    seeds: dict[str, int]
    splits: dict[str, int]


def fit_selfie(layout: SelfieLayout, settings: SelfieSettings, seeds: dict[str, int],
               device: torch.device, log: Callable[[str], None] = print) -> SelfieFit:
    """Train the three classifiers; write their weights, val/test predictions and history."""
    labels = pd.read_parquet(layout.labels)
    split = {s: torch.from_numpy(np.flatnonzero(labels["split"].to_numpy() == s))
             for s in ("train", "val", "test")}
    y = torch.from_numpy(labels["label"].to_numpy().astype(np.int64, copy=True))
    features = torch.from_numpy(lookup(read_cache(layout.features), labels["sha256"],
                                       settings.backbone, settings.image_size))
    results, probs, timings = {}, {}, {}

    def fit(name: str, model: torch.nn.Module, x: torch.Tensor, train: TrainSettings):
        start = time.perf_counter()
        model, results[name] = train_classifier(
            model, (x[split["train"]], y[split["train"]]), (x[split["val"]], y[split["val"]]),
            train, device, log=lambda line: log(f"{name} {line}"))
        timings[name] = round(time.perf_counter() - start, 2)
        save_state(model, layout.models / f"{name}.pt")
        probs[name] = predict_proba(model, x, device, images=train.images)
        return model

    s = settings
    torch.manual_seed(seeds["head"])  # the head's initial weights: seeded, so reruns agree
    head = fit("head", TransferHead(features.shape[1], s.head_hidden), features,
               TrainSettings(s.head_epochs, s.head_lr, s.batch_size, seeds["head"]))
    # fine-tuning starts from the trained head (train the head first, then the trunk)
    paths = [layout.root / p for p in labels["normalised_path"]]
    images = load_images(paths, s.finetune_size)
    fit("finetune", FineTuned(build_trunk(s.backbone), head, s.finetune_frozen_stages), images,
        TrainSettings(s.finetune_epochs, s.finetune_lr, s.batch_size, seeds["finetune"],
                      augment=True, images=True))
    if s.scratch_size != s.finetune_size:
        images = load_images(paths, s.scratch_size)
    torch.manual_seed(seeds["scratch"])  # its initial weights
    fit("scratch", SmallCNN(), images,
        TrainSettings(s.scratch_epochs, s.scratch_lr, s.batch_size, seeds["scratch"],
                      augment=True, images=True))

    scored = labels.loc[labels["split"] != "train", ["image_id", "sha256", "split", "label"]]
    for name in MODELS:
        scored[f"p_{name}"] = probs[name][scored.index]
    write_parquet(layout.predictions, scored.reset_index(drop=True))
    summary = {name: {"best_epoch": r.best_epoch, "best_val_auc": r.best_val_auc,
                      "train_seconds": timings[name], "seed": seeds[name], "history": r.history}
               for name, r in results.items()}
    write_text(layout.models / "training.json", json.dumps(summary, indent=2))
    return SelfieFit(results, timings, seeds, {k: len(v) for k, v in split.items()})


def served_model(layout: SelfieLayout, chosen: str, backbone: str, head_hidden: int,
                 frozen_stages: int) -> tuple[FineTuned, int]:
    """The classifier ``lenslab selfie`` serves (head or finetune) on its trunk, and how many
    trunk stages it keeps frozen."""
    if chosen == "finetune":
        trunk = build_trunk(backbone, pretrained=False)
        model = load_state(FineTuned(trunk, TransferHead(trunk.dim, head_hidden)),
                           layout.models / "finetune.pt")
        return model, frozen_stages
    trunk = build_trunk(backbone, pretrained=True)  # the head on the trunk it was trained on
    head = load_state(TransferHead(trunk.dim, head_hidden), layout.models / "head.pt")
    return FineTuned(trunk, head), len(trunk.stages)
