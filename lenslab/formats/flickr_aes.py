"""FLICKR-AES (Ren et al., ICCV 2017), as distributed: FLICKR-AES-001.zip + two label files.

Extracted tree (the zip's folder bare or wrapped in ``FLICKR-AES-001/``; the label files copied
beside it or inside the wrapper)::

    40K/<image file>                                   the images
    FLICKR-AES_image_labeled_by_each_worker.csv        ``worker, imagePair, score``: one rating
                                                       per row; imagePair is the image file name;
                                                       the real file has a space after each comma
    FLICKR-AES_image_score.txt                         `` <image file> <score>`` (optional)

Records: one per image named in the ratings whose file exists, with ``mean_score`` as the score
file writes it (null when absent) and ``n_ratings``. Table ``ratings``: worker, image_id, score.

Split: the dataset ships no split file. Ren et al. hold out the test workers, whom
reimplementations recover by their rating count (105..171 ratings); ``worker_split`` applies that
rule, and an image is ``test`` when a test worker rated it (those images are kept out of
training), else ``train``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lenslab.errors import DataError
from lenslab.formats import reading
from lenslab.records import ParseResult

SOURCE = "flickr_aes"
RATINGS_FILE = "FLICKR-AES_image_labeled_by_each_worker.csv"
SCORES_FILE = "FLICKR-AES_image_score.txt"
IMAGES_DIR = "40K"
WRAPPERS = ("FLICKR-AES-001",)
COLUMNS = ("worker", "imagePair", "score")
DISTRIBUTION = reading.Distribution(files=("FLICKR-AES-001.zip", RATINGS_FILE, SCORES_FILE),
                                    folders=(IMAGES_DIR,), wrappers=WRAPPERS)
TEST_WORKER_RATINGS = (105, 171)  # inclusive; one published reconstruction of the split
RECORD_DTYPES = {"image_id": "str", "source": "str", "path": "str", "split": "str",
                 "mean_score": "float64", "n_ratings": "int64"}


def worker_split(ratings: pd.DataFrame, low: int = TEST_WORKER_RATINGS[0],
                 high: int = TEST_WORKER_RATINGS[1]) -> pd.Series:
    """worker -> "test" when the worker has between ``low`` and ``high`` ratings, else "train"."""
    counts = ratings.groupby("worker").size()
    return counts.between(low, high).map({True: "test", False: "train"}).rename("split")


def _score(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() and 1 <= value <= 5 else None


def _mean_scores(path: Path, data_root: Path) -> tuple[dict[str, float], list]:
    scores: dict[str, float] = {}
    rejected: list[reading.Rejected] = []
    if not path.is_file():
        return scores, rejected
    label = reading.relative_posix(path, data_root)
    for line, fields in reading.whitespace_rows(path):
        try:
            if len(fields) != 2:
                raise ValueError
            scores[fields[0]] = float(fields[1])
        except ValueError:
            rejected.append((label, line, f"expected '<image> <score>', got {' '.join(fields)!r}"))
    return scores, rejected


def parse(extracted: Path, data_root: Path) -> ParseResult:
    """Read the extracted FLICKR-AES files into records (+ the ratings table)."""
    root = reading.find_root(extracted, RATINGS_FILE, WRAPPERS)
    if root is None:
        raise DataError(extracted / RATINGS_FILE, "missing FLICKR-AES ratings file")
    image_root = reading.find_root(extracted, IMAGES_DIR, WRAPPERS)
    if image_root is None:
        raise DataError(extracted / IMAGES_DIR, "missing FLICKR-AES image folder")
    images_dir = image_root / IMAGES_DIR
    ratings_path = root / RATINGS_FILE
    rows, rejected = reading.csv_rows(ratings_path, COLUMNS, data_root, skipinitialspace=True)
    present = {p.name for p in images_dir.iterdir() if p.is_file()}
    label = reading.relative_posix(ratings_path, data_root)

    kept = []
    for line, row in rows:
        score = _score(row["score"])
        name = row["imagePair"]
        if score is None:
            rejected.append((label, line, f"score {row['score']!r} is not an integer 1-5"))
        elif not row["worker"]:
            rejected.append((label, line, "empty worker id"))
        elif name not in present:
            rejected.append((label, line, f"image file missing: {IMAGES_DIR}/{name}"))
        else:
            kept.append((row["worker"], name, score))
    ratings = pd.DataFrame(kept, columns=["worker", "name", "score"]).astype(
        {"worker": "str", "name": "str", "score": "int64"})
    scores, score_rejected = _mean_scores(root / SCORES_FILE, data_root)
    rejected += score_rejected

    split_of_worker = worker_split(ratings)
    test_images = set(ratings.loc[ratings["worker"].map(split_of_worker) == "test", "name"])
    counts = ratings.groupby("name").size()
    records = reading.frame([
        {"image_id": reading.image_id(SOURCE, f"{IMAGES_DIR}/{name}"), "source": SOURCE,
         "path": reading.relative_posix(images_dir / name, data_root),
         "split": "test" if name in test_images else "train",
         "mean_score": scores.get(name), "n_ratings": int(n)}
        for name, n in counts.items()
    ], RECORD_DTYPES)
    table = pd.DataFrame({
        "worker": ratings["worker"],
        "image_id": [reading.image_id(SOURCE, f"{IMAGES_DIR}/{n}") for n in ratings["name"]],
        "score": ratings["score"],
    })
    return ParseResult(records=records, rejected=ParseResult.reject(rejected),
                       tables={"ratings": table})
