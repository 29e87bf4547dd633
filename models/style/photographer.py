"""Photographer embeddings: who edited this photo, and which photographers edit alike.

``PhotographerModel`` holds one learnable vector per photographer (``nn.Embedding``, inside the
model, updated by the one optimiser: the seed kept a detached copy and re-created Adam every
batch). Two heads share it:

* identification: an image encoder maps the photo's descriptor (style-autoencoder embedding +
  standardised global features) into the same space; the logit of photographer p is the scaled
  dot product with p's vector. This ranks photographers for a held-out photo directly.
* style: a decoder maps p's vector to the standardised global features of p's edits, i.e. the
  photographer's predicted editing. Its squared error to a photo's features is a second,
  generative score (nearest predicted look), reported beside the classifier.

``PhotographerIdentifier`` packs what identification needs on new photos (the autoencoder, the
training rows' standardisation, the photographer model) into one module: the registry's
``photographer`` family (models/registry.py), built from its card by ``build_from_card``.

CLI: ``lenslab photographer PHOTOS...`` and ``lenslab similar-photographers NAME``
(lenslab/cli/style.py); ``python -m models.style.photographer similar ID`` still answers the
latter from the asset's embeddings table.
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn import functional as F


class PhotographerModel(nn.Module):
    def __init__(self, n_photographers: int, in_dim: int, n_features: int, dim: int = 16,
                 hidden: int = 64, dropout: float = 0.2) -> None:
        super().__init__()
        self.photographers = nn.Embedding(n_photographers, dim)
        # hidden 0: a linear projection (dropout on its input), the better fit to a few
        # hundred photos; otherwise one hidden ReLU layer
        self.image = (nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, dim)) if hidden == 0
                      else nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(),
                                         nn.Dropout(dropout), nn.Linear(hidden, dim)))
        self.style = (nn.Linear(dim, n_features) if hidden == 0 else
                      nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(),
                                    nn.Linear(hidden, n_features)))
        self.logit_scale = nn.Parameter(torch.tensor(2.0))

    def logits(self, x: Tensor) -> Tensor:
        """(N, n_photographers) identification scores of image descriptors ``x``."""
        img = F.normalize(self.image(x), dim=-1)
        who = F.normalize(self.photographers.weight, dim=-1)
        return self.logit_scale.exp() * img @ who.T

    def predicted_style(self, photographer: Tensor | None = None) -> Tensor:
        """Predicted standardised features of the photographers' edits (all when None)."""
        weight = (self.photographers.weight if photographer is None
                  else self.photographers(photographer))
        return self.style(weight)

    def style_scores(self, features: Tensor) -> Tensor:
        """(N, n_photographers): minus the squared error of each photographer's predicted look."""
        return -torch.cdist(features, self.predicted_style()).pow(2)


class PhotographerIdentifier(nn.Module):
    """Pixels -> photographer logits: global features and autoencoder embedding, standardised
    with the training rows' mean and std (buffers), then ``PhotographerModel.logits``."""

    def __init__(self, n_photographers: int, n_features: int, ae_size: int, ae_embedding_dim: int,
                 ae_width: int, dim: int, hidden: int) -> None:
        super().__init__()
        from models.style.autoencoder import StyleAutoencoder

        # ae_embedding_dim 0: identification from the global features alone (no autoencoder)
        self.autoencoder = (StyleAutoencoder(ae_size, ae_embedding_dim, ae_width)
                            if ae_embedding_dim else None)
        self.model = PhotographerModel(n_photographers, ae_embedding_dim + n_features,
                                       n_features, dim, hidden)
        for name, width in (("z", ae_embedding_dim), ("feature", n_features)):
            self.register_buffer(f"{name}_mean", torch.zeros(width))
            self.register_buffer(f"{name}_std", torch.ones(width))

    def set_scaling(self, z_mean: Tensor, z_std: Tensor, feature_mean: Tensor,
                    feature_std: Tensor) -> None:
        for name, value in (("z_mean", z_mean), ("z_std", z_std),
                            ("feature_mean", feature_mean), ("feature_std", feature_std)):
            getattr(self, name).copy_(value)

    def forward(self, feature_pixels: Tensor, ae_pixels: Tensor | None = None) -> Tensor:
        """``feature_pixels`` (N, 3, S, S) at the features' size and ``ae_pixels`` (N, 3, s, s) at
        the autoencoder's (when it has one), float in [0, 1] -> (N, n_photographers) logits."""
        from lenslab.style.features import global_features

        f = (global_features(feature_pixels) - self.feature_mean) / self.feature_std
        if self.autoencoder is None:
            return self.model.logits(f)
        if ae_pixels is None:
            raise ValueError("this identifier uses the autoencoder: pass ae_pixels")
        z = (self.autoencoder.encode(ae_pixels) - self.z_mean) / self.z_std
        return self.model.logits(torch.cat([z, f], 1))


def build_from_card(card: dict) -> PhotographerIdentifier:
    """The registry's builder (models/registry.py); weights are loaded after."""
    arch = card["architecture"]
    return PhotographerIdentifier(len(arch["photographers"]), arch["n_features"],
                                  arch["ae_size"], arch["ae_embedding_dim"], arch["ae_width"],
                                  arch["dim"], arch["hidden"])


@dataclass
class TrainConfig:
    dim: int = 32
    hidden: int = 0
    dropout: float = 0.2
    epochs: int = 300
    lr: float = 1e-2
    weight_decay: float = 1e-3
    style_weight: float = 0.5
    seed: int = 0


@dataclass
class TrainResult:
    model: PhotographerModel
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)


def topk_accuracy(scores: Tensor, labels: Tensor, k: int) -> float:
    if len(labels) == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    return float((scores.topk(k, dim=1).indices == labels[:, None]).any(1).float().mean())


def train(x: Tensor, features: Tensor, labels: Tensor, train_idx: Tensor, val_idx: Tensor,
          n_photographers: int, cfg: TrainConfig,
          device: torch.device | None = None) -> TrainResult:
    """Full-batch training (a few hundred photos) with AdamW + cosine schedule.

    Model selection: the epoch with the lowest validation loss (steadier than top-1 on a few
    dozen photos); the test and held-out-base photos are never looked at here. Trains on
    ``device`` (CPU by default) and returns the model on the CPU.
    """
    device = device or torch.device("cpu")
    torch.manual_seed(cfg.seed)
    model = PhotographerModel(n_photographers, x.shape[1], features.shape[1], cfg.dim,
                              cfg.hidden, cfg.dropout).to(device)
    x, features, labels = x.to(device), features.to(device), labels.to(device)
    train_idx, val_idx = train_idx.to(device), val_idx.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    best = float("inf")
    best_state, best_epoch, history = copy.deepcopy(model.state_dict()), 0, []

    def loss_of(idx: Tensor) -> tuple[Tensor, Tensor]:
        logits = model.logits(x[idx])
        style = model.predicted_style(labels[idx])
        loss = F.cross_entropy(logits, labels[idx]) + cfg.style_weight * F.mse_loss(
            style, features[idx])
        return loss, logits

    for epoch in range(cfg.epochs):
        model.train()
        loss, _ = loss_of(train_idx)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        model.eval()
        with torch.no_grad():
            val_loss, val_logits = loss_of(val_idx) if len(val_idx) else (loss, None)
            val_top1 = (topk_accuracy(val_logits, labels[val_idx], 1)
                        if val_logits is not None else 0.0)
        history.append({"epoch": epoch, "train_loss": float(loss.detach()),
                        "val_loss": float(val_loss), "val_top1": val_top1})
        if float(val_loss) < best:
            best, best_epoch = float(val_loss), epoch
            best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model.cpu(), best_epoch, history)


def similar_photographers(embeddings: pd.DataFrame, name_or_id: str | int,
                          k: int = 5) -> pd.DataFrame:
    """The ``k`` photographers whose embeddings are closest (cosine) to ``name_or_id``.

    ``embeddings``: index = photographer name (str), columns = embedding dimensions.
    ``name_or_id`` is a name, or a number: the photographer at that position (from 0) in the
    model's list, for sources whose photographers have names (folders: ``expert_A``, ...). A
    name that is itself a number (synthetic photographers "0", "1", ...) wins.
    """
    names = embeddings.index.astype(str)
    key = str(name_or_id).strip()
    if key not in set(names):
        if key.isdigit() and int(key) < len(names):
            key = names[int(key)]
        else:
            known = ", ".join(f"{i}: {n}" for i, n in enumerate(names[:10]))
            more = ", ..." if len(names) > 10 else ""
            raise KeyError(f"unknown photographer {key!r}; give a name or a number from 0 to "
                           f"{len(names) - 1} ({known}{more})")
    vectors = embeddings.to_numpy(dtype=float)
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
    query = vectors[list(names).index(key)]
    similarity = vectors @ query
    order = [i for i in np.argsort(-similarity, kind="stable") if names[i] != key][:k]
    return pd.DataFrame({"photographer": names[order], "cosine": similarity[order]})


def embeddings_path(data_root: Path) -> Path:
    return data_root / "models" / "photographer" / "photographer_embeddings.parquet"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.style.photographer",
        description="Query the photographer embeddings written by the photographer_model asset.")
    sub = parser.add_subparsers(dest="command", required=True)
    similar = sub.add_parser("similar", help="photographers who edit most like ID (cosine)")
    similar.add_argument("photographer", help="photographer name or id, e.g. 7")
    similar.add_argument("-k", type=int, default=5, help="how many to list (default 5)")
    similar.add_argument("--data-root", type=Path, default=Path("data"),
                         help="the data tree (default ./data)")
    args = parser.parse_args(argv)
    path = embeddings_path(args.data_root)
    if not path.is_file():
        parser.error(f"{path} not found: materialise the photographer_model asset first")
    table = pd.read_parquet(path).set_index("photographer")
    try:
        result = similar_photographers(table, args.photographer, args.k)
    except KeyError as err:
        parser.error(str(err))
    print(result.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
