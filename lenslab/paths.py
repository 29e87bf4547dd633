"""Where every stage keeps its files under the data root (one place, so DVC and Dagster agree)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SOURCES = ("oxford_pets", "selfies", "landmark_photos", "flickr_aes", "photo_preferences",
           "photographer_folders")


DATA_ROOT_VARIABLE = "LENSLAB_DATA_ROOT"


def default_data_root() -> Path:
    """$LENSLAB_DATA_ROOT, else the repository's data/: the one default every entry point uses
    (assets, the `lenslab` command, the web page)."""
    from lenslab.params import REPO_ROOT

    return Path(os.environ.get(DATA_ROOT_VARIABLE, REPO_ROOT / "data"))


@dataclass(frozen=True)
class DataLayout:
    """The data tree. ``root`` is ``data/`` in the repository unless a resource says otherwise.

    raw/<source>/distributed/   the files exactly as the dataset distributes them
    raw/<source>/ground_truth/  what a synthetic generator knows (photographers, keypoints, tastes)
    raw/<source>/extracted/     archives unpacked safely
    raw/<source>/records.parquet  one row per image the dataset lists (see lenslab.records)
    catalog/                    image_catalog.parquet, quarantine.parquet, normalised images
    """

    root: Path

    def raw(self, source: str) -> Path:
        return self.root / "raw" / source

    def distributed(self, source: str) -> Path:
        return self.raw(source) / "distributed"

    def ground_truth(self, source: str) -> Path:
        return self.raw(source) / "ground_truth"

    def extracted(self, source: str) -> Path:
        return self.raw(source) / "extracted"

    def records(self, source: str) -> Path:
        return self.raw(source) / "records.parquet"

    def ingest_report(self, source: str) -> Path:
        return self.raw(source) / "ingest_report.json"

    @property
    def catalog_dir(self) -> Path:
        return self.root / "catalog"

    @property
    def catalog(self) -> Path:
        return self.catalog_dir / "image_catalog.parquet"

    @property
    def quarantine(self) -> Path:
        return self.catalog_dir / "quarantine.parquet"

    @property
    def quarantine_dir(self) -> Path:
        return self.catalog_dir / "quarantine"

    @property
    def normalised_dir(self) -> Path:
        return self.catalog_dir / "images"

    def normalised(self, sha256: str) -> Path:
        return self.normalised_dir / sha256[:2] / f"{sha256}.jpg"
