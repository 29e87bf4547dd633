"""The contract between dataset parsers and the image catalog.

A parser reads one dataset in its distributed format and returns a :class:`ParseResult`:

``records`` — one row per image the dataset lists, with at least
    image_id  str   unique across all sources: ``"<source>:<path inside the dataset>"``
    source    str   one of lenslab.paths.SOURCES
    path      str   the image file, relative to the data root, POSIX separators
    split     str | None   "train", "val" or "test" where the dataset defines a split, else None
and any number of label columns of the source's own (breed, popularity, worker ratings, ...).

``tables`` — further tables the dataset carries, by name (FLICKR-AES "ratings", landmark
"keypoints", preference "pairs", ...); the ingestion asset writes each as
raw/<source>/<name>.parquet.

``rejected`` — rows the parser could not use, each with the file, the line and the reason, so a
malformed row is reported and skipped while the rest of the dataset is kept.

A missing file or a missing column makes the whole dataset unusable: parsers raise
lenslab.errors.DataError naming the file instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

RECORD_COLUMNS = ("image_id", "source", "path", "split")
REJECTED_COLUMNS = ("file", "line", "reason")
SPLITS = ("train", "val", "test")


def empty_rejected() -> pd.DataFrame:
    return pd.DataFrame({"file": pd.Series(dtype=str), "line": pd.Series(dtype="Int64"),
                         "reason": pd.Series(dtype=str)})


@dataclass
class ParseResult:
    records: pd.DataFrame
    rejected: pd.DataFrame = field(default_factory=empty_rejected)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [c for c in RECORD_COLUMNS if c not in self.records.columns]
        if missing:
            raise ValueError(f"parser returned records without columns {missing}")
        bad_split = set(self.records["split"].dropna()) - set(SPLITS)
        if bad_split:
            raise ValueError(f"parser returned unknown splits {sorted(bad_split)}")
        if self.records["image_id"].duplicated().any():
            dup = self.records.loc[self.records["image_id"].duplicated(), "image_id"].iloc[0]
            raise ValueError(f"parser returned duplicate image_id {dup!r}")

    @staticmethod
    def reject(rows: list[tuple[str, int | None, str]]) -> pd.DataFrame:
        if not rows:
            return empty_rejected()
        frame = pd.DataFrame(rows, columns=list(REJECTED_COLUMNS))
        frame["line"] = frame["line"].astype("Int64")
        return frame
