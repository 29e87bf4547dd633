"""The UCF Selfie Data Set (Kalayeh et al., ACM MM 2015) as distributed.

``Selfie-dataset.tar.gz`` unpacks to ``Selfie-dataset/`` with ``images/<name>.jpg``,
``README.txt`` and ``selfie_dataset.txt``: one line per image, whitespace-separated,
``<name without .jpg> <popularity score> <36 attributes>``, each attribute 1 (present),
-1 (absent) or 0 (not labelled), in the order of :data:`ATTRIBUTES`. Fields are split on any run
of whitespace, as the spacing of the real file is reported to be irregular.

Records carry ``popularity`` (float) and the 36 attributes (int) as label columns; image ids are
``selfies:images/<name>.jpg`` with or without the wrapping ``Selfie-dataset/`` folder. A line
that is not 38 fields, a score that is not a number, a value outside {-1, 0, 1}, a duplicate or
a missing image is rejected with its line of selfie_dataset.txt (named relative to the data
root); images the list does not name are reported too.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from lenslab.errors import DataError
from lenslab.formats import reading
from lenslab.records import ParseResult

SOURCE = "selfies"
WRAPPER = "Selfie-dataset"
LIST_FILE = "selfie_dataset.txt"
IMAGES_DIR = "images"
DISTRIBUTION = reading.Distribution(files=("Selfie-dataset.tar.gz", LIST_FILE, "README.txt"),
                                    folders=(IMAGES_DIR,), wrappers=(WRAPPER,))
ATTRIBUTES = (
    "partial_faces", "is_female", "baby", "child", "teenager", "youth", "middle_age", "senior",
    "white", "black", "asian", "oval_face", "round_face", "heart_face", "smiling", "mouth_open",
    "frowning", "wearing_glasses", "wearing_sunglasses", "wearing_lipstick", "tongue_out",
    "duck_face", "black_hair", "blond_hair", "brown_hair", "red_hair", "curly_hair",
    "straight_hair", "braid_hair", "showing_cellphone", "using_earphone", "using_mirror",
    "braces", "wearing_hat", "harsh_lighting", "dim_lighting",
)
FIELDS = 2 + len(ATTRIBUTES)
ATTRIBUTE_VALUES = {"1": 1, "-1": -1, "0": 0}


def _parse_line(fields: list[str]) -> tuple[float, list[int]] | str:
    """(popularity, attributes) or the reason the line is unusable."""
    if len(fields) != FIELDS:
        return f"{len(fields)} fields, expected {FIELDS} (name, popularity, 36 attributes)"
    name = fields[0]
    if "/" in name or "\\" in name or name in (".", ".."):
        return f"image name {name!r} is not a file name"
    try:
        popularity = float(fields[1])
    except ValueError:
        return f"popularity {fields[1]!r} is not a number"
    if not math.isfinite(popularity):
        return f"popularity {fields[1]!r} is not finite"
    bad = [f"{a}={v!r}" for a, v in zip(ATTRIBUTES, fields[2:], strict=True)
           if v not in ATTRIBUTE_VALUES]
    if bad:
        return f"attribute values not in {{-1, 0, 1}}: {', '.join(bad[:3])}"
    return popularity, [ATTRIBUTE_VALUES[v] for v in fields[2:]]


def parse(extracted: Path, data_root: Path) -> ParseResult:
    """Read the Selfie data set under ``extracted``; image paths relative to ``data_root``."""
    extracted, data_root = Path(extracted), Path(data_root)
    root = reading.find_root(extracted, LIST_FILE, (WRAPPER,))
    if root is None:
        raise DataError(extracted / WRAPPER / LIST_FILE, "missing: the list of images and labels")
    images = root / IMAGES_DIR
    if not images.is_dir():
        raise DataError(images, "missing: the folder of selfie images")
    list_file = root / LIST_FILE
    where = reading.relative_posix(list_file, data_root)
    rows, rejected, seen, mentioned = [], [], set(), set()
    for line_no, fields in reading.whitespace_rows(list_file):
        name = fields[0].removesuffix(".jpg")  # the real list names images without .jpg
        mentioned.add(name)
        parsed = _parse_line(fields)
        if isinstance(parsed, str):
            rejected.append((where, line_no, parsed))
        elif name in seen:
            rejected.append((where, line_no, f"image {name} listed twice"))
        elif not (images / f"{name}.jpg").is_file():
            rejected.append((where, line_no, f"listed image missing: {IMAGES_DIR}/{name}.jpg"))
        else:
            seen.add(name)
            popularity, attributes = parsed
            rows.append([reading.image_id(SOURCE, f"{IMAGES_DIR}/{name}.jpg"), SOURCE,
                         reading.relative_posix(images / f"{name}.jpg", data_root), None,
                         popularity, *attributes])
    found, junk = reading.image_files(images, data_root)
    rejected += junk
    rejected += [(reading.relative_posix(path, data_root), None, f"image not listed in {LIST_FILE}")
                 for path in found if path.stem not in mentioned]
    records = pd.DataFrame(rows, columns=["image_id", "source", "path", "split", "popularity",
                                          *ATTRIBUTES])
    records[list(ATTRIBUTES)] = records[list(ATTRIBUTES)].astype("int64")
    records["popularity"] = records["popularity"].astype(float)
    return ParseResult(records=records, rejected=ParseResult.reject(rejected))
