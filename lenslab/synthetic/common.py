"""Helpers every synthetic generator shares: sizes, image encoding, deterministic archives."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from lenslab import atomic


def scaled(n: int, scale: float, minimum: int = 1) -> int:
    """``n`` items at scale 1.0; at least ``minimum`` at any scale."""
    return max(minimum, round(n * scale))


def to_image(pixels: np.ndarray) -> Image.Image:
    """float [0, 1] or uint8 HxWx3 array -> RGB PIL image."""
    if pixels.dtype != np.uint8:
        pixels = (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def encode_jpeg(pixels: np.ndarray | Image.Image, quality: int = 92) -> bytes:
    image = pixels if isinstance(pixels, Image.Image) else to_image(pixels)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_png(pixels: np.ndarray | Image.Image, compress_level: int = 6) -> bytes:
    """PNG bytes; a lower ``compress_level`` is much faster on noisy photos."""
    image = pixels if isinstance(pixels, Image.Image) else to_image(pixels)
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def write_tar_gz(archive: Path, members: Iterable[tuple[str, bytes]]) -> None:
    """Write a byte-for-byte reproducible .tar.gz (fixed mtimes and owners, gzip mtime 0)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs_added: set[str] = set()
        for name, data in members:
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs_added:
                    dirs_added.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    with atomic.atomic_open(archive, "wb") as fh, gzip.GzipFile(
        fileobj=fh, mode="wb", mtime=0, filename=""
    ) as gz:
        gz.write(raw.getvalue())


def write_ground_truth(ground_truth_dir: Path, name: str, frame: pd.DataFrame) -> Path:
    """Ground truth travels beside the data as CSV, as a labelled dataset would carry it."""
    path = ground_truth_dir / f"{name}.csv"
    atomic.write_text(path, frame.to_csv(index=False))
    return path
