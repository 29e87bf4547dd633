"""Seconds per worker for each personalisation method at k shots (CPU, and CUDA when present).

    .venv/bin/python bench/personalise/run.py [--k 100] [--workers 3] [--steps 12]

Each "worker" is a random draw of k cached prefix features (MobileNetV2 at 64 px, first 16
stages frozen, as the default params) with random 1-5 ratings; the timed call is
``models.aesthetics.networks.personalise`` with the default learning rates, steps and hold-out
share, i.e.
what `personal_adapters` runs per worker, k and draw. Prints JSON with the median over workers.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from lenslab.params import param
from models.aesthetics.networks import METHODS, AestheticNet, PersonalSettings, Prefix, personalise
from models.backbones import build_trunk


def bench(device: torch.device, k: int, workers: int, steps: int) -> list[dict[str, object]]:
    size, cut = param("aesthetics.image_size"), param("aesthetics.frozen_stages")
    trunk = build_trunk(param("aesthetics.backbone"))
    with torch.no_grad():
        shape = Prefix(trunk, cut)(torch.rand(1, 3, size, size)).shape[1:]
    generic = AestheticNet(trunk, cut).eval()
    settings = PersonalSettings(steps, param("aesthetics.personal.holdout"),
                                dict(param("aesthetics.personal.lr")),
                                param("aesthetics.personal.anchor"),
                                param("aesthetics.personal.lr_shots"),
                                param("aesthetics.personal.min_stop"))
    g = torch.Generator().manual_seed(0)
    rows = []
    for method in METHODS:
        times = []
        for w in range(workers + 1):  # the first is a warm-up
            x = torch.randn((k, *shape), generator=g).clamp_min(0)
            y = torch.randint(1, 6, (k,), generator=g).float()
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            personalise(generic, method, x, y, settings, seed=w, device=device)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if w:
                times.append(time.perf_counter() - start)
        rows.append({"device": str(device), "method": method, "k": k, "steps": steps,
                     "workers": workers, "threads": torch.get_num_threads(),
                     "median_s_per_worker": round(statistics.median(times), 3)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--steps", type=int, default=param("aesthetics.personal.steps"))
    args = ap.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = [r for d in devices for r in bench(d, args.k, args.workers, args.steps)]
    print(json.dumps({"machine": platform.processor() or platform.machine(),
                      "torch": torch.__version__, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
