"""Photo-preference data in the photobook rater's layout: tier folders plus optional pairs.

Extracted tree::

    photos/<tier>/<name>.jpg   tier folders named by number, ``00`` best (the seed has 00..14)
    pairs.csv                  optional; ``left,right,winner``: photo paths relative to
                               ``photos/`` and the winner, ``left`` or ``right``
    scenes.csv                 optional; ``file,scene``: which photos show one scene (crops,
                               edits, a burst), paths relative to ``photos/`` or glob patterns
                               (lenslab.formats.scenes); the photobook keeps a scene in one split

Records: one per photo in a tier folder, labels ``tier`` (int) and ``scene`` (null when
scenes.csv does not name it). Photos outside a numbered tier
folder are rejected. Table ``pairs``: left, right (image ids), winner; a pair naming an unknown
photo or an unknown winner is rejected with its line number.
"""

from __future__ import annotations

from pathlib import Path

from lenslab.errors import DataError
from lenslab.formats import reading
from lenslab.formats.scenes import SCENES_FILE, read_scenes
from lenslab.records import ParseResult

SOURCE = "photo_preferences"
PHOTOS_DIR = "photos"
PAIRS_FILE = "pairs.csv"
PAIR_COLUMNS = ("left", "right", "winner")
DISTRIBUTION = reading.Distribution(files=(PAIRS_FILE, SCENES_FILE), folders=(PHOTOS_DIR,))
WINNERS = ("left", "right")
RECORD_DTYPES = {"image_id": "str", "source": "str", "path": "str", "split": "str",
                 "tier": "Int64", "scene": "str"}
PAIR_DTYPES = {"left": "str", "right": "str", "winner": "str"}


def parse(extracted: Path, data_root: Path) -> ParseResult:
    """Read photos/<tier>/ and pairs.csv into records (+ the pairs table)."""
    photos = extracted / PHOTOS_DIR
    if not photos.is_dir():
        raise DataError(photos, "missing photos folder (photos/<tier>/<name>.jpg)")
    files, rejected = reading.image_files(photos, data_root, recursive=True)
    scenes, scene_rejected = read_scenes(extracted, data_root)
    rejected += scene_rejected
    rows = []
    known: dict[str, str] = {}  # path relative to photos/ -> image id
    for path in files:
        inner = path.relative_to(photos)
        if len(inner.parts) != 2 or not inner.parts[0].isdigit():
            rejected.append((reading.relative_posix(path, data_root), None,
                             "not in a numbered tier folder photos/<tier>/"))
            continue
        known[inner.as_posix()] = reading.image_id(SOURCE, f"{PHOTOS_DIR}/{inner.as_posix()}")
        rows.append({"image_id": known[inner.as_posix()], "source": SOURCE,
                     "path": reading.relative_posix(path, data_root), "split": None,
                     "tier": int(inner.parts[0]), "scene": scenes.scene_of(inner.as_posix())})
    rejected += scenes.unused()

    pairs = []
    pairs_path = extracted / PAIRS_FILE
    if pairs_path.exists():
        label = reading.relative_posix(pairs_path, data_root)
        pair_rows, bad = reading.csv_rows(pairs_path, PAIR_COLUMNS, data_root)
        rejected += bad
        for line, row in pair_rows:
            unknown = [row[side] for side in ("left", "right") if row[side] not in known]
            if unknown:
                rejected.append((label, line, f"unknown photo(s) {unknown}"))
            elif row["winner"] not in WINNERS:
                rejected.append((label, line, f"winner {row['winner']!r} is not left or right"))
            elif row["left"] == row["right"]:
                rejected.append((label, line, "a photo paired with itself"))
            else:
                pairs.append({"left": known[row["left"]], "right": known[row["right"]],
                              "winner": row["winner"]})
    return ParseResult(records=reading.frame(rows, RECORD_DTYPES),
                       rejected=ParseResult.reject(rejected),
                       tables={"pairs": reading.frame(pairs, PAIR_DTYPES)})
