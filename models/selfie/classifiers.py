"""Selfie quality networks: a pretrained trunk, the seed's transfer head, fine-tuning, a small CNN.

The seed (Hvass-Labs tutorial #08 recipe) caches Inception's 2048-d pool features and trains
FC 1024 + ReLU + softmax over two classes with Adam (lr 1e-4, batch 64), keeping the checkpoint
with the best validation score. Here the trunk is any torchvision classifier with its pooled
features (MobileNetV2 by default: its ImageNet weights are the ones available offline).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score
from torch import nn

from models.backbones import Trunk, build_trunk, extract_features
from models.device import choose_precision
from models.images import as_float, image_tensor


class TransferHead(nn.Module):
    """The seed's head: FC ``hidden`` + ReLU, then two logits (softmax in the loss)."""

    def __init__(self, in_dim: int, hidden: int = 1024) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FineTuned(nn.Module):
    """Trunk + head trained end to end; the first ``frozen`` trunk stages stay fixed."""

    def __init__(self, trunk: Trunk, head: TransferHead, frozen: int = 0) -> None:
        super().__init__()
        self.trunk, self.head, self.frozen = trunk, head, frozen
        for stage in list(trunk.stages)[:frozen]:
            stage.requires_grad_(False)

    def train(self, mode: bool = True) -> FineTuned:
        super().train(mode)
        # frozen stages keep their ImageNet batch-norm statistics
        for stage in list(self.trunk.stages)[: self.frozen]:
            stage.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


def build_from_card(card: dict) -> FineTuned:
    """The registry's builder (models/registry.py): trunk + head, weights loaded after."""
    arch = card["architecture"]
    trunk = build_trunk(arch["backbone"], pretrained=False)
    return FineTuned(trunk, TransferHead(trunk.dim, arch["hidden"]), arch["frozen"])


class SmallCNN(nn.Module):
    """The from-scratch baseline: three conv layers (the seed's own CNN, plus batch norm)."""

    def __init__(self, widths: Sequence[int] = (16, 32, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in widths:
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.3), nn.Linear(c_in, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


# --- training ------------------------------------------------------------------------------

@dataclass
class TrainSettings:
    epochs: int
    lr: float
    batch_size: int = 64
    seed: int = 0
    weight_decay: float = 0.0
    augment: bool = False  # random horizontal flips (images only)
    images: bool = False  # inputs are uint8 images (else float features)


@dataclass
class TrainResult:
    best_epoch: int
    best_val_auc: float
    history: list[dict[str, float]] = field(default_factory=list)


def _inputs(x: torch.Tensor, s: TrainSettings, device: torch.device) -> torch.Tensor:
    return as_float(x, device) if s.images else x.to(device)


@torch.inference_mode()
def predict_proba(model: nn.Module, x: torch.Tensor, device: torch.device,
                  batch_size: int = 64, images: bool = True) -> np.ndarray:
    """P(good) for each input: softmax over the two logits."""
    model = model.to(device).eval()
    probs = []
    for i in range(0, len(x), batch_size):
        xb = as_float(x[i:i + batch_size], device) if images else x[i:i + batch_size].to(device)
        probs.append(torch.softmax(model(xb).float(), 1)[:, 1].cpu())
    return torch.cat(probs).numpy() if probs else np.zeros(0)


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def train_classifier(
    model: nn.Module, train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor], settings: TrainSettings, device: torch.device,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[nn.Module, TrainResult]:
    """Train with Adam and cross-entropy; return the weights of the epoch with the best val AUC.

    Like torchvision's reference train.py: seeded, one line of metrics per epoch, and the best
    checkpoint by validation (never test). Ties keep the earlier epoch.
    """
    torch.manual_seed(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    model = model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
    criterion = nn.CrossEntropyLoss()
    x_train, y_train = train
    x_val, y_val = val
    y_val_np = y_val.numpy()
    best = TrainResult(best_epoch=-1, best_val_auc=-math.inf)
    best_state = copy.deepcopy(model.state_dict())
    precision = choose_precision(device)
    scaler = precision.scaler()  # float16 gradients are scaled; otherwise a pass-through
    for epoch in range(settings.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        total, seen = torch.zeros((), device=device), 0  # summed on the device: no sync a step
        for i in range(0, len(order), settings.batch_size):
            idx = order[i:i + settings.batch_size]
            xb, yb = _inputs(x_train[idx], settings, device), y_train[idx].to(device)
            if settings.augment:
                flip = torch.rand(len(idx), generator=gen) < 0.5
                xb[flip.to(device)] = xb[flip.to(device)].flip(-1)
            with precision.autocast():
                loss = criterion(model(xb).float(), yb)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total, seen = total + loss.detach() * len(idx), seen + len(idx)
        p_val = predict_proba(model, x_val, device, settings.batch_size, settings.images)
        val_auc = _auc(y_val_np, p_val)
        val_acc = float(np.mean((p_val >= 0.5) == (y_val_np == 1)))
        row = {"epoch": epoch, "train_loss": float(total) / max(seen, 1), "val_auc": val_auc,
               "val_accuracy": val_acc}
        best.history.append(row)
        log(f"epoch {epoch}: train_loss {row['train_loss']:.4f} val_auc {val_auc:.4f} "
            f"val_acc {val_acc:.4f}")
        if val_auc > best.best_val_auc:
            best.best_epoch, best.best_val_auc = epoch, val_auc
            best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return model, best


# --- looking inside ------------------------------------------------------------------------

def saliency(model: nn.Module, images: torch.Tensor, device: torch.device) -> np.ndarray:
    """|d logit(good) / d pixel|, max over colour channels: (n, H, W), each scaled to [0, 1]."""
    model = model.to(device).eval()
    x = as_float(images, device).requires_grad_(True)
    model(x)[:, 1].sum().backward()
    grad = x.grad.abs().amax(1)
    grad = grad / grad.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    return grad.detach().cpu().numpy()


@torch.inference_mode()
def stage_activations(trunk: Trunk, images: torch.Tensor, stages: Sequence[int],
                      device: torch.device) -> dict[int, np.ndarray]:
    """Mean activation over channels after each chosen trunk stage: {stage: (n, h, w)}."""
    trunk = trunk.to(device).eval()
    x = (as_float(images, device) - trunk.mean) / trunk.std
    out: dict[int, np.ndarray] = {}
    for i, stage in enumerate(trunk.stages):
        x = stage(x)
        if i in stages:
            out[i] = x.mean(1).float().cpu().numpy()
    return out


def predict_images(images: Sequence[Image.Image], trunk: Trunk, head: TransferHead, size: int,
                   device: torch.device) -> np.ndarray:
    """P(good) for arbitrary photos (any size or mode; no face needed): trunk, then head."""
    batch = torch.stack([image_tensor(im, size) for im in images])
    features = torch.from_numpy(extract_features(trunk, batch, device))
    return predict_proba(head, features, device, images=False)
