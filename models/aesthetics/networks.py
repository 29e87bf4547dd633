"""Aesthetic scoring networks: a generic model, per-user personalisation, enhancement, saliency.

The network is a pretrained MobileNetV2 cut in two. The ``prefix`` (the first ``cut`` stages,
ImageNet weights, never trained) is shared by every model, so its outputs are computed once per
image and cached. The ``AestheticNet`` (the remaining inverted-residual blocks, the last 1x1 conv
and a linear regression head) is what the generic model trains on train workers' mean ratings
and what a user's personalisation changes:

* ``head``: the linear head only;
* ``full``: every parameter of the AestheticNet;
* ``adapters``: a parallel 1x1 conv beside every inverted-residual block (Rebuffi et al. 2018),
  zero-initialised so the adapted network starts exactly at the generic one, plus the block's own
  BatchNorm affine parameters and the head. BN running statistics stay the generic model's: k
  photos cannot re-estimate them.

A user's file holds only the parameters their method trains, loaded on top of the shared model.
No Dagster here.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual

from lenslab.edits import EditParams, apply_edits
from models.backbones import Trunk, build_trunk

METHODS = ("head", "full", "adapters")
EDITS = ("exposure", "contrast", "saturation", "temperature")  # the global-edit mode's knobs


class Prefix(nn.Module):
    """[0, 1] RGB in, the frozen trunk's ``cut``-th stage output: the cached features."""

    def __init__(self, trunk: Trunk, cut: int) -> None:
        super().__init__()
        self.register_buffer("mean", trunk.mean.clone())
        self.register_buffer("std", trunk.std.clone())
        self.stages = trunk.stages[:cut]
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages((x - self.mean) / self.std)


class AestheticNet(nn.Module):
    """The trainable part: the trunk's last stages, average pooling and a linear score."""

    def __init__(self, trunk: Trunk, cut: int) -> None:
        super().__init__()
        self.stages = copy.deepcopy(trunk.stages[cut:])
        self.head = nn.Linear(trunk.dim, 1)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.stages(features), 1), 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(features)).squeeze(1)


class AdaptedBlock(nn.Module):
    """An inverted-residual block with a parallel 1x1 conv: y = block(x) + adapter(x)."""

    def __init__(self, block: InvertedResidual) -> None:
        super().__init__()
        self.block = block
        first = block.conv[0]
        in_channels = (first[0] if isinstance(first, nn.Sequential) else first).in_channels
        self.adapter = nn.Conv2d(in_channels, block.out_channels, 1, block.stride, bias=False)
        nn.init.zeros_(self.adapter.weight)  # starts exactly at the generic model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + self.adapter(x)


class Scorer(nn.Module):
    """Pixels to score: [0, 1] RGB at any size, resized to the model's input side."""

    def __init__(self, prefix: Prefix, net: AestheticNet, size: int) -> None:
        super().__init__()
        self.prefix, self.net, self.size = prefix, net, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear",
                                          antialias=True, align_corners=False)
        return self.net(self.prefix(x))


def with_method(generic: AestheticNet, method: str) -> AestheticNet:
    """A copy of the generic network ready for ``method`` (adapters inserted when asked)."""
    if method not in METHODS:
        raise ValueError(f"unknown personalisation method {method!r}; choose from {METHODS}")
    net = copy.deepcopy(generic)
    if method == "adapters":
        for i, module in enumerate(net.stages):
            if isinstance(module, InvertedResidual):
                net.stages[i] = AdaptedBlock(module)
    return net


def personal_names(net: AestheticNet, method: str) -> list[str]:
    """Names of the parameters ``method`` trains for one user (what the user's file stores)."""
    names = []
    for name, _ in net.named_parameters():
        if method == "full" or name.startswith("head."):
            names.append(name)
        elif method == "adapters":
            block = net.get_submodule(".".join(name.split(".")[:2]))  # stages.<i>
            owner = net.get_submodule(name.rsplit(".", 1)[0])
            if isinstance(block, AdaptedBlock) and (owner is block.adapter
                                                    or isinstance(owner, nn.BatchNorm2d)):
                names.append(name)
    return names


def count_parameters(net: AestheticNet, method: str) -> int:
    params = dict(net.named_parameters())
    return sum(params[n].numel() for n in personal_names(net, method))


def personal_state(net: AestheticNet, method: str) -> dict[str, torch.Tensor]:
    """The user's own parameters, detached on CPU: a small file per user."""
    params = dict(net.named_parameters())
    return {n: params[n].detach().cpu().clone() for n in personal_names(net, method)}


def load_personal(generic: AestheticNet, method: str, path: Path) -> AestheticNet:
    """The shared generic network with one user's file loaded on top."""
    return apply_personal(generic, method, torch.load(path, map_location="cpu",
                                                      weights_only=True), str(path))


def apply_personal(generic: AestheticNet, method: str, state: dict[str, torch.Tensor],
                   source: str) -> AestheticNet:
    """A copy of the generic network with one user's parameters (``personal_state``) on top."""
    net = with_method(generic, method)
    expected = set(personal_names(net, method))
    if set(state) != expected:
        raise ValueError(f"{source}: holds {len(state)} tensors, {method!r} expects "
                         f"{len(expected)} (e.g. missing {sorted(expected - set(state))[:3]})")
    net.load_state_dict(state, strict=False)
    return net


def build_from_card(card: dict) -> Scorer:
    """The registry's builder (models/registry.py): the generic pixels-to-score network; a
    user's parameters go on top with ``apply_personal``."""
    arch = card["architecture"]
    trunk = build_trunk(arch["backbone"], pretrained=False)
    cut = arch["frozen_stages"]
    return Scorer(Prefix(trunk, cut), AestheticNet(trunk, cut), arch["image_size"])


def predict(net: nn.Module, features: torch.Tensor, device: torch.device,
            batch_size: int = 256) -> np.ndarray:
    net = net.to(device).eval()
    with torch.inference_mode():
        out = [net(features[i:i + batch_size].to(device)).float().cpu()
               for i in range(0, len(features), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def spearman(y: np.ndarray, p: np.ndarray) -> float:
    """Spearman rank correlation; 0 when either side is constant (no ranking information)."""
    if len(y) < 2 or np.ptp(y) == 0 or np.ptp(p) == 0:
        return 0.0
    from scipy.stats import spearmanr  # scipy.stats takes seconds to import: not for `lenslab rate`

    return float(spearmanr(y, p)[0])


# --- the generic model -----------------------------------------------------------------------

@dataclass(frozen=True)
class GenericSettings:
    epochs: int
    lr: float
    batch_size: int
    weight_decay: float
    seed: int


@dataclass
class GenericResult:
    best_epoch: int  # 0: the ridge head on the frozen network, before any fine-tuning
    best_val_spearman: float
    history: list[dict] = field(default_factory=list)


def fit_head_ridge(net: AestheticNet, features: torch.Tensor, y: torch.Tensor,
                   alpha: float = 1.0) -> None:
    """Closed-form ridge for the linear head on the (frozen) pooled embedding."""
    with torch.inference_mode():
        z = net.eval().embed(features).double()
    mu, y_mu = z.mean(0), y.double().mean()
    zc = z - mu
    w = torch.linalg.solve(zc.T @ zc + alpha * len(z) * torch.eye(z.shape[1], dtype=z.dtype),
                           zc.T @ (y.double() - y_mu))
    with torch.no_grad():
        net.head.weight.copy_(w.float().unsqueeze(0))
        net.head.bias.fill_(float(y_mu - mu @ w))


def train_generic(net: AestheticNet, train: tuple[torch.Tensor, torch.Tensor],
                  val: tuple[torch.Tensor, torch.Tensor], settings: GenericSettings,
                  device: torch.device, log: Callable[[str], None] = print) -> GenericResult:
    """Ridge head first, then fine-tune the whole AestheticNet (MSE, Adam); the best epoch by
    validation Spearman (epoch 0 = the ridge head alone) is restored."""
    torch.manual_seed(settings.seed)
    fit_head_ridge(net, *train)
    net = net.to(device)
    x_val, y_val = val
    best = (spearman(y_val.numpy(), predict(net, x_val, device)), 0)
    best_state = copy.deepcopy(net.state_dict())
    history = [{"epoch": 0, "val_spearman": round(best[0], 4)}]
    log(f"epoch 0 (ridge head) val Spearman {best[0]:.4f}")
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    g = torch.Generator().manual_seed(settings.seed)
    x, y = train
    for epoch in range(1, settings.epochs + 1):
        net.train()
        total = 0.0
        for idx in torch.randperm(len(x), generator=g).split(settings.batch_size):
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            loss = nn.functional.mse_loss(net(x[idx].to(device)), y[idx].to(device).float())
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        rho = spearman(y_val.numpy(), predict(net, x_val, device))
        history.append({"epoch": epoch, "train_mse": round(total / len(x), 4),
                        "val_spearman": round(rho, 4)})
        log(f"epoch {epoch} train MSE {total / len(x):.4f} val Spearman {rho:.4f}")
        if rho > best[0]:
            best = (rho, epoch)
            best_state = copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    return GenericResult(best_epoch=best[1], best_val_spearman=best[0], history=history)


# --- personalisation -------------------------------------------------------------------------

@dataclass(frozen=True)
class PersonalSettings:
    """steps: most full-batch Adam steps; holdout: share of the k shots kept aside to pick the
    step (0 allowed: stay at the generic model); anchor: L2 pull toward the generic weights;
    lr_shots: the learning rate scales by min(1, k / lr_shots), so a user with few ratings moves
    less far from the generic model; min_stop: with fewer held-aside shots than this the step
    cannot be validated and the user keeps the generic model (step 0)."""

    steps: int
    holdout: float
    lr: dict[str, float]
    anchor: float
    lr_shots: int = 100  # the learning rates are for this many shots; fewer shots, smaller steps
    min_stop: int = 5  # fewer held-aside shots than this cannot validate a change: keep generic


def personalise(generic: AestheticNet, method: str, x: torch.Tensor, y: torch.Tensor,
                settings: PersonalSettings, seed: int, device: torch.device,
                ) -> tuple[AestheticNet, int]:
    """One user's model from their k shots (features ``x``, ratings ``y``).

    The shots are split (seeded) into a fitting part and a stopping part. Full-batch Adam on MSE
    + anchor * ||theta - theta_generic||^2 runs in eval mode (BN statistics stay the generic
    model's); the parameters at the step with the lowest MSE on the stopping part are kept, step
    0 being the generic model rescaled to the user's ratings (an affine map that keeps ranks).
    Returns the network and the chosen step."""
    net = with_method(generic, method).to(device).eval()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_stop = max(1, round(settings.holdout * len(x)))
    stop, fit = order[:n_stop], order[n_stop:]
    if n_stop < settings.min_stop:  # too few shots to tell a gain from noise
        return net.requires_grad_(False).eval(), 0
    x, y = x.to(device), y.to(device).float()
    params = dict(net.named_parameters())
    names = personal_names(net, method)
    net.requires_grad_(False)
    trained = [params[n].requires_grad_(True) for n in names]
    start = [p.detach().clone() for p in trained]
    # the head alone: the embedding is fixed, compute it once
    z = net.embed(x).detach() if method == "head" else None

    def scores(idx: torch.Tensor) -> torch.Tensor:
        return net.head(z[idx]).squeeze(1) if z is not None else net(x[idx])

    with torch.no_grad():  # rank-preserving recalibration to the user's rating scale
        pred = scores(fit)
        scale = torch.cov(torch.stack([pred, y[fit]]))[0, 1] / pred.var().clamp_min(1e-8)
        net.head.weight *= scale.clamp(0.25, 4.0)
        net.head.bias += y[fit].mean() - scores(fit).mean()
        best = (float(((scores(stop) - y[stop]) ** 2).mean()), 0)
    best_state = [p.detach().clone() for p in trained]
    lr = settings.lr[method] * min(1.0, len(x) / settings.lr_shots)
    opt = torch.optim.Adam(trained, lr=lr)
    for step in range(1, settings.steps + 1):
        loss = nn.functional.mse_loss(scores(fit), y[fit])
        loss = loss + settings.anchor * sum(((p - s) ** 2).sum()
                                            for p, s in zip(trained, start, strict=True))
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            mse = float(((scores(stop) - y[stop]) ** 2).mean())
        if mse < best[0]:
            best = (mse, step)
            best_state = [p.detach().clone() for p in trained]
    with torch.no_grad():
        for p, s in zip(trained, best_state, strict=True):
            p.copy_(s)
    net.requires_grad_(False)
    return net.eval(), best[1]


# --- enhancement -----------------------------------------------------------------------------

def pixel_ascent(scorer: nn.Module, image: torch.Tensor, steps: int, step_size: float,
                 epsilon: float) -> torch.Tensor:
    """Iterative signed gradient ascent on the score, each pixel kept within +-epsilon of the
    original and in [0, 1]; returns the best image seen (the original if nothing helped)."""
    scorer.eval()
    x0 = image.detach()
    x = x0.clone()
    with torch.no_grad():
        best, best_score = x0.clone(), float(scorer(x0[None]).squeeze())
    for _ in range(steps):
        x.requires_grad_(True)
        score = scorer(x[None]).squeeze()
        (grad,) = torch.autograd.grad(score, x)
        with torch.no_grad():
            x = x + step_size * grad.sign()
            x = torch.min(torch.max(x, x0 - epsilon), x0 + epsilon).clamp(0.0, 1.0)
            s = float(scorer(x[None]).squeeze())
            if s > best_score:
                best, best_score = x.clone(), s
    return best


def render_edit(image: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """(3, H, W) [0, 1] image with the global edits ``values`` (in EDITS order) applied."""
    params = EditParams(**{name: values[i] for i, name in enumerate(EDITS)})
    return apply_edits(image.permute(1, 2, 0), params).permute(2, 0, 1)


def edit_ascent(scorer: nn.Module, image: torch.Tensor, steps: int, lr: float,
                bound: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Gradient ascent on the score over a few global edits (each within +-bound), so the
    output stays a photo; returns the best edited image seen and its edit values."""
    scorer.eval()
    values = torch.zeros(len(EDITS), requires_grad=True)
    opt = torch.optim.Adam([values], lr=lr)
    best_values = values.detach().clone()
    with torch.no_grad():
        best_score = float(scorer(image[None]).squeeze())
    for _ in range(steps):
        score = scorer(render_edit(image, values)[None]).squeeze()
        opt.zero_grad()
        (-score).backward()
        opt.step()
        with torch.no_grad():
            values.clamp_(-bound, bound)
            s = float(scorer(render_edit(image, values)[None]).squeeze())
            if s > best_score:
                best_values, best_score = values.detach().clone(), s
    with torch.no_grad():
        edited = render_edit(image, best_values)
    return edited, {n: float(v) for n, v in zip(EDITS, best_values, strict=True)}


# --- saliency --------------------------------------------------------------------------------

def saliency(scorer: nn.Module, images: torch.Tensor, smooth_samples: int = 0,
             noise: float = 0.15, seed: int = 0) -> np.ndarray:
    """|d score / d pixel|, max over colour channels, each map scaled to [0, 1]: (n, H, W).

    ``smooth_samples`` > 0: SmoothGrad, the mean gradient over noisy copies (Gaussian noise of sd
    ``noise`` on the [0, 1] range, clipped so every copy stays an image)."""
    scorer.eval()
    g = torch.Generator().manual_seed(seed)
    copies = max(1, smooth_samples)
    total = torch.zeros_like(images)
    for _ in range(copies):
        x = images.clone()
        if smooth_samples:
            x = (x + noise * torch.randn(x.shape, generator=g)).clamp(0.0, 1.0)
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(scorer(x).sum(), x)
        total += grad
    maps = (total / copies).abs().amax(1)
    return (maps / maps.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)).numpy()


def summarise_deltas(deltas: Sequence[float]) -> dict[str, float]:
    """Median, mean, sd and the fraction of users improved for per-user changes."""
    d = np.asarray(deltas, dtype=float)
    if len(d) == 0:
        return {"n": 0, "median": math.nan, "mean": math.nan, "sd": math.nan,
                "improved": math.nan}
    return {"n": len(d), "median": float(np.median(d)), "mean": float(d.mean()),
            "sd": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
            "improved": float((d > 0).mean())}
