"""Pose extraction throughput per backend: images/s on CPU (and openpifpaf on CUDA when present).

    .venv/bin/python bench/pose/run.py [--scale 0.5] [--repeats 3] [--backends ...]

Images are the synthetic landmark photos (192 px, lenslab.synthetic.landmarks at ``--scale``),
generated and parsed once into a temporary folder; each backend's ``estimate`` over all of them
is timed (decoding included, since every backend reads its own input). openpifpaf runs a
randomly initialised shufflenetv2k16 (no pretrained checkpoint is available offline; its speed
does not depend on the weights, though decoding time does somewhat). mediapipe includes starting
its worker process. Prints JSON with the median of ``--repeats`` timed runs after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from lenslab.formats.landmark_photos import parse
from lenslab.pose import backends as B
from lenslab.synthetic.landmarks import generate


def _dataset(folder: Path, scale: float):
    generate(folder / "distributed", folder / "ground_truth", seed=20261124, scale=scale)
    parsed = parse(folder / "distributed", folder)
    records = parsed.records
    paths = [folder / p for p in records["path"]]
    sizes = {}
    for image_id, path in zip(records["image_id"], paths, strict=True):
        with Image.open(path) as im:
            sizes[image_id] = im.size
    return list(records["image_id"]), paths, sizes, parsed.tables["keypoints"]


def _time(backend, ids, paths, repeats: int) -> dict[str, float]:
    backend.estimate(ids[:4], paths[:4])  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        found = backend.estimate(ids, paths)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"images": len(ids), "seconds_median": round(median, 3),
            "images_per_second": round(len(ids) / median, 1),
            "images_with_person": sum(bool(f) for f in found)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=list(B.BACKENDS))
    args = parser.parse_args()
    results: dict[str, object] = {"machine": platform.platform(), "cpu_threads":
                                  torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    with tempfile.TemporaryDirectory() as tmp:
        ids, paths, sizes, keypoints = _dataset(Path(tmp), args.scale)
        checkpoint = Path(tmp) / "shufflenetv2k16-random.pt"
        torch.manual_seed(0)
        B.save_openpifpaf(B.new_openpifpaf("shufflenetv2k16"), "shufflenetv2k16", checkpoint)
        devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available()
                                           else [])
        for name in args.backends:
            for device in devices if name == "openpifpaf" else devices[:1]:
                backend = B.make_backend(name, annotations=keypoints, sizes=sizes,
                                         checkpoint=str(checkpoint), device=device)
                results[f"{name}/{device.type}"] = _time(backend, ids, paths, args.repeats)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
