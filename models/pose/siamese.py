"""Siamese similarity of landmark photos, with and without a pose branch.

The seed concatenated two ResNet-50 embeddings (and a PoseCNN embedding of one skeleton mask) and
trained an FC network with BCE. Here the head is symmetric in the two photos (it sees
|e_a - e_b| and e_a * e_b), the image side is a pretrained torchvision trunk (MobileNetV2 by
default), either frozen (its pooled features cached once per image) or fine-tuned (its last
stages train; the frozen prefix is run once per image and cached), and the pose branch is a small
encoder of the main person's normalised keypoints that is blind to mirroring (a pose struck with
the other hand is the same pose): e(p) = g(p) + g(mirror(p)).

Training: BCE, Adam, early stopping on the validation loss, the best epoch's weights kept, and a
checkpoint per epoch (model, optimiser, history) that a rerun resumes from.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from lenslab.pose.pairs import FLIP_INDEX, POSE_VECTOR_DIM
from models.backbones import Trunk
from models.checkpoints import save_object
from models.images import as_float


def mirror_poses(p: torch.Tensor) -> torch.Tensor:
    """Pose vectors of the mirrored people: x negated, left and right keypoints swapped."""
    kps = p[:, :-1].view(len(p), -1, 3)[:, list(FLIP_INDEX)].clone()
    kps[:, :, 0] = -kps[:, :, 0]
    return torch.cat([kps.reshape(len(p), -1), p[:, -1:]], 1)


def pose_distance(pa: torch.Tensor, pb: torch.Tensor) -> torch.Tensor:
    """(n, 2): the mean keypoint distance of two normalised poses over the keypoints both show,
    the smaller of as-is and mirrored (an OKS-like prior; 2.0 when nothing is shared), and
    whether both photos show a person."""
    def dist(ka: torch.Tensor, kb: torch.Tensor) -> torch.Tensor:
        shared = ka[:, :, 2] * kb[:, :, 2]
        d = (ka[:, :, :2] - kb[:, :, :2]).norm(dim=2)
        return torch.where(shared.sum(1) > 0,
                           (d * shared).sum(1) / shared.sum(1).clamp(min=1), 2.0)

    ka, kb = pa[:, :-1].view(len(pa), -1, 3), pb[:, :-1].view(len(pb), -1, 3)
    kbm = mirror_poses(pb)[:, :-1].view(len(pb), -1, 3)
    return torch.stack([torch.minimum(dist(ka, kb), dist(ka, kbm)), pa[:, -1] * pb[:, -1]], 1)


class PoseEncoder(nn.Module):
    """A small MLP on the keypoint vector, summed over the pose and its mirror image."""

    def __init__(self, dim: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(POSE_VECTOR_DIM, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, dim))

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return self.net(p) + self.net(mirror_poses(p))


class TrunkSuffix(nn.Module):
    """The trainable last stages of a trunk, fed with the cached output of its frozen prefix."""

    def __init__(self, trunk: Trunk, frozen: int) -> None:
        super().__init__()
        self.stages = nn.Sequential(*list(trunk.stages)[frozen:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.stages(x), 1), 1)


@torch.inference_mode()
def trunk_prefix(trunk: Trunk, images: torch.Tensor, frozen: int, device: torch.device,
                 batch_size: int = 64) -> torch.Tensor:
    """The frozen first ``frozen`` stages' output for uint8 images (computed once, cached)."""
    trunk = trunk.to(device).eval()
    prefix = nn.Sequential(*list(trunk.stages)[:frozen])
    out = []
    for i in range(0, len(images), batch_size):
        x = (as_float(images[i:i + batch_size], device) - trunk.mean) / trunk.std
        out.append(prefix(x).float().cpu())
    return torch.cat(out)


class Siamese(nn.Module):
    """P(same site and pose) for two photos, from image features and (optionally) poses.

    ``suffix``: trainable trunk stages in front of the projection (fine-tuned variant); without
    it the inputs are cached pooled features (frozen variant).
    """

    def __init__(self, image_dim: int, use_pose: bool, *, hidden: int = 128, pose_dim: int = 32,
                 dropout: float = 0.3, suffix: nn.Module | None = None) -> None:
        super().__init__()
        self.suffix = suffix
        self.project = nn.Sequential(nn.Dropout(dropout), nn.Linear(image_dim, hidden),
                                     nn.ReLU(inplace=True))
        self.pose = PoseEncoder(pose_dim) if use_pose else None
        width = 2 * hidden + 1 + (2 * pose_dim + 2 if use_pose else 0)
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(hidden, 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled trunk features: the trainable suffix's output, or the cached input itself."""
        return self.suffix(x) if self.suffix is not None else x

    def compare(self, fa: torch.Tensor, fb: torch.Tensor, pa: torch.Tensor,
                pb: torch.Tensor) -> torch.Tensor:
        """The logit of "same site and pose" from two photos' pooled features and poses."""
        ia, ib = self.project(fa), self.project(fb)
        # the trunk features' cosine: the seed's baseline similarity, a prior the head can use
        parts = [(ia - ib).abs(), ia * ib, nn.functional.cosine_similarity(fa, fb).unsqueeze(1)]
        if self.pose is not None:
            qa, qb = self.pose(pa), self.pose(pb)
            parts += [(qa - qb).abs(), qa * qb, pose_distance(pa, pb)]
        return self.head(torch.cat(parts, 1)).squeeze(1)

    def forward(self, xa: torch.Tensor, xb: torch.Tensor, pa: torch.Tensor,
                pb: torch.Tensor) -> torch.Tensor:
        return self.compare(self.features(xa), self.features(xb), pa, pb)

    def pair_logits(self, x: torch.Tensor, p: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                    device: torch.device) -> torch.Tensor:
        """Logits of pairs (a[i], b[i]) of image indices; each image's features computed once."""
        both = torch.cat([a, b])
        unique, inverse = torch.unique(both, return_inverse=True)
        f = self.features(x[unique].to(device))
        return self.compare(f[inverse[:len(a)]], f[inverse[len(a):]], p[a].to(device),
                            p[b].to(device))


# ----------------------------------------------------------------------------------- training
@dataclass
class PairData:
    """Per-image inputs (features or prefix maps ``x``, pose vectors ``p``) and index pairs."""

    x: torch.Tensor
    p: torch.Tensor
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # split -> (a, b, y)


@dataclass
class TrainSettings:
    epochs: int
    lr: float
    batch_size: int = 32
    patience: int = 5
    weight_decay: float = 1e-4
    seed: int = 0


@dataclass
class TrainResult:
    best_epoch: int
    best_val_loss: float
    resumed_from: int = 0  # epochs already done by an earlier run
    history: list[dict[str, float]] = field(default_factory=list)


@torch.inference_mode()
def predict_pairs(model: Siamese, x: torch.Tensor, p: torch.Tensor, a: torch.Tensor,
                  b: torch.Tensor, device: torch.device, batch_size: int = 256) -> np.ndarray:
    """P(similar) for pairs (a[i], b[i]) of image indices."""
    model = model.to(device).eval()
    if not len(a):
        return np.zeros(0)
    f = torch.cat([model.features(x[i:i + batch_size].to(device))
                   for i in range(0, len(x), batch_size)])  # every image once
    out = [torch.sigmoid(model.compare(f[a[i:i + batch_size]], f[b[i:i + batch_size]],
                                       p[a[i:i + batch_size]].to(device),
                                       p[b[i:i + batch_size]].to(device)).float()).cpu()
           for i in range(0, len(a), batch_size)]
    return torch.cat(out).numpy()


def _val_loss(model: Siamese, data: PairData, device: torch.device) -> tuple[float, float]:
    a, b, y = data.pairs["val"]
    prob = torch.from_numpy(predict_pairs(model, data.x, data.p, a, b, device)).clamp(1e-6,
                                                                                      1 - 1e-6)
    loss = nn.functional.binary_cross_entropy(prob.double(), y.double()).item()
    return loss, float(((prob >= 0.5).float() == y).float().mean())


def train_siamese(model: Siamese, data: PairData, settings: TrainSettings, device: torch.device,
                  checkpoint: Path | None = None,
                  log: Callable[[str], None] = lambda _: None) -> tuple[Siamese, TrainResult]:
    """Train on the ``train`` pairs, stop early on the ``val`` loss, return the best epoch.

    With ``checkpoint``, the state after every epoch is saved there and a rerun resumes from it
    (same settings assumed; the caller names the file after them).
    """
    torch.manual_seed(settings.seed)
    model = model.to(device)
    params = [q for q in model.parameters() if q.requires_grad]
    optimizer = torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
    state = {"epoch": 0, "best_epoch": -1, "best_val_loss": math.inf, "bad_epochs": 0,
             "history": [], "best_state": copy.deepcopy(model.state_dict())}
    resumed = 0
    if checkpoint is not None and checkpoint.is_file():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
        resumed = state["epoch"]
        log(f"resumed after epoch {resumed}")
    a, b, y = data.pairs["train"]
    criterion = nn.BCEWithLogitsLoss()
    while state["epoch"] < settings.epochs and state["bad_epochs"] < settings.patience:
        epoch = state["epoch"]
        gen = torch.Generator().manual_seed(settings.seed + epoch)  # resumable: per-epoch draws
        model.train()
        order = torch.randperm(len(a), generator=gen)
        total = 0.0
        for i in range(0, len(order), settings.batch_size):
            idx = order[i:i + settings.batch_size]
            logits = model.pair_logits(data.x, data.p, a[idx], b[idx], device)
            loss = criterion(logits, y[idx].float().to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        val_loss, val_acc = _val_loss(model, data, device)
        state["history"].append({"epoch": epoch, "train_loss": total / max(len(a), 1),
                                 "val_loss": val_loss, "val_accuracy": val_acc})
        log(f"epoch {epoch}: train loss {total / max(len(a), 1):.4f}, val loss {val_loss:.4f}, "
            f"val acc {val_acc:.3f}")
        if val_loss < state["best_val_loss"] - 1e-4:
            state.update(best_epoch=epoch, best_val_loss=val_loss, bad_epochs=0,
                         best_state=copy.deepcopy(model.state_dict()))
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch + 1
        if checkpoint is not None:
            save_object({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "state": state}, checkpoint)
    model.load_state_dict(state["best_state"])
    return model, TrainResult(state["best_epoch"], state["best_val_loss"], resumed,
                              state["history"])


# ------------------------------------------------------------------------- the four variants
@dataclass
class SimilaritySettings:
    backbone: str
    image_size: int
    batch_size: int
    epochs: int
    lr: float
    patience: int
    finetune_size: int
    finetune_epochs: int
    finetune_lr: float
    finetune_frozen_stages: int
    seeds: dict[str, int]

    def key(self, name: str, data: str) -> str:
        """A short name of the data and settings a variant trains with (its resume checkpoint's
        name), so a rerun resumes only the same training."""
        fields = (data, self.backbone, self.image_size, self.batch_size, self.epochs, self.lr,
                  self.patience, self.finetune_size, self.finetune_epochs, self.finetune_lr,
                  self.finetune_frozen_stages, self.seeds[name])
        return hashlib.sha256(repr(fields).encode()).hexdigest()[:12]


@contextmanager
def cpu_threads(n: int, device: torch.device) -> Iterator[None]:
    """These small models train faster on one CPU thread: on 2 cores shared with the other
    pipeline steps, more threads mostly spin (measured 8x slower with 2 on a busy box)."""
    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _index_pairs(pairs: pd.DataFrame, index: dict[str, int]) -> dict[str, tuple]:
    out = {}
    for split in ("train", "val", "test"):
        part = pairs[pairs["split"] == split]
        out[split] = (torch.tensor(part["a"].map(index).to_numpy(), dtype=torch.long),
                      torch.tensor(part["b"].map(index).to_numpy(), dtype=torch.long),
                      torch.tensor(part["label"].to_numpy(), dtype=torch.long))
    return out


def train_variants(images: pd.DataFrame, pairs: pd.DataFrame, poses: pd.DataFrame,
                   data_root: Path, settings: SimilaritySettings, device: torch.device,
                   out_dir: Path, variants: Sequence[tuple[str, bool, bool]], *,
                   resume: bool = True, log: Callable[[str], None] = lambda _: None) -> dict:
    """Train each (name, fine-tuned, pose) variant; write under ``out_dir`` the best state_dicts
    (``<name>.pt``), ``training.json``, ``predictions.parquet`` (every val/test pair) and
    ``test_image_scores.parquet`` (every unordered pair of test images, for neighbours and role
    models). Trunk inputs are computed once per image: pooled features for the frozen variants,
    the frozen prefix's maps for the fine-tuned ones."""
    from lenslab.atomic import write_parquet, write_text
    from lenslab.pose.pairs import pose_vectors
    from models.backbones import build_trunk, extract_features
    from models.checkpoints import save_state
    from models.images import load_images

    ids = list(images["image_id"])
    index = {image_id: i for i, image_id in enumerate(ids)}
    paths = [data_root / p for p in images["normalised_path"]]
    p = torch.from_numpy(pose_vectors(poses, ids))
    split_pairs = _index_pairs(pairs, index)
    data_key = hashlib.sha256(pd.util.hash_pandas_object(
        pairs[["split", "a", "b", "label"]], index=False).to_numpy().tobytes()
        + p.numpy().tobytes()).hexdigest()[:16]
    inputs: dict[bool, torch.Tensor] = {}
    trunk = build_trunk(settings.backbone)
    start = time.perf_counter()
    if any(ft for _, ft, _ in variants):
        inputs[True] = trunk_prefix(trunk, load_images(paths, settings.finetune_size),
                                    settings.finetune_frozen_stages, device)
    if any(not ft for _, ft, _ in variants):
        if True in inputs and settings.image_size == settings.finetune_size:
            # the pretrained suffix on the cached prefix maps is the whole trunk: one pass
            with torch.no_grad():
                suffix = TrunkSuffix(trunk, settings.finetune_frozen_stages).to(device).eval()
                inputs[False] = torch.cat([suffix(inputs[True][i:i + 64].to(device)).cpu()
                                           for i in range(0, len(ids), 64)])
        else:
            inputs[False] = torch.from_numpy(extract_features(
                trunk, load_images(paths, settings.image_size), device, 64))
    log(f"trunk inputs for {len(ids)} images in {time.perf_counter() - start:.1f} s")

    test_ids = images.loc[images["split"] == "test", "image_id"].tolist()
    test_a, test_b = zip(*combinations(test_ids, 2), strict=True) if len(test_ids) > 1 else ((), ())
    scores = pd.DataFrame({"a": list(test_a), "b": list(test_b)})
    scored = pairs[pairs["split"] != "train"].reset_index(drop=True)
    summary: dict[str, dict] = {}
    trained: dict[tuple[bool, bool], Siamese] = {}
    for name, finetuned, use_pose in variants:
        seed = settings.seeds[name]
        torch.manual_seed(seed)  # initial weights
        if finetuned:
            model = Siamese(trunk.dim, use_pose,
                            suffix=TrunkSuffix(build_trunk(settings.backbone),
                                               settings.finetune_frozen_stages))
            start_from = trained.get((False, use_pose))
            if start_from is not None:  # like the selfie system: head first, then the trunk
                model.load_state_dict(start_from.state_dict(), strict=False)
            train = TrainSettings(settings.finetune_epochs, settings.finetune_lr,
                                  settings.batch_size, settings.patience, seed=seed)
        else:
            model = Siamese(trunk.dim, use_pose)
            train = TrainSettings(settings.epochs, settings.lr, settings.batch_size,
                                  settings.patience, seed=seed)
        data = PairData(inputs[finetuned], p, split_pairs)
        checkpoint = out_dir / "resume" / f"{name}-{settings.key(name, data_key)}.pt"
        if not resume:
            checkpoint.unlink(missing_ok=True)
        start = time.perf_counter()
        with cpu_threads(1, device):
            model, result = train_siamese(model, data, train, device, checkpoint,
                                          log=lambda line, n=name: log(f"{n} {line}"))
        seconds = round(time.perf_counter() - start, 2)
        trained[(finetuned, use_pose)] = model
        save_state(model, out_dir / f"{name}.pt")
        scored[f"p_{name}"] = predict_pairs(model, data.x, p,
                                            torch.tensor(scored["a"].map(index).to_numpy()),
                                            torch.tensor(scored["b"].map(index).to_numpy()),
                                            device)
        scores[f"p_{name}"] = predict_pairs(model, data.x, p,
                                            torch.tensor([index[a] for a in test_a],
                                                         dtype=torch.long),
                                            torch.tensor([index[b] for b in test_b],
                                                         dtype=torch.long), device)
        summary[name] = {"finetuned": finetuned, "pose": use_pose, "seed": seed,
                         "backbone": settings.backbone,
                         "image_size": settings.finetune_size if finetuned else settings.image_size,
                         "frozen_stages": settings.finetune_frozen_stages if finetuned else None,
                         "best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
                         "epochs_run": len(result.history), "resumed_from": result.resumed_from,
                         "train_seconds": seconds, "history": result.history}
    write_parquet(out_dir / "predictions.parquet", scored)
    write_parquet(out_dir / "test_image_scores.parquet", scores)
    write_text(out_dir / "training.json", json.dumps(summary, indent=2))
    return {"test_pairs": int((scored["split"] == "test").sum()), "summary": summary}


# ------------------------------------------------------------------------ the registered model
class PhotoSimilarity(nn.Module):
    """A trained variant as one network for raw photos: the whole trunk, then the siamese head.

    A fine-tuned variant's trained suffix is put back into the trunk it was cut from, so every
    variant is "trunk -> pooled features -> head" (what the registry stores and rebuilds).
    """

    def __init__(self, trunk: Trunk, siamese: Siamese) -> None:
        super().__init__()
        if siamese.suffix is not None:
            raise ValueError("merge the fine-tuned suffix into the trunk first (from_trained)")
        self.trunk, self.siamese = trunk, siamese

    @classmethod
    def from_trained(cls, trunk: Trunk, siamese: Siamese, frozen_stages: int) -> PhotoSimilarity:
        """``trunk``: the pretrained trunk the variant was trained on; ``frozen_stages``: the
        fine-tuned variants' frozen prefix (ignored for the frozen ones)."""
        if siamese.suffix is not None:
            stages = [*list(trunk.stages)[:frozen_stages], *siamese.suffix.stages]
            trunk = Trunk(nn.Sequential(*stages), trunk.dim,
                          (trunk.mean.flatten().tolist(), trunk.std.flatten().tolist()))
            siamese.suffix = None
        return cls(trunk, siamese)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled features of uint8 images (n, 3, s, s) on the model's device."""
        return self.trunk(as_float(images, self.trunk.mean.device))

    def forward(self, fa: torch.Tensor, fb: torch.Tensor, pa: torch.Tensor,
                pb: torch.Tensor) -> torch.Tensor:
        """The logit of "same site and pose" from pooled features and pose vectors."""
        return self.siamese.compare(fa, fb, pa, pb)


def load_variant(path: Path, summary: dict) -> PhotoSimilarity:
    """A trained variant (``<name>.pt`` and its ``training.json`` entry) as one network, on the
    pretrained trunk it was trained on."""
    from models.backbones import build_trunk
    from models.checkpoints import load_state

    trunk = build_trunk(summary["backbone"], pretrained=True)
    suffix = (TrunkSuffix(build_trunk(summary["backbone"], pretrained=False),
                          summary["frozen_stages"]) if summary["finetuned"] else None)
    siamese = load_state(Siamese(trunk.dim, summary["pose"], suffix=suffix), path)
    return PhotoSimilarity.from_trained(trunk, siamese, summary["frozen_stages"] or 0)


def build_from_card(card: dict) -> PhotoSimilarity:
    """The registry's builder (models/registry.py): trunk + head, weights loaded after."""
    from models.backbones import build_trunk

    arch = card["architecture"]
    trunk = build_trunk(arch["backbone"], pretrained=False)
    return PhotoSimilarity(trunk, Siamese(trunk.dim, arch["pose"], hidden=arch["hidden"],
                                          pose_dim=arch["pose_dim"]))
