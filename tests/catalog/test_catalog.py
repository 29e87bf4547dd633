"""The image catalog over a mixed batch of real photos and bad files built here."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data as skdata

from lenslab.catalog import (
    CATALOG_COLUMNS,
    QUARANTINE_COLUMNS,
    _cumulative_fractions,
    assigned_split,
    build_catalog,
    catalog_contract_problems,
    catalog_summary,
    write_catalog,
)
from lenslab.paths import DataLayout

FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
SETTINGS = {"max_side": 48, "max_pixels": 1_000_000, "split_fractions": FRACTIONS}


def jpeg(pixels: np.ndarray, size: tuple[int, int], quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize(size).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def photos() -> dict[str, bytes]:
    """Small real photos: three scenes, several crops/sizes each, all distinct bytes."""
    out = {}
    for name, pixels in {"astronaut": skdata.astronaut(), "chelsea": skdata.chelsea(),
                         "coffee": skdata.coffee()}.items():
        for i, size in enumerate([(96, 64), (80, 80), (64, 96), (120, 90)]):
            out[f"{name}_{i}"] = jpeg(pixels, size)
    return out


class Batch:
    """A data root with two sources, duplicates, and every kind of bad file."""

    def __init__(self, root: Path):
        self.layout = DataLayout(root)
        self.rows: list[dict] = []
        self.good: set[str] = set()
        self.bad: dict[str, str] = {}  # image_id -> expected reason prefix
        pics = photos()
        for i, (name, payload) in enumerate(sorted(pics.items())):
            self.add("oxford_pets", f"images/{name}.jpg", payload,
                     split="train" if i % 3 else "test", breed=name.split("_")[0], species=1)
        for i, name in enumerate(["astronaut_0", "coffee_1", "chelsea_2", "chelsea_3"]):
            self.add("selfies", f"Selfie-dataset/images/s{i}.jpg", pics[name], split=None,
                     score=[0.5, np.nan, 1.5, 2.0][i])
        png = io.BytesIO()
        Image.fromarray(skdata.chelsea()).resize((60, 40)).save(png, "PNG")
        self.add("selfies", "Selfie-dataset/images/really_png.jpg", png.getvalue(), split=None,
                 score=3.0)
        whole = pics["coffee_3"]
        self.add("selfies", "Selfie-dataset/images/truncated.jpg", whole[: len(whole) // 2],
                 split=None, score=1.0, reason="truncated image")
        self.add("selfies", "Selfie-dataset/images/empty.jpg", b"", split=None, score=1.0,
                 reason="empty file")
        self.add("oxford_pets", "images/error_page.jpg", b"<html><body>503</body></html>",
                 split="train", breed="beagle", species=2, reason="HTML page, not an image")
        self.add("oxford_pets", "images/notes.jpg", b"just some text\n", split="test",
                 breed="pug", species=2, reason="not an image: text file")
        self.add("oxford_pets", "images/Abyssinian_100.mat", None, split="train",
                 breed="Abyssinian", species=1, reason="missing file")
        bomb = jpeg(skdata.astronaut(), (1200, 1000))
        self.add("oxford_pets", "images/huge.jpg", bomb, split="train", breed="x", species=1,
                 reason="decompression bomb")

    def add(self, source: str, inner: str, payload: bytes | None, split: str | None,
            reason: str | None = None, **labels) -> None:
        path = f"raw/{source}/extracted/{inner}"
        if payload is not None:
            file = self.layout.root / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(payload)
        image_id = f"{source}:{inner}"
        self.rows.append({"image_id": image_id, "source": source, "path": path,
                          "split": split, **labels})
        if reason:
            self.bad[image_id] = reason
        else:
            self.good.add(image_id)

    @property
    def records(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows).sample(frac=1.0, random_state=3)  # order must not matter


@pytest.fixture
def batch(tmp_path: Path) -> Batch:
    return Batch(tmp_path / "data")


def test_mixed_batch_catalogues_the_good_and_quarantines_the_bad(batch: Batch) -> None:
    result = build_catalog(batch.records, batch.layout, seed=7, workers=2, progress=False,
                           **SETTINGS)
    catalog, quarantine = result.catalog, result.quarantine
    assert tuple(catalog.columns) == CATALOG_COLUMNS
    assert tuple(quarantine.columns) == QUARANTINE_COLUMNS
    assert catalog["image_id"].tolist() == sorted(batch.good)
    assert quarantine["image_id"].tolist() == sorted(batch.bad)

    for row in catalog.itertuples():
        original = (batch.layout.root / row.original_path).read_bytes()
        assert row.sha256 == hashlib.sha256(original).hexdigest()
        assert row.bytes == len(original)
        with Image.open(batch.layout.root / row.normalised_path) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and max(im.size) <= 48
    png = catalog.set_index("image_id").loc["selfies:Selfie-dataset/images/really_png.jpg"]
    assert (png["format"], png["width"], png["height"]) == ("PNG", 60, 40)

    for row in quarantine.itertuples():
        assert row.reason.startswith(batch.bad[row.image_id]), row
        if row.image_id.endswith(".mat"):  # nothing to keep
            assert pd.isna(row.quarantined_path) and pd.isna(row.sha256)
            continue
        kept = batch.layout.root / row.quarantined_path
        assert kept.read_bytes() == (batch.layout.root / row.original_path).read_bytes()
        source, inner = row.image_id.split(":", 1)  # kept as <source>/<path in the dataset>
        assert kept == batch.layout.quarantine_dir / source / inner
        assert kept.with_name(kept.name + ".reason.txt").read_text().startswith(row.reason)
    assert result.normalised_written == catalog["sha256"].nunique()


def test_duplicates_labels_and_splits(batch: Batch) -> None:
    catalog = build_catalog(batch.records, batch.layout, seed=7, workers=1, progress=False,
                            **SETTINGS).catalog.set_index("image_id")
    # selfies s0/s1/s2/s3 are byte-identical to Oxford photos: the first id is the original
    assert catalog.loc["selfies:Selfie-dataset/images/s1.jpg", "duplicate_of"] == \
        "oxford_pets:images/coffee_1.jpg"
    assert catalog["duplicate_of"].notna().sum() == 4
    assert pd.isna(catalog.loc["oxford_pets:images/coffee_1.jpg", "duplicate_of"])
    # an unsplit duplicate takes its twin's dataset split: no leak across splits
    for selfie, original in catalog["duplicate_of"].dropna().items():
        assert catalog.loc[selfie, "split"] == catalog.loc[original, "split"]
    assert catalog_contract_problems(catalog.reset_index(), batch.layout) == {
        "missing_normalised": [], "cross_split_duplicates": [], "unknown_splits": []}
    # the dataset's own split is kept
    for row in batch.rows:
        if row["image_id"] in catalog.index and row["split"]:
            assert catalog.loc[row["image_id"], "split"] == row["split"]
    # labels: only the source's own columns, NaN -> null
    assert json.loads(catalog.loc["oxford_pets:images/chelsea_0.jpg", "labels"]) == {
        "breed": "chelsea", "species": 1}
    assert json.loads(catalog.loc["selfies:Selfie-dataset/images/s1.jpg", "labels"]) == {
        "score": None}


def test_assigned_splits_are_deterministic_and_follow_the_fractions() -> None:
    cumulative = _cumulative_fractions(FRACTIONS)
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(4000)]
    first = [assigned_split(s, 11, cumulative) for s in shas]
    assert first == [assigned_split(s, 11, cumulative) for s in shas]
    assert first != [assigned_split(s, 12, cumulative) for s in shas]  # the seed matters
    counts = Counter(first)
    assert abs(counts["train"] / 4000 - 0.8) < 0.03 and abs(counts["test"] / 4000 - 0.1) < 0.02
    reordered = _cumulative_fractions({"test": 0.1, "val": 0.1, "train": 0.8})
    assert [assigned_split(s, 11, reordered) for s in shas] == first  # dict order is irrelevant
    with pytest.raises(ValueError, match="sum to 1"):
        _cumulative_fractions({"train": 0.5, "test": 0.1})
    with pytest.raises(ValueError, match="unknown splits"):
        _cumulative_fractions({"train": 0.9, "holdout": 0.1})


def test_identical_unsplit_images_share_an_assigned_split_and_one_copy(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path)
    payload = jpeg(skdata.coffee(), (64, 48))
    rows = []
    for i in range(40):  # enough that both workers meet the same bytes at once
        path = f"raw/landmark_photos/extracted/site/{i}.jpg"
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(payload)
        rows.append({"image_id": f"landmark_photos:site/{i}.jpg", "source": "landmark_photos",
                     "path": path, "split": None})
    result = build_catalog(pd.DataFrame(rows), layout, seed=1, workers=2, progress=False,
                           **SETTINGS)
    catalog = result.catalog
    assert result.normalised_written == 1
    assert catalog["split"].nunique() == 1
    assert catalog["duplicate_of"].dropna().unique().tolist() == ["landmark_photos:site/0.jpg"]


def test_rerun_is_idempotent_and_does_not_renormalise(batch: Batch) -> None:
    first = build_catalog(batch.records, batch.layout, seed=7, workers=2, progress=False,
                          **SETTINGS)
    write_catalog(first, batch.layout)
    stamps = {p: p.stat().st_mtime_ns for p in batch.layout.normalised_dir.rglob("*.jpg")}
    again = build_catalog(batch.records, batch.layout, seed=7, workers=2, progress=False,
                          **SETTINGS)
    assert again.normalised_written == 0
    pd.testing.assert_frame_equal(again.catalog, first.catalog)
    pd.testing.assert_frame_equal(again.quarantine, first.quarantine)
    assert {p: p.stat().st_mtime_ns for p in batch.layout.normalised_dir.rglob("*.jpg")} == stamps
    pd.testing.assert_frame_equal(pd.read_parquet(batch.layout.catalog), first.catalog,
                                  check_dtype=False)
    assert len(pd.read_parquet(batch.layout.quarantine)) == len(batch.bad)


def test_summary_counts(batch: Batch) -> None:
    result = build_catalog(batch.records, batch.layout, seed=7, workers=1, progress=False,
                           **SETTINGS)
    summary = catalog_summary(result.catalog, result.quarantine)
    assert summary["images"] == len(batch.good)
    assert summary["duplicates"] == 4 and summary["unique_images"] == len(batch.good) - 4
    assert summary["by_source"] == {"oxford_pets": 12, "selfies": 5}
    assert summary["by_format"] == {"JPEG": 16, "PNG": 1}
    assert sum(summary["by_split"].values()) == len(batch.good)
    assert summary["quarantine_by_reason"] == {
        "HTML page, not an image": 1, "decompression bomb": 1, "empty file": 1,
        "missing file": 1, "not an image": 1, "truncated image": 1}
    json.dumps(summary)  # plain types only: it goes into asset metadata


def test_contract_helpers_find_missing_files_leaks_and_bad_splits(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path)
    payload = jpeg(skdata.astronaut(), (64, 64))
    other = jpeg(skdata.chelsea(), (64, 48))
    rows = []
    for name, blob, split in [("a", payload, "train"), ("b", payload, "test"),
                              ("c", other, "val")]:
        path = f"raw/oxford_pets/extracted/images/{name}.jpg"
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(blob)
        rows.append({"image_id": f"oxford_pets:images/{name}.jpg", "source": "oxford_pets",
                     "path": path, "split": split})
    catalog = build_catalog(pd.DataFrame(rows), layout, seed=1, workers=1, progress=False,
                            **SETTINGS).catalog
    (tmp_path / catalog.loc[2, "normalised_path"]).unlink()
    catalog.loc[2, "split"] = "holdout"
    assert catalog_contract_problems(catalog, layout) == {
        "missing_normalised": ["oxford_pets:images/c.jpg"],
        "cross_split_duplicates": ["oxford_pets:images/a.jpg", "oxford_pets:images/b.jpg"],
        "unknown_splits": ["oxford_pets:images/c.jpg"],
    }


def test_records_must_follow_the_contract(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path)
    with pytest.raises(ValueError, match="lack columns"):
        build_catalog(pd.DataFrame({"image_id": ["x"]}), layout, seed=1, progress=False,
                      **SETTINGS)
    escape = pd.DataFrame([{"image_id": "selfies:x", "source": "selfies",
                            "path": "../../etc/passwd", "split": None}])
    result = build_catalog(escape, layout, seed=1, workers=1, progress=False, **SETTINGS)
    assert result.catalog.empty
    assert result.quarantine["reason"].tolist() == ["bad path: not inside the data root"]


def test_catalog_runs_inside_a_threaded_process(batch: Batch) -> None:
    # Dagster runs assets in processes with other threads alive; the pool must not care.
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        result = build_catalog(batch.records, batch.layout, seed=7, workers=2, progress=False,
                               **SETTINGS)
    finally:
        stop.set()
        other.join()
    assert result.catalog["image_id"].tolist() == sorted(batch.good)


def test_catalog_on_a_fresh_data_root_names_the_missing_source_and_the_command(
        tmp_path: Path) -> None:
    import dagster as dg

    from assets.catalog import image_catalog
    from lenslab.paths import SOURCES
    from lenslab.records import RECORD_COLUMNS
    from orchestration.kit.resources import DataRoot

    layout = DataLayout(tmp_path)
    empty = pd.DataFrame({c: pd.Series(dtype="str") for c in RECORD_COLUMNS})
    for source in SOURCES[1:]:
        layout.records(source).parent.mkdir(parents=True)
        empty.to_parquet(layout.records(source))
    result = dg.materialize([image_catalog], raise_on_error=False,
                            resources={"data_root": DataRoot(path=str(tmp_path))})
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    cause = error.cause or error
    assert cause.cls_name == "DataError", cause.message
    assert f"{SOURCES[0]} has not been ingested" in cause.message
    assert f"python -m orchestration.launch --assets {SOURCES[0]}" in cause.message
