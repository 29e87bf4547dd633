"""A small convolutional autoencoder whose loss keeps the photo's editing style.

Loss = pixel L1 + ``feature_weight`` x MSE between the standardised global features
(lenslab.style.features.global_features, differentiable) of the input and of the
reconstruction: the seed's "pixels AND global features" loss, with the features fixed. The
encoder output is the image embedding. The training loop follows torchvision's reference
train.py: one optimiser and one scheduler, per-epoch train/val loss, a resumable checkpoint.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lenslab.style.features import global_features
from models.checkpoints import save_object


class StyleAutoencoder(nn.Module):
    """size x size RGB -> ``embedding_dim`` -> size x size RGB (size divisible by 16)."""

    def __init__(self, size: int = 64, embedding_dim: int = 32, width: int = 16) -> None:
        super().__init__()
        if size % 16:
            raise ValueError(f"size must be a multiple of 16, got {size}")
        self.size, self.side = size, size // 16
        chans = (3, width, 2 * width, 2 * width, 4 * width)
        self.encoder = nn.Sequential(
            *(m for a, b in itertools.pairwise(chans)
              for m in (nn.Conv2d(a, b, 3, stride=2, padding=1), nn.ReLU(inplace=True))),
            nn.Flatten(), nn.Linear(chans[-1] * self.side**2, embedding_dim),
        )
        self.chans = chans
        self.expand = nn.Linear(embedding_dim, chans[-1] * self.side**2)
        rev = chans[::-1]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(rev):
            layers += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.ReLU(inplace=True)]
        layers[-1] = nn.Sigmoid()  # pixels in [0, 1], as the features expect
        self.decoder = nn.Sequential(*layers)

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        h = F.relu(self.expand(z)).view(-1, self.chans[-1], self.side, self.side)
        return self.decoder(h)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self.encode(x)
        return self.decode(z), z


@dataclass
class FeatureScale:
    """Per-feature mean and std on the training images: puts the features' loss on one scale."""

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, images: Tensor) -> FeatureScale:
        with torch.no_grad():
            f = global_features(images)
        return cls(f.mean(0), f.std(0).clamp(min=1e-6))

    def __call__(self, images: Tensor) -> Tensor:
        return (global_features(images) - self.mean) / self.std


def style_loss(model: StyleAutoencoder, x: Tensor, scale: FeatureScale,
               feature_weight: float) -> tuple[Tensor, Tensor, Tensor]:
    """(total, pixel L1, feature MSE) of a batch."""
    recon, _ = model(x)
    pixel = F.l1_loss(recon, x)
    with torch.no_grad():
        target = scale(x)
    feature = F.mse_loss(scale(recon), target)
    return pixel + feature_weight * feature, pixel, feature


@dataclass
class TrainConfig:
    size: int = 64
    embedding_dim: int = 32
    width: int = 16
    epochs: int = 12
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-5
    feature_weight: float = 0.1
    seed: int = 0


@dataclass
class TrainResult:
    model: StyleAutoencoder
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from: int = 0


def _epoch_loss(model: StyleAutoencoder, images: Tensor, scale: FeatureScale, cfg: TrainConfig,
                optimizer: torch.optim.Optimizer | None, generator: torch.Generator | None
                ) -> dict[str, float]:
    """One pass over ``images``; trains when an optimiser is given, else evaluates."""
    training = optimizer is not None
    model.train(training)
    order = (torch.randperm(len(images), generator=generator) if training
             else torch.arange(len(images)))
    sums = {"loss": 0.0, "pixel": 0.0, "feature": 0.0}
    with torch.set_grad_enabled(training):
        for start in range(0, len(images), cfg.batch_size):
            x = images[order[start:start + cfg.batch_size]]
            loss, pixel, feature = style_loss(model, x, scale, cfg.feature_weight)
            if training:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            for k, v in zip(sums, (loss, pixel, feature), strict=True):
                sums[k] += float(v.detach()) * len(x)
    return {k: v / max(1, len(images)) for k, v in sums.items()}


def train(train_images: Tensor, val_images: Tensor, cfg: TrainConfig, *,
          checkpoint: Path | None = None, log_dir: Path | None = None,
          device: torch.device | str = "cpu",
          log: Callable[[str], None] = print) -> TrainResult:
    """Train from scratch, or resume from ``checkpoint`` if it holds a state for this run.

    ``train_images``/``val_images`` are float (N, 3, size, size) in [0, 1]. The checkpoint is
    written after every epoch: model, optimiser, scheduler, epoch, feature scale, history.
    """
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    train_images, val_images = train_images.to(device), val_images.to(device)
    model = StyleAutoencoder(cfg.size, cfg.embedding_dim, cfg.width).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    scale = FeatureScale.fit(train_images)
    history: list[dict[str, float]] = []
    start_epoch = 0
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        scale = FeatureScale(state["feature_mean"], state["feature_std"])
        history = [dict(zip(state["history_keys"], row, strict=True))
                   for row in state["history"].tolist()]
        start_epoch = int(state["epoch"]) + 1
        log(f"resumed from epoch {start_epoch}")
    writer = None
    if log_dir is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(log_dir))
    began = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        lr = optimizer.param_groups[0]["lr"]
        tr = _epoch_loss(model, train_images, scale, cfg, optimizer, generator)
        scheduler.step()
        va = _epoch_loss(model, val_images, scale, cfg, None, None)
        row = {"epoch": float(epoch), "lr": lr, **{f"train_{k}": v for k, v in tr.items()},
               **{f"val_{k}": v for k, v in va.items()}}
        history.append(row)
        log(f"epoch {epoch}: train {tr['loss']:.4f} (L1 {tr['pixel']:.4f}, feat "
            f"{tr['feature']:.3f}) val {va['loss']:.4f} lr {lr:.2e}")
        if writer is not None:
            for k, v in row.items():
                if k != "epoch":
                    writer.add_scalar(k.replace("_", "/", 1), v, epoch)
        if checkpoint is not None:
            keys = list(row)
            save_object({
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "epoch": epoch,
                "generator": generator.get_state(), "feature_mean": scale.mean,
                "feature_std": scale.std, "history_keys": keys,
                "history": torch.tensor([[h[k] for k in keys] for h in history]),
            }, checkpoint)
    if writer is not None:
        writer.close()
    return TrainResult(model, history, time.perf_counter() - began, start_epoch)


@torch.no_grad()
def embed(model: StyleAutoencoder, images: Tensor, batch_size: int = 128) -> Tensor:
    """Embeddings of every image from the final model, in eval mode (one model state)."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model.encode(images[i:i + batch_size].to(device)).cpu()
                      for i in range(0, len(images), batch_size)])


def architecture_of(state: dict[str, Tensor]) -> dict[str, int]:
    """size, embedding_dim and width of the autoencoder whose ``state_dict`` this is."""
    width = int(state["encoder.0.weight"].shape[0])
    last = next(k for k in state if k.startswith("encoder.") and k.endswith(".weight")
                and state[k].ndim == 2)
    embedding_dim, flat = state[last].shape
    side = round((int(flat) / (4 * width)) ** 0.5)
    return {"size": 16 * side, "embedding_dim": int(embedding_dim), "width": width}
