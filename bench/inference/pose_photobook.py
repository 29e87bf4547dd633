"""`lenslab` inference speed: photos/s of `pose`, `similar` and `album` on a batch of real photos
beside the same work done by calling the models directly in Python; cold start of the command.

    .venv/bin/python bench/inference/run.py [--photos 256] [--repeats 3] [--data-root DIR]

Photos: seeded crops of the real photos shipped in installed packages (skimage astronaut,
chelsea, coffee; matplotlib's grace_hopper; sklearn's china and flower), saved as JPEG at most
512 px. Models: the promoted `pose` and `photobook` entries of ``--data-root``'s registry when it
has them, else stand-ins registered in a temporary registry with the pipeline's architecture
(params.yaml) and seeded random weights: speed does not depend on the weights' values.

- ``cli``: the command in this process (imports warm), model loading, decoding and output
  included; ``direct``: the registered model loaded with ``models.registry.load_model`` and
  applied to the same files in Python, decoding included, no CLI. ratio = cli / direct time.
- ``cold``: a fresh ``lenslab`` process (the console script), wall time, median of --repeats.

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lenslab.params import param

LENSLAB = Path(sys.executable).with_name("lenslab")


def real_photos(folder: Path, n: int, seed: int = 0) -> list[Path]:
    from matplotlib import cbook
    from skimage import data as skdata
    from sklearn.datasets import load_sample_image

    bases = [Image.fromarray(skdata.astronaut()), Image.fromarray(skdata.chelsea()),
             Image.fromarray(skdata.coffee()),
             Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"),
             Image.fromarray(load_sample_image("china.jpg")),
             Image.fromarray(load_sample_image("flower.jpg"))]
    r = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        base = bases[i % len(bases)]
        w, h = base.size
        s = r.uniform(0.7, 1.0)
        cw, ch = int(w * s), int(h * s)
        x, y = int(r.integers(0, w - cw + 1)), int(r.integers(0, h - ch + 1))
        crop = base.crop((x, y, x + cw, y + ch))
        crop.thumbnail((512, 512))
        paths.append(folder / f"photo_{i:04d}.jpg")
        crop.save(paths[-1], quality=90)
    return paths


def stand_ins(root: Path) -> None:
    """Untrained models of the pipeline's architecture in a registry under ``root``."""
    from lenslab.photobook import Rater, Standardiser
    from models import registry
    from models.photobook import MLSP
    from models.photobook_rater import RaterModel
    from models.pose import build_from_card

    torch.manual_seed(0)
    common = {"asset": "bench stand-in", "code_version": "bench", "metrics": {}, "params": {},
              "data": {}, "backbone": {"name": "mobilenet_v2", "weights": "random"}}
    arch = {"backbone": param("pose.backbone"), "pose": True, "hidden": 128, "pose_dim": 32,
            "image_size": param("pose.frozen.image_size"), "finetuned": False,
            "frozen_stages": None}
    registry.register(root, "pose", build_from_card({"architecture": arch}), promote=True,
                      card={**common, "architecture": arch, "model": "frozen_pose",
                            "pose_backend": "mediapipe"})
    encoder = {"encoder": MLSP, "pretrained": True, "weights": "torchvision cache",
               "image_size": param("photobook.image_size"), "dim": 1656}
    r = np.random.default_rng(0)
    rater = Rater({"learned": r.normal(size=1656)}, {"learned": 1.0}, {"learned": "stand-in"},
                  Standardiser(np.zeros(1656), np.ones(1656)),
                  param("photobook.duplicate_threshold"), encoder)
    registry.register(root, "photobook", RaterModel.from_rater(rater), promote=True,
                      card={**common, "architecture": {
                          "dim": 1656, "duplicate_threshold": rater.duplicate_threshold},
                          "encoder": encoder, "vector": {"description": "stand-in"}})


# ------------------------------------------------------------------- the direct Python calls
def _images(paths: list[Path]) -> list[Image.Image]:
    out = []
    for path in paths:
        with Image.open(path) as im:
            out.append(im.convert("RGB"))
    return out


def _poses(paths: list[Path], sizes: list[tuple[int, int]], backend) -> torch.Tensor:
    from lenslab.pose import pose_frame, pose_rows, pose_vectors

    found = backend.estimate([str(p) for p in paths], paths)
    rows = [r for p, size, persons in zip(paths, sizes, found, strict=True)
            for r in pose_rows(str(p), "", *size, persons, backend.name, 2)]
    return torch.from_numpy(pose_vectors(pose_frame(rows), [str(p) for p in paths]))


def direct_pose(root: Path, paths: list[Path], batch: int) -> None:
    from lenslab.pose_backends import MediaPipeBackend

    backend = MediaPipeBackend()
    for i in range(0, len(paths), batch):
        chunk = paths[i:i + batch]
        _poses(chunk, [im.size for im in _images(chunk)], backend)


def direct_similar(root: Path, paths: list[Path], batch: int) -> None:
    from lenslab.pose_backends import MediaPipeBackend
    from models.images import image_tensor
    from models.registry import load_model

    model, card = load_model(root, "pose")
    size = card["architecture"]["image_size"]
    backend = MediaPipeBackend()

    def encode(chunk: list[Path]):
        images = _images(chunk)
        with torch.inference_mode():
            f = model.embed(torch.stack([image_tensor(im, size) for im in images]))
        return f, _poses(chunk, [im.size for im in images], backend)

    fq, pq = encode(paths[:1])
    for i in range(1, len(paths), batch):
        f, p = encode(paths[i:i + batch])
        with torch.inference_mode():
            torch.sigmoid(model(fq.expand(len(f), -1), f, pq.expand(len(p), -1), p))


def direct_album(root: Path, paths: list[Path], batch: int) -> None:
    from models.photobook_rater import encoder_for
    from models.registry import load_model

    model, card = load_model(root, "photobook")
    rater, encoder = model.rater(card), encoder_for(card["encoder"])
    e = np.concatenate([encoder.encode_images(_images(paths[i:i + batch]), batch)
                        for i in range(0, len(paths), batch)])
    rater.album(e.astype(np.float64), [str(p) for p in paths], 12, "learned")


# ------------------------------------------------------------------------------- the timings
def timed(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def alternating(a: Callable[[], object], b: Callable[[], object],
                repeats: int) -> tuple[float, float]:
    """Median times of ``a`` and ``b`` run in turn, so a busy machine's drift hits both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((a, times[0]), (b, times[1])):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def cli(args: list[str]) -> None:
    from click.testing import CliRunner

    from lenslab.cli import main

    run = CliRunner().invoke(main, args)
    if run.exit_code != 0:
        raise RuntimeError(f"lenslab {' '.join(args)} exited {run.exit_code}: {run.output}")


def cold(args: list[str], repeats: int) -> float:
    def once() -> None:
        subprocess.run([str(LENSLAB), *args], check=True, capture_output=True)

    return timed(once, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64, help="--batch-size of every command")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-root", type=Path, default=None,
                    help="a data tree whose registry has promoted pose and photobook models")
    ap.add_argument("--commands", nargs="+", default=["album", "similar", "pose", "cold"],
                    choices=["album", "similar", "pose", "cold"],
                    help="cold: the cold starts of every command")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lenslab-bench-"))
    try:
        root = args.data_root
        if root is None:
            root = work / "data"
            stand_ins(root)
        paths = real_photos(work / "photos", args.photos)
        real_photos(work / "warm-up", 4, seed=1)
        common = ["--data-root", str(root), "--format", "jsonl", "--batch-size", str(args.batch)]

        def command(name: str, folder: Path) -> list[str]:
            return {"pose": ["pose", str(folder)],
                    "similar": ["similar", str(paths[0]), "--among", str(folder)],
                    "album": ["album", str(folder), "--places", "12"]}[name] + common

        directs = {"pose": direct_pose, "similar": direct_similar, "album": direct_album}
        results = []
        for name in (c for c in args.commands if c != "cold"):
            direct = directs[name]
            cli(command(name, work / "warm-up"))  # imports, caches
            t_cli, t_direct = alternating(lambda n=name: cli(command(n, work / "photos")),
                                          lambda d=direct: d(root, paths, args.batch),
                                          args.repeats)
            results.append({"command": name, "photos": len(paths),
                            "cli_photos_per_s": round(len(paths) / t_cli, 2),
                            "direct_photos_per_s": round(len(paths) / t_direct, 2),
                            "cli_over_direct_time": round(t_cli / t_direct, 3)})
        one = str(paths[1])
        cold_rows = {} if "cold" not in args.commands else {
            "lenslab --help": cold(["--help"], args.repeats),
            "lenslab models": cold(["models", "--data-root", str(root)], args.repeats),
            "lenslab album (1 photo)": cold(["album", one, "--places", "1", "--data-root",
                                             str(root)], args.repeats),
            "lenslab compare (2 photos)": cold(["compare", one, str(paths[2]), "--data-root",
                                                str(root)], args.repeats),
            "lenslab similar (1 among 1)": cold(["similar", str(paths[0]), "--among", one,
                                                 "--data-root", str(root)], args.repeats),
            "lenslab pose (1 photo)": cold(["pose", one], args.repeats),
        }
        print(json.dumps({
            "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "device": "cpu",
            "models": "registry of " + (str(args.data_root) if args.data_root else
                                        "untrained stand-ins (pipeline architecture)"),
            "batch_size": args.batch, "repeats": args.repeats, "throughput": results,
            "cold_start_s": {k: round(v, 3) for k, v in cold_rows.items()}}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
