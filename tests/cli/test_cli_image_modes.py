"""`lenslab` reads a photo the way the catalog does: a 16-bit greyscale PNG (scientific and
raw-developer exports) is the same picture as its 8-bit copy, not white (Pillow's own conversion
to RGB clips 16-bit values at 255), and a phone photo stored sideways with an EXIF orientation
is seen upright, as it is displayed and as the models were trained on it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lenslab.cli.common import Inputs

REPO = Path(__file__).resolve().parents[2]


def _camera(folder: Path) -> tuple[Path, Path]:
    """scikit-image's cameraman as an 8-bit and as a 16-bit greyscale PNG."""
    from skimage import data

    grey = data.camera()
    eight, sixteen = folder / "camera8.png", folder / "camera16.png"
    Image.fromarray(grey).save(eight)
    Image.fromarray(grey.astype(np.uint16) * 257).save(sixteen)
    assert Image.open(sixteen).mode.startswith("I")
    return eight, sixteen


def test_the_cli_decodes_a_16_bit_photo_as_its_8_bit_self(tmp_path):
    eight, sixteen = _camera(tmp_path)
    (_, a), (_, b) = Inputs([eight, sixteen], []).decode([eight, sixteen])
    assert b.mode == "RGB"
    assert np.abs(np.asarray(a, int) - np.asarray(b, int)).max() <= 1


def test_the_mediapipe_worker_reads_a_16_bit_photo_as_its_8_bit_self(tmp_path):
    python = REPO / ".venv-mediapipe" / "bin" / "python"
    if not python.exists():
        pytest.skip(".venv-mediapipe missing (scripts/install_mediapipe.sh)")
    paths = _camera(tmp_path)
    done = subprocess.run([str(python), str(REPO / "scripts" / "mediapipe_worker.py")],
                          input="".join(json.dumps(str(p)) + "\n" for p in paths),
                          capture_output=True, text=True, timeout=120, check=True)
    eight, sixteen = (json.loads(line)["persons"] for line in done.stdout.splitlines())
    assert eight, "BlazePose finds the cameraman"
    assert len(sixteen) == 1
    assert np.allclose(np.asarray(eight[0]["keypoints"])[:, :2],
                       np.asarray(sixteen[0]["keypoints"])[:, :2], atol=2.0)


def _phone(folder: Path) -> tuple[Path, Path]:
    """The astronaut upright, and as a phone stores her: pixels sideways, EXIF Orientation 6
    (rotate 90 degrees clockwise to display)."""
    from skimage import data

    upright = Image.fromarray(data.astronaut()[:, :400])
    exif = Image.Exif()
    exif[0x0112] = 6
    paths = folder / "upright.jpg", folder / "phone.jpg"
    upright.save(paths[0], quality=95)
    upright.transpose(Image.Transpose.ROTATE_90).save(paths[1], quality=95, exif=exif)
    return paths


def test_the_cli_decodes_a_phone_photo_upright(tmp_path):
    paths = _phone(tmp_path)
    (_, a), (_, b) = Inputs(list(paths), []).decode(list(paths))
    assert b.size == a.size == (400, 512)
    assert np.abs(np.asarray(a, int) - np.asarray(b, int)).mean() < 3


def test_the_mediapipe_worker_reads_a_phone_photo_upright(tmp_path):
    python = REPO / ".venv-mediapipe" / "bin" / "python"
    if not python.exists():
        pytest.skip(".venv-mediapipe missing (scripts/install_mediapipe.sh)")
    paths = _phone(tmp_path)
    done = subprocess.run([str(python), str(REPO / "scripts" / "mediapipe_worker.py")],
                          input="".join(json.dumps(str(p)) + "\n" for p in paths),
                          capture_output=True, text=True, timeout=120, check=True)
    upright, phone = (json.loads(line)["persons"] for line in done.stdout.splitlines())
    assert upright and phone
    assert np.allclose(upright[0]["bbox"], phone[0]["bbox"], atol=8), (upright[0]["bbox"],
                                                                       phone[0]["bbox"])
