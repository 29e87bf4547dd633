"""Real photos shipped by installed packages, and the bad inputs the CLI tests give beside them."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


def _grace_hopper() -> Path:
    from matplotlib import cbook

    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def _loaders() -> dict[str, Callable[[], np.ndarray]]:
    from skimage import data
    from sklearn.datasets import load_sample_image

    return {"astronaut": data.astronaut, "chelsea": data.chelsea, "coffee": data.coffee,
            "china": lambda: load_sample_image("china.jpg"),
            "grace_hopper": lambda: np.asarray(Image.open(_grace_hopper()).convert("RGB"))}


def write_photos(folder: Path, *names: str) -> Path:
    """Write packaged photos into ``folder`` as ``names`` ("astronaut.jpg", "chelsea.png", ...):
    the stem picks the photo, the suffix the format; grace_hopper.jpg is matplotlib's file as
    shipped. Returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    loaders = _loaders()
    for name in names:
        stem, suffix = name.rsplit(".", 1)
        if stem == "grace_hopper" and suffix == "jpg":
            shutil.copyfile(_grace_hopper(), folder / name)
        else:
            Image.fromarray(loaders[stem]()).save(folder / name)
    return folder


@dataclass(frozen=True)
class BadInputs:
    """A truncated JPEG, a text file named like an image, and a path that does not exist."""

    corrupt: Path
    not_image: Path
    missing: Path

    @property
    def paths(self) -> list[str]:
        return [str(self.corrupt), str(self.not_image), str(self.missing)]

    def assert_reported(self, run) -> None:
        """A Click run named each bad input with its reason, exited 1, and printed no traceback."""
        assert run.exit_code == 1, run.output
        assert f"{self.corrupt}: unreadable image" in run.stderr
        assert f"{self.not_image}: not an image" in run.stderr
        assert f"{self.missing}: no such file or folder" in run.stderr
        assert "Traceback" not in run.output


def bad_inputs(folder: Path, good_jpeg: Path, not_image: str = "notes.png") -> BadInputs:
    """Write the bad inputs into ``folder``; the corrupt one is ``good_jpeg`` cut short."""
    folder.mkdir(parents=True, exist_ok=True)
    corrupt = folder / "corrupt.jpg"
    corrupt.write_bytes(good_jpeg.read_bytes()[:3000])
    text = folder / not_image
    text.write_text("not a photo")
    return BadInputs(corrupt, text, folder / "missing.jpg")
