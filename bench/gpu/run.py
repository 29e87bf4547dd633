"""GPU against CPU for lenslab's heaviest model work, and lenslab's training loop against a bare
PyTorch loop on the same model and data.

    python bench/gpu/run.py --device cuda --out gpu.json
    python bench/gpu/run.py --device cpu --images 256 --epochs 1 --out cpu.json

Three measurements, each on seeded synthetic uint8 photos (speed does not depend on content):
- embeddings: `models.backbones.extract_features` (MobileNetV2 trunk, pooled transfer values),
  images/s and peak GPU memory;
- training: `models.selfie.classifiers.train_classifier` fine-tuning MobileNetV2 + the selfie
  head (what `selfie_classifier` runs), epoch time, train images/s, peak GPU memory;
- the bare loop: the same model, initial weights, optimiser, batch size, augmentation and
  autocast, written as the plainest PyTorch loop (no validation, no per-epoch bookkeeping).
The ratio training / bare is the loop's overhead (target: at least 0.9). Weights are random
(`pretrained=False`): the GPU machine has no internet, and speed does not depend on them.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.backbones import build_trunk, extract_features
from models.device import describe, mixed_precision
from models.images import as_float
from models.selfie.classifiers import (
    FineTuned,
    TrainSettings,
    TransferHead,
    train_classifier,
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mib(device: torch.device) -> float | None:
    return (round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
            if device.type == "cuda" else None)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def photos(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded uint8 (n, 3, size, size) images and labels that depend on their brightness."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8)
    labels = (images.float().mean((1, 2, 3)) > 127.5).long()
    return images, labels


def bench_embeddings(device: torch.device, images: torch.Tensor, batch: int) -> dict:
    trunk = build_trunk("mobilenet_v2", pretrained=False)
    extract_features(trunk, images[:batch], device, batch)  # warm-up (cuDNN autotune, lazy init)
    _sync(device)
    _reset_peak(device)
    start = time.perf_counter()
    extract_features(trunk, images, device, batch)
    _sync(device)
    seconds = time.perf_counter() - start
    return {"images": len(images), "seconds": round(seconds, 3),
            "images_per_s": round(len(images) / seconds, 1), "peak_gpu_mib": _peak_mib(device)}


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    trunk = build_trunk("mobilenet_v2", pretrained=False)
    return FineTuned(trunk, TransferHead(trunk.dim, 1024), 0)


def bench_lenslab_loop(device, model, train, val, settings) -> dict:
    _reset_peak(device)
    _sync(device)
    start = time.perf_counter()
    _, result = train_classifier(model, train, val, settings, device)
    _sync(device)
    seconds = time.perf_counter() - start
    n = len(train[0]) * settings.epochs
    return {"epochs": settings.epochs, "seconds": round(seconds, 3),
            "epoch_seconds": round(seconds / settings.epochs, 3),
            "train_images_per_s": round(n / seconds, 1), "peak_gpu_mib": _peak_mib(device),
            "val_auc_last": round(result.history[-1]["val_auc"], 4)}


def bench_bare_loop(device, model, train, settings) -> dict:
    """The plainest loop over the same steps: Adam, cross-entropy, flips, autocast."""
    torch.manual_seed(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    model = model.to(device).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                                 lr=settings.lr)
    criterion = nn.CrossEntropyLoss()
    x, y = train
    _reset_peak(device)
    _sync(device)
    start = time.perf_counter()
    for _ in range(settings.epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(order), settings.batch_size):
            idx = order[i:i + settings.batch_size]
            xb, yb = as_float(x[idx], device), y[idx].to(device)
            flip = (torch.rand(len(idx), generator=gen) < 0.5).to(device)
            xb[flip] = xb[flip].flip(-1)
            with mixed_precision(device):
                loss = criterion(model(xb).float(), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    _sync(device)
    seconds = time.perf_counter() - start
    n = len(x) * settings.epochs
    return {"epochs": settings.epochs, "seconds": round(seconds, 3),
            "epoch_seconds": round(seconds / settings.epochs, 3),
            "train_images_per_s": round(n / seconds, 1), "peak_gpu_mib": _peak_mib(device)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=4096, help="training photos")
    parser.add_argument("--val", type=int, default=512, help="validation photos")
    parser.add_argument("--size", type=int, default=160, help="side in pixels")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of lenslab's loop and the bare loop")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    images, labels = photos(args.images + args.val, args.size, seed=0)
    train = (images[:args.images], labels[:args.images])
    val = (images[args.images:], labels[args.images:])
    settings = TrainSettings(args.epochs, 1e-4, args.batch, seed=1, augment=True, images=True)
    report = {"device": describe(device), "torch": torch.__version__,
              "python": platform.python_version(), "size": args.size, "batch": args.batch,
              "embeddings": bench_embeddings(device, images, args.batch), "rounds": []}
    initial = _model(seed=2)
    warm = TrainSettings(1, 1e-4, args.batch, seed=1, augment=True, images=True)
    few = (train[0][:args.batch * 2], train[1][:args.batch * 2])
    bench_bare_loop(device, copy.deepcopy(initial), few, warm)  # warm-up: autotune, lazy init
    bench_lenslab_loop(device, copy.deepcopy(initial), few, val, warm)
    for _ in range(args.rounds):  # alternate, so drift in clocks or load hits both alike
        lenslab = bench_lenslab_loop(device, copy.deepcopy(initial), train, val, settings)
        bare = bench_bare_loop(device, copy.deepcopy(initial), train, settings)
        report["rounds"].append({"lenslab": lenslab, "bare": bare, "ratio": round(
            lenslab["train_images_per_s"] / bare["train_images_per_s"], 3)})
    report["median_ratio"] = statistics.median(r["ratio"] for r in report["rounds"])
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
