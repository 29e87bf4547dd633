"""Poses of every catalogued landmark photo from one backend, as the pose table."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from lenslab.paths import DataLayout
from lenslab.pose.backends import make_backend
from lenslab.pose.pairs import landmark_images, pose_frame, pose_rows


@dataclass
class Extraction:
    poses: pd.DataFrame
    images: int
    seconds: float


def extract_poses(layout: DataLayout, backend: str, *, checkpoint: str | None,
                  max_persons: int, batch_size: int, device) -> Extraction:
    """One row per kept person (top ``max_persons``), one empty row for a photo without one.

    Annotations are in the original's pixels; detectors see the normalised copy, so each
    backend's keypoints are mapped to the frame it read.
    """
    images = landmark_images(pd.read_parquet(layout.catalog))
    annotations = None
    if backend == "annotations":
        annotations = pd.read_parquet(layout.raw("landmark_photos") / "keypoints.parquet")
    sizes = {r.image_id: (r.width, r.height) for r in images.itertuples()}
    paths = [layout.root / p for p in images["normalised_path"]]
    if backend != "annotations":
        from PIL import Image

        for image_id, path in zip(images["image_id"], paths, strict=True):
            with Image.open(path) as im:
                sizes[image_id] = im.size
    estimator = make_backend(backend, annotations=annotations, sizes=sizes,
                             checkpoint=checkpoint, device=device, batch_size=batch_size)
    start = time.perf_counter()
    found = estimator.estimate(list(images["image_id"]), paths)
    seconds = time.perf_counter() - start
    rows = []
    for image_id, sha, persons in zip(images["image_id"], images["sha256"], found, strict=True):
        rows += pose_rows(image_id, sha, *sizes[image_id], persons, estimator.name,
                          max_persons)
    return Extraction(pose_frame(rows), len(images), seconds)
