"""Feature-extraction throughput of the selfie trunk: images/s on CPU (and CUDA when present).

    .venv/bin/python bench/selfie/run.py [--images 256] [--size 128] [--batch 64] [--repeats 3]

Images are the skimage photos (astronaut, chelsea, coffee) resized and repeated; decoding is not
timed, only the batched forward pass of ``models.selfie.classifiers.extract_features``. Prints JSON
with the
median of ``--repeats`` timed runs after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from PIL import Image
from skimage import data as skdata

from models.backbones import build_trunk, extract_features
from models.images import image_tensor


def bench(device: torch.device, backbone: str, n: int, size: int, batch: int,
          repeats: int) -> dict[str, object]:
    photos = [Image.fromarray(f()) for f in (skdata.astronaut, skdata.chelsea, skdata.coffee)]
    images = torch.stack([image_tensor(photos[i % 3], size) for i in range(n)])
    trunk = build_trunk(backbone)
    extract_features(trunk, images[:batch], device, batch)  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        extract_features(trunk, images, device, batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"device": str(device), "backbone": backbone, "images": n, "size": size,
            "batch": batch, "threads": torch.get_num_threads(), "median_s": round(median, 3),
            "images_per_s": round(n / median, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--size", type=int, nargs="+", default=[128, 160, 224])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = [bench(d, args.backbone, args.images, s, args.batch, args.repeats)
            for d in devices for s in args.size]
    print(json.dumps({"machine": platform.processor() or platform.machine(),
                      "torch": torch.__version__, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
