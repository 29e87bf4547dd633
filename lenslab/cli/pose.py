"""`lenslab pose` (keypoints per person, skeleton images) and `lenslab similar` (pose similarity
ranking with the registered model)."""

from __future__ import annotations

import math
from pathlib import Path

import click

from lenslab.cli.common import (
    data_root_option,
    emit,
    fail,
    find_images,
    finish,
    format_option,
    load_family,
    model_options,
)

BACKENDS = ("mediapipe", "openpifpaf", "annotations")  # lenslab.pose.backends.BACKENDS, cheaply
DEFAULT_BACKEND = "mediapipe"  # the one backend with real pretrained weights offline


def backend_options(f):
    f = click.option("--max-persons", type=click.IntRange(min=1), default=None,
                     help="Persons kept per photo, best score first [default: params.yaml "
                     "pose.max_persons].")(f)
    f = click.option("--checkpoint", default="",
                     help="openpifpaf: a checkpoint name or file [default: params.yaml "
                     "pose.checkpoint].")(f)
    return click.option(
        "--backend", type=click.Choice(BACKENDS), default=DEFAULT_BACKEND, show_default=True,
        help="mediapipe: BlazePose, weights in its wheel, works offline on any photo (its own "
        "environment: scripts/install_mediapipe.sh); openpifpaf: needs a checkpoint; "
        "annotations: the synthetic landmark photos' own keypoints (photos of the data tree's "
        "catalog only).")(f)


class Poses:
    """A pose backend ready for the CLI's photos; exits 2 with the reason if it cannot run."""

    def __init__(self, name: str, checkpoint: str, data_root: Path, device,
                 batch_size: int, max_persons: int | None) -> None:
        from lenslab.params import param
        from lenslab.pose.backends import CheckpointError, make_backend

        self.max_persons = max_persons or param("pose.max_persons")
        self.ids: dict[str, str] = {}  # annotations: sha256 -> catalog image_id
        annotations = sizes = None
        if name == "annotations":
            annotations, sizes = self._annotations(data_root)
        elif name == "openpifpaf":
            checkpoint = checkpoint or param("pose.checkpoint")
            try:
                import openpifpaf  # noqa: F401
            except ImportError:
                fail("the openpifpaf backend is not installed (pip install openpifpaf, see "
                     "README); --backend mediapipe works offline")
            if not checkpoint:
                fail("the openpifpaf backend needs --checkpoint (a name or a file)")
        try:
            self.backend = make_backend(name, annotations=annotations, sizes=sizes,
                                        checkpoint=checkpoint, device=device,
                                        batch_size=batch_size)
        except FileNotFoundError as err:
            hint = " (or choose another --backend)" if name == "mediapipe" else ""
            fail(f"the {name} backend cannot run: {err}{hint}")
        except CheckpointError as err:
            fail(f"the {name} backend cannot run: {err}")

    def _annotations(self, data_root: Path):
        import pandas as pd

        from lenslab.paths import DataLayout
        from lenslab.pose.pairs import SOURCE

        layout = DataLayout(data_root)
        keypoints = layout.raw(SOURCE) / "keypoints.parquet"
        for path in (layout.catalog, keypoints):
            if not path.is_file():
                fail(f"the annotations backend needs {path} (ingest and catalogue {SOURCE})")
        catalog = pd.read_parquet(layout.catalog)
        catalog = catalog[catalog["source"] == SOURCE]
        self.ids = dict(zip(catalog["sha256"], catalog["image_id"], strict=True))
        sizes = {r.image_id: (r.width, r.height) for r in catalog.itertuples()}
        return pd.read_parquet(keypoints), sizes

    def estimate(self, chunk: list) -> tuple[list, list[tuple[str, str]]]:
        """(persons per answered photo as (path, image, persons), rejected (photo, why))."""
        import hashlib

        rejected = []
        if self.ids:
            keyed = []
            for path, im in chunk:
                image_id = self.ids.get(hashlib.sha256(path.read_bytes()).hexdigest())
                if image_id is None:
                    rejected.append((str(path), "no annotations: not a catalogued landmark "
                                     "photo (choose --backend mediapipe for other photos)"))
                else:
                    keyed.append((image_id, path, im))
        else:
            keyed = [(str(path), path, im) for path, im in chunk]
        try:
            found = self.backend.estimate([k for k, _, _ in keyed], [p for _, p, _ in keyed])
        except RuntimeError as err:  # the mediapipe worker names the photo it failed on
            fail(f"the {self.backend.name} backend failed: {err}")
        return [(p, im, persons) for (_, p, im), persons in zip(keyed, found, strict=True)], \
            rejected

    def rows(self, path: Path, im, persons) -> list[dict]:
        """The pose table's rows of one photo (one ``person = -1`` row if nobody is found)."""
        from lenslab.pose.pairs import pose_rows

        rows = pose_rows(str(path), "", *im.size, persons, self.backend.name, self.max_persons)
        return [{"photo": r.pop("image_id"), **{k: _clean(v) for k, v in r.items()
                                               if k != "sha256"}} for r in rows]


def _clean(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def _summary(row: dict) -> dict:
    """A row short enough for a terminal table: the box and how many keypoints were found."""
    from lenslab.pose.pairs import KP_COLUMNS

    found = sum(1 for c in KP_COLUMNS if c.endswith("_c") and (row[c] or 0) > 0)
    box = (", ".join(f"{row[k]:.0f}" for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
           if row["person"] >= 0 else "")
    return {"photo": row["photo"], "person": row["person"], "score": row["score"],
            "box (x, y, w, h)": box, "keypoints found": found,
            **({"mask": row["mask"]} if "mask" in row else {})}


def _mask_path(folder: Path, path: Path, taken: set[Path]) -> Path:
    out = folder / f"{path.stem}.png"
    k = 1
    while out in taken:
        out, k = folder / f"{path.stem}-{k}.png", k + 1
    taken.add(out)
    return out


@click.command()
@click.argument("photos", nargs=-1, required=True)
@backend_options
@click.option("--masks", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write a skeleton image per photo (limbs of its persons, white on black) "
              "to this folder.")
@click.option("--mask-size", type=click.IntRange(min=16), default=256, show_default=True,
              help="Side of the skeleton images, px.")
@data_root_option
@format_option
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--batch-size", default=64, show_default=True, help="Photos per backend call.")
def pose(photos: tuple[str, ...], backend: str, checkpoint: str, max_persons: int | None,
         masks: Path | None, mask_size: int, data_root: Path, fmt: str, device: str,
         batch_size: int) -> None:
    """COCO-17 keypoints (x, y, confidence) per person, one row per person; a photo where no
    one is found keeps one row with person -1. Coordinates are in the photo's own pixels.

    PHOTOS are image files, folders or glob patterns. The table shows a summary per person;
    --format jsonl or csv gives every keypoint (nose_x, nose_y, nose_c, ...).

    \b
    Examples:
      lenslab pose portrait.jpg
      lenslab pose shoot/ --masks skeletons/ --format csv > keypoints.csv
      lenslab pose 'landmarks/*.png' --backend openpifpaf --checkpoint shufflenetv2k16
    """
    from lenslab.pose.pairs import draw_mask, keypoints_of, pose_frame
    from models.device import pick_device

    poses = Poses(backend, checkpoint, data_root, pick_device(device), batch_size, max_persons)
    inputs = find_images(photos)
    if masks is not None:
        masks.mkdir(parents=True, exist_ok=True)
    taken: set[Path] = set()
    rows = []
    for chunk in inputs.batches(batch_size, "pose"):
        answered, rejected = poses.estimate(chunk)
        inputs.rejected += rejected
        for path, im, persons in answered:
            photo_rows = poses.rows(path, im, persons)
            if masks is not None:
                people = pose_frame([{**r, "image_id": r["photo"], "sha256": ""}
                                     for r in photo_rows if r["person"] >= 0])
                out = _mask_path(masks, path, taken)
                draw_mask(keypoints_of(people), *im.size, mask_size).save(out)
                photo_rows = [{**r, "mask": str(out)} for r in photo_rows]
            rows += photo_rows
    emit([_summary(r) for r in rows] if fmt == "table" else rows, fmt)
    finish(inputs.rejected)


@click.command()
@click.argument("photo")
@click.option("--among", "among", multiple=True, required=True,
              help="The photos to rank: a folder, files or glob patterns (repeatable).")
@backend_options
@data_root_option
@format_option
@model_options
def similar(photo: str, among: tuple[str, ...], backend: str, checkpoint: str,
            max_persons: int | None, data_root: Path, fmt: str, batch_size: int, device: str,
            model_version: str) -> None:
    """Rank photos by how likely each shows the same place and pose as PHOTO, with the
    registered landmark pose similarity model (`lenslab models`). When that model has a pose
    branch, every photo's main person is found with --backend first.

    \b
    Examples:
      lenslab similar my_shot.jpg --among trip/
      lenslab similar my_shot.jpg --among 'rome/*.jpg' --format jsonl | head -5
    """
    import torch

    from lenslab.pose.pairs import pose_frame, pose_vectors
    from models.images import image_tensor

    model, card = load_family(data_root, "pose", model_version, device)
    arch = card["architecture"]
    torch_device = model.trunk.mean.device
    query = find_images([photo])
    if len(query.paths) > 1:
        fail(f"{photo}: give one photo to compare with, not {len(query.paths)}")
    pool = find_images(among)
    query_images = query.decode(query.paths)
    if not query_images:
        finish(query.rejected + pool.rejected)
    query_path = query_images[0][0].resolve()
    pool.paths = [p for p in pool.paths if p.resolve() != query_path]
    if not pool.paths and not pool.rejected:
        fail(f"no other photos among {', '.join(among)}")
    poses = (Poses(backend, checkpoint, data_root, torch_device, batch_size, max_persons)
             if arch["pose"] else None)

    def encode(chunk: list) -> tuple[list, torch.Tensor, torch.Tensor]:
        """(answered (path, person found), pooled features, pose vectors) of a chunk."""
        if poses is None:
            answered = [(p, im, None) for p, im in chunk]
        else:
            answered, rejected = poses.estimate(chunk)
            pool.rejected.extend(rejected)
        if not answered:
            return [], torch.zeros(0), torch.zeros(0)
        x = torch.stack([image_tensor(im, arch["image_size"]) for _, im, _ in answered])
        with torch.inference_mode():
            f = model.embed(x)
        if poses is None:
            p = torch.zeros(len(answered), 0)
            return [(path, None) for path, _, _ in answered], f, p
        rows = [r for path, im, persons in answered for r in poses.rows(path, im, persons)]
        frame = pose_frame([{**r, "image_id": r["photo"], "sha256": ""} for r in rows])
        p = torch.from_numpy(pose_vectors(frame, [str(path) for path, _, _ in answered]))
        return [(path, bool(v[-1])) for (path, _, _), v in zip(answered, p, strict=True)], f, p

    answered, fq, pq = encode(query_images)
    if not answered:  # the query itself was rejected (annotations backend)
        finish(query.rejected + pool.rejected)
    rows = []
    for chunk in pool.batches(batch_size, "similar"):
        found, f, p = encode(chunk)
        if not found:
            continue
        with torch.inference_mode():
            logits = model(fq.expand(len(f), -1), f, pq.expand(len(p), -1).to(torch_device),
                           p.to(torch_device))
        for (path, person), prob in zip(found, torch.sigmoid(logits.float()).tolist(),
                                        strict=True):
            rows.append({"photo": str(path), "p_similar": round(prob, 4),
                         **({"person_found": person} if poses else {})})
    rows.sort(key=lambda r: -r["p_similar"])
    emit([{"rank": k, **r} for k, r in enumerate(rows, start=1)], fmt)
    finish(query.rejected + pool.rejected)
