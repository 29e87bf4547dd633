"""Scenes as groups: a user's scenes.csv says which photos show one scene, in the photographer
folders and the photo preferences, and the style and photobook splits hold whole scenes out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from lenslab.formats import photo_preferences, photographer_folders
from lenslab.formats.registry import distribution


def _photo(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


def _folders(root: Path) -> Path:
    """Two editors who named their exports differently: no stem is shared across folders."""
    for i, name in enumerate(("A_001.jpg", "A_002.jpg", "A_003.jpg")):
        _photo(root / "anna" / name, 10 + i)
    for i, name in enumerate(("beach-edit.jpg", "harbour-edit.jpg", "other.jpg")):
        _photo(root / "ben" / name, 50 + i)
    (root / "scenes.csv").write_text("file,scene\nanna/A_001.jpg,beach\nben/beach-edit.jpg,beach\n"
                                     "*/A_002*,harbour\nben/harbour-*.jpg,harbour\n"
                                     "carl/x.jpg,nowhere\n,empty\n")
    return root


def test_photographer_folders_take_each_scene_from_scenes_csv(tmp_path):
    result = photographer_folders.parse(_folders(tmp_path), tmp_path)
    base = result.records.set_index("image_id")["base"]
    assert base["photographer_folders:anna/A_001.jpg"] == "beach"
    assert base["photographer_folders:ben/beach-edit.jpg"] == "beach"
    assert base["photographer_folders:anna/A_002.jpg"] == "harbour"   # a glob row
    assert base["photographer_folders:ben/harbour-edit.jpg"] == "harbour"
    assert base["photographer_folders:anna/A_003.jpg"] == "A_003"     # not named: its stem
    assert len(result.records) == 6, "scenes.csv is not a photo, nor outside a folder"
    reasons = result.rejected.set_index("line")["reason"]
    assert reasons[6] == "'carl/x.jpg' names no photo" and reasons[7] == "empty file or scene"


def test_a_local_folder_hands_its_scenes_csv_to_the_parser(tmp_path):
    for source in ("photographer_folders", "photo_preferences"):
        taken, _ = distribution(source).select(_folders(tmp_path / source))
        assert "scenes.csv" in taken, source


def test_the_style_split_holds_a_scene_out_whole(tmp_path):
    from lenslab.style.evaluation import split

    records = photographer_folders.parse(_folders(tmp_path), tmp_path).records
    base = records["base"].to_numpy()
    parts = split(len(base), base, seed=3, heldout_base_fraction=1.0)
    for scene in ("beach", "harbour"):  # shared by both editors: held out entirely
        assert set(parts[base == scene]) == {"heldout_base"}


def test_photo_preferences_carry_the_scene_and_the_photobook_keeps_it_in_one_split(tmp_path):
    from lenslab.photobook.rating import scene_groups, split_groups

    for tier in range(4):
        for k in range(5):
            _photo(tmp_path / "photos" / f"0{tier}" / f"IMG_{k}{tier}.jpg", 40 * tier + k)
    (tmp_path / "scenes.csv").write_text("file,scene\n*/IMG_0*.jpg,s0\n*/IMG_1*.jpg,s1\n"
                                         "*/IMG_2*.jpg,s2\n")
    records = photo_preferences.parse(tmp_path, tmp_path).records.sort_values("image_id")
    assert records["scene"].notna().sum() == 12 and records["scene"].isna().sum() == 8
    near_duplicates = np.arange(len(records))  # the embedding found no near-duplicate
    groups = scene_groups(near_duplicates, records["scene"].reset_index(drop=True))
    split = split_groups(groups, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=1)
    by_scene = pd.Series(split).groupby(records["scene"].to_numpy()).nunique()
    assert (by_scene == 1).all(), by_scene
    unnamed = records["scene"].isna().to_numpy()
    assert len(set(groups[unnamed])) == unnamed.sum(), "a photo without a scene is its own group"
