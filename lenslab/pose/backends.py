"""Pose estimation backends behind one small interface, all mapped to COCO-17.

A backend turns images into :class:`lenslab.pose.pairs.PersonPose` lists, in the pixel frame of the
image it was given:

- ``annotations``: the keypoints the dataset provides (``raw/landmark_photos/keypoints.parquet``,
  COCO visibility 2 -> confidence 1, 1 (labelled, hidden) -> 0.5); score = the person's share of
  the image area, so the largest people come first.
- ``openpifpaf``: the design card's estimator, batched on a torch device. Its checkpoint is a
  pinned name (:data:`NAMED_CHECKPOINTS`: resolved in the torch hub cache, downloaded there where
  there is internet, its SHA-256 checked on every load), a local openpifpaf checkpoint, or a
  local lenslab checkpoint (``{"base_name", "state_dict"}`` written by :func:`save_openpifpaf`).
  Everything loads with ``weights_only=True``: an openpifpaf checkpoint pickles the whole
  network, so the exact classes it holds are allowlisted (:data:`ALLOWED_GLOBALS`) and a pickle
  naming anything else (a function to call, above all) is refused before it is unpickled.
- ``mediapipe``: BlazePose (weights inside the mediapipe 0.10.14 wheel), the one backend with real
  pretrained weights offline. mediapipe pins protobuf < 5 and NumPy 1.x, which clash with
  dagster's, so it lives in its own environment (``.venv-mediapipe``, made by
  ``scripts/install_mediapipe.sh``) and runs as a worker process
  (``scripts/mediapipe_worker.py``) that reads image paths and answers keypoints as JSON.
  BlazePose finds one person per image.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from lenslab.atomic import atomic_open
from lenslab.digests import file_sha256
from lenslab.formats.landmark_photos import COCO_KEYPOINTS
from lenslab.images import open_image
from lenslab.params import REPO_ROOT
from lenslab.pose.pairs import PersonPose

BACKENDS = ("annotations", "openpifpaf", "mediapipe")


class PoseBackend(Protocol):
    name: str

    def estimate(self, image_ids: Sequence[str], paths: Sequence[Path]) -> list[list[PersonPose]]:
        """Persons per image (any number, any order; the caller keeps the top ones in frame)."""
        ...


# -------------------------------------------------------------------------------- annotations
class AnnotationsBackend:
    """The dataset's own keypoints (no image is read)."""

    name = "annotations"

    def __init__(self, table: pd.DataFrame, sizes: dict[str, tuple[int, int]]) -> None:
        self.sizes = sizes
        self.by_image = {k: g for k, g in table.groupby("image_id", sort=False)}

    def estimate(self, image_ids: Sequence[str], paths: Sequence[Path]) -> list[list[PersonPose]]:
        out = []
        for image_id in image_ids:
            rows = self.by_image.get(image_id)
            w, h = self.sizes[image_id]
            persons = []
            for row in [] if rows is None else rows.to_dict("records"):
                kps = np.array([[row[f"{n}_x"], row[f"{n}_y"], row[f"{n}_v"]]
                                for n in COCO_KEYPOINTS], float)
                kps[:, 2] = np.select([kps[:, 2] >= 2, kps[:, 2] >= 1], [1.0, 0.5], 0.0)
                bbox = (row["bbox_x"], row["bbox_y"], row["bbox_w"], row["bbox_h"])
                area = float(row["bbox_w"] * row["bbox_h"]) if np.isfinite(bbox).all() else 0.0
                persons.append(PersonPose(kps, area / (w * h), bbox))
            out.append(persons)
        return out


# --------------------------------------------------------------------------------- openpifpaf
# The exact classes (and numpy's array-rebuilding function) an openpifpaf checkpoint may name
# for the weights-only unpickler: what the installed openpifpaf pickles for the COCO-keypoint
# networks of NAMED_CHECKPOINTS (tests/pose/test_pose.py checks it against freshly built ones).
# Anything else, any other function above all, is refused before unpickling starts.
ALLOWED_GLOBALS = frozenset({
    "openpifpaf.headmeta.Caf", "openpifpaf.headmeta.Cif",
    "openpifpaf.network.basenetworks.InvertedResidualK",
    "openpifpaf.network.basenetworks.MobileNetV2", "openpifpaf.network.basenetworks.MobileNetV3",
    "openpifpaf.network.basenetworks.Resnet", "openpifpaf.network.basenetworks.ShuffleNetV2K",
    "openpifpaf.network.heads.CompositeField4", "openpifpaf.network.nets.Shell",
    "torch.nn.modules.activation.Hardsigmoid", "torch.nn.modules.activation.Hardswish",
    "torch.nn.modules.activation.ReLU", "torch.nn.modules.activation.ReLU6",
    "torch.nn.modules.batchnorm.BatchNorm2d", "torch.nn.modules.container.ModuleList",
    "torch.nn.modules.container.Sequential", "torch.nn.modules.conv.Conv2d",
    "torch.nn.modules.dropout.Dropout2d", "torch.nn.modules.pooling.AdaptiveAvgPool2d",
    "torch.nn.modules.pooling.MaxPool2d",
    "torchvision.models.mobilenetv2.InvertedResidual",
    "torchvision.models.mobilenetv3.InvertedResidual", "torchvision.models.resnet.Bottleneck",
    "torchvision.ops.misc.Conv2dNormActivation", "torchvision.ops.misc.SqueezeExcitation",
    "numpy.ndarray", "numpy.dtype", "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray._reconstruct",
    *(f"numpy.dtypes.{kind}DType" for kind in ("Float64", "Float32", "Float16", "Int64",
                                                "Int32", "UInt8", "Bool")),
})
_RELEASES = "https://github.com/openpifpaf/torchhub/releases/download"


@dataclass(frozen=True)
class NamedCheckpoint:
    url: str
    sha256: str  # the digest, or the prefix its publisher put in the file name (torch.hub's rule)


# openpifpaf's COCO-keypoint releases that ``--checkpoint NAME`` fetches. openpifpaf's own table
# has no digests; torch.hub names release files ``...-<first 8 hex of the SHA-256>.pkl``, and
# that is what is pinned (no full digest is published). The file is checked on download and
# again on every load, so a swapped file in the cache is refused too.
NAMED_CHECKPOINTS = {
    "shufflenetv2k16": NamedCheckpoint(
        f"{_RELEASES}/v0.13/shufflenetv2k16-210820-232500-cocokp-slurm726069-edge513-o10s-"
        "7189450a.pkl", "7189450a"),
    "shufflenetv2k30": NamedCheckpoint(
        f"{_RELEASES}/v0.13/shufflenetv2k30-210821-003923-cocokp-slurm726072-edge513-o10s-"
        "5fe1c400.pkl", "5fe1c400"),
    "resnet50": NamedCheckpoint(
        f"{_RELEASES}/v0.13/resnet50-210830-150728-cocokp-slurm728641-edge513-o10s-"
        "ecd30da4.pkl", "ecd30da4"),
    "mobilenetv3small": NamedCheckpoint(
        f"{_RELEASES}/v0.13/mobilenetv3small-210822-213409-cocokp-slurm726252-edge513-o10s-"
        "803b24ae.pkl", "803b24ae"),
    "mobilenetv3large": NamedCheckpoint(
        f"{_RELEASES}/v0.13/mobilenetv3large-210820-184901-cocokp-slurm725985-edge513-o10s-"
        "6c76cbfb.pkl", "6c76cbfb"),
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unknown, unfetchable, altered, or unsafe to unpickle."""


def _openpifpaf():
    import openpifpaf
    import torch

    torch.ops.openpifpaf.set_quiet(True)  # the C++ decoder's buffer-resize notes
    return openpifpaf


def coco_head_metas() -> list:
    return list(_openpifpaf().plugins.coco.CocoKp().head_metas)


def new_openpifpaf(base_name: str = "shufflenetv2k16"):
    """A randomly initialised openpifpaf network for COCO keypoints (for training or tests)."""
    net, _ = _openpifpaf().network.Factory(base_name=base_name).factory(
        head_metas=coco_head_metas())
    return net


def save_openpifpaf(net, base_name: str, path: Path) -> None:
    """A lenslab openpifpaf checkpoint: the base network's name and the state_dict."""
    import torch

    with atomic_open(path, "wb") as fh:  # a killed run leaves no torn checkpoint
        torch.save({"base_name": base_name, "state_dict": net.state_dict()}, fh)


def _openpifpaf_checkpoint_file(checkpoint: str) -> Path:
    """A pinned name -> its verified file in the torch hub cache (fetched if missing); a path ->
    itself. Anything else is a CheckpointError (FileNotFoundError for an unknown name)."""
    if Path(checkpoint).is_file():
        return Path(checkpoint)
    if checkpoint not in NAMED_CHECKPOINTS:
        raise FileNotFoundError(f"openpifpaf checkpoint {checkpoint!r} is neither a file nor a "
                                f"known name ({', '.join(sorted(NAMED_CHECKPOINTS))})")
    import torch.hub

    pinned = NAMED_CHECKPOINTS[checkpoint]
    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(pinned.url).name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:  # torch.hub writes a temporary file and renames it once the hash matches
            torch.hub.download_url_to_file(pinned.url, str(target), progress=False)
        except Exception as exc:  # offline: URLError, OSError, timeouts
            raise CheckpointError(
                f"openpifpaf checkpoint {checkpoint!r} is not in {target.parent} and could not "
                f"be fetched ({type(exc).__name__}: {exc}); fetch it where there is internet "
                "or give --checkpoint FILE") from None
    digest = file_sha256(target)
    if not digest.startswith(pinned.sha256):
        raise CheckpointError(f"{target}: SHA-256 {digest} does not match the pinned "
                              f"{pinned.sha256} of {checkpoint!r}; delete it to fetch it again")
    return target


def _allowlisted_globals(path: Path) -> list:
    import torch

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as exc:  # not a torch zip file, a broken pickle
        raise CheckpointError(f"{path}: not a loadable checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    refused = sorted(set(names) - ALLOWED_GLOBALS)
    if refused:
        raise CheckpointError(f"{path}: refusing to unpickle {', '.join(refused)} (not one of "
                              "the classes an openpifpaf checkpoint holds)")
    # numpy's dtype classes are reached through numpy.dtype's reduce, which the scan above does
    # not list; they are classes, not functions
    objects = [type(np.dtype(t)) for t in ("f8", "f4", "f2", "i8", "i4", "u1", "?")]
    for name in names:
        module, _, attr = name.rpartition(".")
        objects.append(getattr(importlib.import_module(module), attr))
    return objects


def load_openpifpaf(checkpoint: str | Path):
    """An openpifpaf network in eval mode from a name or a file (see the module docstring)."""
    import torch

    path = _openpifpaf_checkpoint_file(str(checkpoint))
    allowed = _allowlisted_globals(path)
    try:
        with torch.serialization.safe_globals(allowed):
            saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, or a pickle the weights-only loader refuses
        raise CheckpointError(f"{path}: not a loadable checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if isinstance(saved, dict) and "state_dict" in saved:  # lenslab's format
        net = new_openpifpaf(saved["base_name"])
        net.load_state_dict(saved["state_dict"])
    elif isinstance(saved, dict) and isinstance(saved.get("model"), torch.nn.Module):
        net = saved["model"]  # openpifpaf's own format: the pickled network
        _openpifpaf().network.model_migration.model_migration(net)
    else:
        raise CheckpointError(f"{path}: not an openpifpaf checkpoint (no 'model' or "
                              "'state_dict')")
    return net.eval()


class OpenPifPafBackend:
    """openpifpaf's CifCaf decoder on batches of images padded to a common size."""

    name = "openpifpaf"

    def __init__(self, checkpoint: str | Path, device, batch_size: int = 8) -> None:
        self.net = load_openpifpaf(checkpoint).to(device)
        self.decoder = _openpifpaf().decoder.factory(self.net.head_metas)
        self.device, self.batch_size = device, batch_size

    def estimate(self, image_ids: Sequence[str], paths: Sequence[Path]) -> list[list[PersonPose]]:
        out: list[list[PersonPose]] = []
        for i in range(0, len(paths), self.batch_size):
            batch = _padded_batch(paths[i:i + self.batch_size])
            for anns in self.decoder.batch(self.net, batch, device=self.device):
                out.append([PersonPose(np.asarray(a.data, float), float(a.score),
                                       tuple(float(v) for v in a.bbox())) for a in anns])
        return out


def _padded_batch(paths: Sequence[Path], stride: int = 16):
    """ImageNet-normalised images padded right/bottom to a common ``stride * k + 1`` size
    (openpifpaf's tight padding), so keypoints come back in each image's own pixels."""
    import torch

    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    tensors = []
    for path in paths:
        array = np.asarray(open_image(Path(path)), dtype=np.float32) / 255
        tensors.append((torch.from_numpy(array).permute(2, 0, 1) - mean) / std)
    h = max(t.shape[1] for t in tensors)
    w = max(t.shape[2] for t in tensors)
    h, w = (h + stride - 2) // stride * stride + 1, (w + stride - 2) // stride * stride + 1
    batch = torch.zeros(len(tensors), 3, h, w)
    for k, t in enumerate(tensors):
        batch[k, :, :t.shape[1], :t.shape[2]] = t
    return batch


# ---------------------------------------------------------------------------------- mediapipe
MEDIAPIPE_WORKER = REPO_ROOT / "scripts" / "mediapipe_worker.py"


def mediapipe_python() -> Path:
    """The isolated environment's interpreter (``LENSLAB_MEDIAPIPE_PYTHON`` overrides)."""
    return Path(os.environ.get("LENSLAB_MEDIAPIPE_PYTHON",
                               REPO_ROOT / ".venv-mediapipe" / "bin" / "python"))


class MediaPipeBackend:
    """BlazePose in a worker process of the mediapipe environment (one person per image)."""

    name = "mediapipe"

    def __init__(self, model_complexity: int = 1, timeout_s: float = 600) -> None:
        python = mediapipe_python()
        if not python.exists():
            raise FileNotFoundError(f"{python} missing: run scripts/install_mediapipe.sh")
        self.command = [str(python), str(MEDIAPIPE_WORKER), "--model-complexity",
                        str(model_complexity)]
        self.timeout_s = timeout_s

    def estimate(self, image_ids: Sequence[str], paths: Sequence[Path]) -> list[list[PersonPose]]:
        request = "".join(json.dumps(str(Path(p).resolve())) + "\n" for p in paths)
        done = subprocess.run(self.command, input=request, capture_output=True, text=True,
                              timeout=self.timeout_s, env={**os.environ, "GLOG_minloglevel": "2"})
        if done.returncode != 0:
            raise RuntimeError(f"mediapipe worker failed ({done.returncode}): "
                               f"{done.stderr.strip()[-2000:]}")
        answers = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        if len(answers) != len(paths):
            raise RuntimeError(f"mediapipe worker answered {len(answers)} of {len(paths)} images")
        out = []
        for path, answer in zip(paths, answers, strict=True):
            if "error" in answer:
                raise RuntimeError(f"{path}: {answer['error']}")
            out.append([PersonPose(np.asarray(p["keypoints"], float), float(p["score"]),
                                   tuple(p["bbox"]) if p.get("bbox") else None)
                        for p in answer["persons"]])
        return out


def make_backend(name: str, *, annotations: pd.DataFrame | None = None,
                 sizes: dict[str, tuple[int, int]] | None = None, checkpoint: str = "",
                 device=None, batch_size: int = 8) -> PoseBackend:
    """The named backend, ready to run."""
    if name == "annotations":
        if annotations is None or sizes is None:
            raise ValueError("the annotations backend needs the source's keypoint table")
        return AnnotationsBackend(annotations, sizes)
    if name == "openpifpaf":
        if not checkpoint:
            raise ValueError("the openpifpaf backend needs a checkpoint (a name or a path)")
        return OpenPifPafBackend(checkpoint, device, batch_size)
    if name == "mediapipe":
        return MediaPipeBackend()
    raise ValueError(f"unknown pose backend {name!r}; choose from {BACKENDS}")
