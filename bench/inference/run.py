"""`lenslab` inference: photos/s per subcommand vs the model called directly; cold start.

    .venv/bin/python bench/inference/run.py [--data-root DIR] [--photos 256] [--repeats 7]

For each subcommand in ``SUBCOMMANDS`` (one row each: its argv, the registry family it applies
and how to call that model directly), over one folder of ``--photos`` real photos (crops of the
photos shipped in scikit-image, matplotlib and scikit-learn, saved as JPEG/PNG):

* ``in_process``: the whole command through click's ``main(..., standalone_mode=False)``
  (registry load, decoding, batching, output), ``--repeats`` runs after a warm-up;
* ``subprocess``: the installed ``lenslab`` console script in a fresh process (start-up too);
* ``direct``: the model called in Python on the same uint8 tensors the command builds, in
  batches of the command's default size (forward pass only), and ``direct_with_decoding``: the
  same plus opening and resizing the files (what a script calling the model would do); for
  ``pose``, ``similar`` and ``album``, whose job is more than one forward pass (BlazePose in its
  worker, the embedding then the album rule), ``direct_with_decoding`` is that whole job written
  in plain Python against the registered model.

These runs are interleaved, so load from other work falls on each alike; the JSON has the median
and the fastest run (the least disturbed one on a shared machine) of each.

The ratio in_process / direct is the command's overhead (target: within 20 %). The cold start
is ``lenslab models`` in a fresh process, median of ``--cold-runs`` (target < 3 s). Without
``--data-root`` (or where it lacks a family) the selfie and aesthetics models are trained by
materialising their assets at a small synthetic scale (``TRAIN``), and the pose and photobook
models are untrained stand-ins of the pipeline's architecture (``stand_ins``). Prints JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lenslab.params import REPO_ROOT, param

BATCH = 64  # the subcommands' default --batch-size


@dataclass(frozen=True)
class Subcommand:
    argv: Callable[[Path, list[Path]], list[str]]  # after `lenslab`, given the folder and photos
    family: str | None  # the registry family it applies (None: no registered model)
    # the same job in plain Python: the model on [0, 1] float batches (decoding timed apart) ...
    direct: Callable[[torch.nn.Module, torch.Tensor], object] | None = None
    # ... or, where the job is more than one forward pass, the whole of it from the files
    job: Callable[[Path, str, list[Path], int], None] | None = None
    size_key: str = "image_size"  # the card's architecture entry for the input side


def _images(paths: list[Path]) -> list[Image.Image]:
    out = []
    for path in paths:
        with Image.open(path) as im:
            out.append(im.convert("RGB"))
    return out


def _poses(paths: list[Path], sizes: list[tuple[int, int]], backend) -> torch.Tensor:
    from lenslab.pose.pairs import pose_frame, pose_rows, pose_vectors

    found = backend.estimate([str(p) for p in paths], paths)
    rows = [r for p, size, persons in zip(paths, sizes, found, strict=True)
            for r in pose_rows(str(p), "", *size, persons, backend.name, 2)]
    return torch.from_numpy(pose_vectors(pose_frame(rows), [str(p) for p in paths]))


def direct_pose(root: Path, version: str, paths: list[Path], batch: int) -> None:
    from lenslab.pose.backends import MediaPipeBackend

    backend = MediaPipeBackend()
    for i in range(0, len(paths), batch):
        chunk = paths[i:i + batch]
        _poses(chunk, [im.size for im in _images(chunk)], backend)


def direct_similar(root: Path, version: str, paths: list[Path], batch: int) -> None:
    from lenslab.pose.backends import MediaPipeBackend
    from models.images import image_tensor
    from models.registry import load_model

    model, card = load_model(root, "pose", version)
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


def direct_album(root: Path, version: str, paths: list[Path], batch: int) -> None:
    from models.photobook.rater import encoder_for
    from models.registry import load_model

    model, card = load_model(root, "photobook", version)
    rater, encoder = model.rater(card), encoder_for(card["encoder"])
    e = np.concatenate([encoder.encode_images(_images(paths[i:i + batch]), batch)
                        for i in range(0, len(paths), batch)])
    rater.album(e.astype(np.float64), [str(p) for p in paths], 12, "learned")


SUBCOMMANDS: dict[str, Subcommand] = {
    "selfie": Subcommand(lambda folder, _: ["selfie", str(folder)], "selfie",
                         direct=lambda model, x: torch.softmax(model(x).float(), 1)),
    "photographer": Subcommand(lambda folder, _: ["photographer", str(folder)], "photographer",
                               direct=lambda model, x: torch.softmax(model(x).float(), 1),
                               size_key="feature_size"),
    "rate": Subcommand(lambda folder, _: ["rate", str(folder)], "aesthetics",
                       direct=lambda model, x: model(x)),
    "pose": Subcommand(lambda folder, _: ["pose", str(folder)], None, job=direct_pose),
    "similar": Subcommand(lambda folder, paths: ["similar", str(paths[0]), "--among",
                                                 str(folder)], "pose", job=direct_similar),
    "album": Subcommand(lambda folder, _: ["album", str(folder), "--places", "12"], "photobook",
                        job=direct_album),
    "models": Subcommand(lambda folder, _: ["models"], None),
}

# family -> (synthetic source, scale, assets module and its lists, run config) to train it
TRAIN: dict[str, tuple[str, float, str, dict]] = {
    "selfie": ("selfies", 0.125, "assets.selfie:selfie_assets,selfie_checks", {
        "selfie_classifier": {"head_epochs": 15, "finetune_epochs": 1, "finetune_size": 64,
                              "scratch_epochs": 3, "scratch_size": 48},
        "selfie_report": {"bootstrap": 200, "finetune_size": 64, "samples": 2}}),
    "aesthetics": ("flickr_aes", 0.25, "assets.aesthetics:aesthetics_assets,aesthetics_checks", {
        "rater_splits": {"ks": [10, 100], "repeats": [1, 1]},
        "aesthetic_model": {"epochs": 1}, "personal_adapters": {"steps": 3},
        "enhanced_photos": {"photos_per_worker": 1, "steps": 2},
        "saliency_maps": {"samples": 1, "smoothgrad_n": 2, "workers": 1}}),
    "photographer": ("oxford_pets", 0.5, "assets.style:style_assets", {}),
}


def train(root: Path, families: set[str]) -> None:
    """Materialise what each family needs into ``root``, one source at a time."""
    import importlib

    import dagster as dg

    sys.path.insert(0, str(REPO_ROOT))  # the tests' one-source helper (tests/ is no package)
    from tests.support.one_source import ingest_and_catalog

    for family in sorted(families):
        source, scale, where, config = TRAIN[family]
        module, names = where.split(":")
        defs = [d for name in names.split(",")
                for d in getattr(importlib.import_module(module), name)]
        resources = ingest_and_catalog(root, source, scale)
        dg.materialize(defs, resources=resources, raise_on_error=True,
                       run_config={"ops": {k: {"config": v} for k, v in config.items()}})


def stand_ins(root: Path, families: set[str]) -> None:
    """Untrained ``pose`` / ``photobook`` models of the pipeline's architecture (seeded random
    weights) in the registry under ``root``: their speed does not depend on the weights."""
    from lenslab.photobook.rating import Rater
    from lenslab.scaling import Standardiser
    from models import registry
    from models.photobook.encoders import MLSP
    from models.photobook.rater import RaterModel
    from models.pose.siamese import build_from_card

    torch.manual_seed(0)
    common = {"asset": "bench stand-in", "code_version": "bench", "metrics": {}, "params": {},
              "data": {}, "backbone": {"name": "mobilenet_v2", "weights": "random"}}
    arch = {"backbone": param("pose.backbone"), "pose": True, "hidden": 128, "pose_dim": 32,
            "image_size": param("pose.frozen.image_size"), "finetuned": False,
            "frozen_stages": None}
    if "pose" in families:
        registry.register(root, "pose", build_from_card({"architecture": arch}), promote=True,
                          card={**common, "architecture": arch, "model": "frozen_pose",
                                "pose_backend": "mediapipe"})
    if "photobook" not in families:
        return
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


def photos(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` seeded crops (50-100 % of each side) of the packaged photos, JPEG and PNG."""
    from matplotlib import cbook
    from skimage import data as skdata
    from sklearn.datasets import load_sample_image

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        hopper = np.asarray(Image.open(fh).convert("RGB"))
    sources = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), hopper,
               load_sample_image("china.jpg")]
    r = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        a = sources[i % len(sources)]
        h, w = (int(s * r.uniform(0.5, 1.0)) for s in a.shape[:2])
        y, x = int(r.integers(0, a.shape[0] - h + 1)), int(r.integers(0, a.shape[1] - w + 1))
        path = folder / f"photo_{i:04d}.{'png' if i % 4 == 3 else 'jpg'}"
        Image.fromarray(a[y:y + h, x:x + w]).save(path)
        paths.append(path)
    return paths


def interleaved(fns: dict[str, Callable[[], object]], repeats: int,
                cold: tuple[str, ...] = ()) -> dict[str, list[float]]:
    """Seconds of each run of each function, the runs interleaved so that load on a shared
    machine falls on all of them alike; each runs once untimed first unless named in ``cold``."""
    for name, fn in fns.items():
        if name not in cold:
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def in_process(argv: list[str]) -> None:
    from lenslab.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(argv, standalone_mode=False)
        except SystemExit as done:  # finish() exits 0/1
            if done.code:
                raise RuntimeError(f"lenslab {' '.join(argv)} exited {done.code}") from None


def console(argv: list[str]) -> None:
    run = subprocess.run([str(Path(sys.executable).parent / "lenslab"), *argv],
                         capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"lenslab {' '.join(argv)}: {run.stderr[-500:]}")


def direct_calls(sub: Subcommand, root: Path, version: str,
                 paths: list[Path]) -> tuple[dict[str, Callable[[], object]], int]:
    """The model called in Python: on the command's tensors, and with decoding the files."""
    from models.images import as_float, image_tensor
    from models.registry import load_model

    model, card = load_model(root, sub.family, version)
    size = card["architecture"][sub.size_key]
    device = next(model.parameters()).device

    def decode() -> torch.Tensor:
        images = []
        for path in paths:
            with Image.open(path) as im:
                images.append(image_tensor(im.convert("RGB"), size))
        return torch.stack(images)

    tensors = decode()

    def forward(x: torch.Tensor) -> None:
        with torch.inference_mode():
            for i in range(0, len(x), BATCH):
                sub.direct(model, as_float(x[i:i + BATCH], device))

    return {"direct": lambda: forward(tensors),
            "direct_with_decoding": lambda: forward(decode())}, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=None,
                    help="A data tree with trained models; the missing ones are trained into it "
                    "(default: a temporary one).")
    ap.add_argument("--photos", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=7, help="Timed in-process/direct runs.")
    ap.add_argument("--process-runs", type=int, default=3, help="Timed console-script runs.")
    ap.add_argument("--cold-runs", type=int, default=7)
    ap.add_argument("--only", nargs="+", default=sorted(SUBCOMMANDS), choices=sorted(SUBCOMMANDS))
    args = ap.parse_args()
    from models.registry import entries

    with tempfile.TemporaryDirectory(prefix="lenslab-bench-") as tmp:
        root = args.data_root or Path(tmp) / "data"
        needed = {SUBCOMMANDS[s].family for s in args.only} - {None}
        newest: dict[str, str] = {}
        for card in entries(root):  # newest first
            newest.setdefault(card["family"], card["version"])
        train_s = None
        if needed - set(newest) - set(TRAIN):  # speed does not depend on the weights' values
            stand_ins(root, needed - set(newest) - set(TRAIN))
        if needed - set(newest):
            start = time.perf_counter()
            train(root, (needed - set(newest)) & set(TRAIN))
            train_s = time.perf_counter() - start
            for card in entries(root):  # the versions just trained (promoted or not)
                newest.setdefault(card["family"], card["version"])
        folder = Path(tmp) / "photos"
        paths = photos(folder, args.photos)
        results = {}
        for name in args.only:
            sub = SUBCOMMANDS[name]
            argv = [*sub.argv(folder, paths), "--data-root", str(root), "--format", "jsonl"]
            if sub.family:
                argv += ["--model-version", newest[sub.family]]
            calls = {"in_process": lambda argv=argv: in_process(argv)}
            row = {"argv": "lenslab " + " ".join(sub.argv(Path("PHOTOS"), [Path("PHOTO")]))}
            if sub.direct:
                direct, row["image_size"] = direct_calls(sub, root, newest[sub.family], paths)
                calls.update(direct)
            elif sub.job:
                version = newest.get(sub.family, "")
                calls["direct_with_decoding"] = lambda sub=sub, v=version: sub.job(
                    root, v, paths, BATCH)
            times = interleaved(calls, args.repeats)
            times.update(interleaved({"subprocess": lambda argv=argv: console(argv)},
                                     args.process_runs, cold=("subprocess",)))
            best = {k: min(v) for k, v in times.items()}
            median = {k: statistics.median(v) for k, v in times.items()}
            row.update({f"{k}_s": round(v, 4) for k, v in median.items()})
            row.update({f"{k}_min_s": round(v, 4) for k, v in best.items()})
            if "direct_with_decoding" in times:
                n = len(paths)
                row.update({f"{k}_photos_per_s": round(n / v, 1) for k, v in median.items()})
                for stat, t in (("median", median), ("min", best)):
                    for base in ("direct", "direct_with_decoding"):
                        if base in t:
                            row[f"in_process_over_{base}_{stat}"] = round(
                                t["in_process"] / t[base], 2)
            results[name] = row
        cold = interleaved({"models": lambda: console(["models", "--data-root", str(root)])},
                           args.cold_runs, cold=("models",))
    print(json.dumps({
        "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "date": datetime.now(UTC).date().isoformat(),
        "device": "cuda" if torch.cuda.is_available() else "cpu", "photos": args.photos,
        "batch": BATCH, "train_s": round(train_s, 1) if train_s else None,
        "results": results,
        "cold_start_models_s": {"median": round(statistics.median(cold["models"]), 3),
                                "min": round(min(cold["models"]), 3), "runs": args.cold_runs},
    }, indent=2))


if __name__ == "__main__":
    main()
