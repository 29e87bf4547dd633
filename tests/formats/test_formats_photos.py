"""Parsers of Oxford-IIIT Pet, FLICKR-AES, the photo-preference layout and photographer folders,
on synthetic data in the real formats and on hand-written bad input."""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lenslab.errors import DataError
from lenslab.formats import flickr_aes, oxford_pets, photo_preferences, photographer_folders
from lenslab.formats.registry import PARSERS, available
from lenslab.synthetic import flickr_aes as synth_aes
from lenslab.synthetic import oxford_pets as synth_pets
from lenslab.synthetic import photo_preferences as synth_prefs
from lenslab.synthetic import photographer_folders as synth_folders


def extract(distributed: Path, extracted: Path) -> Path:
    """What the safe extractor gives: archives unpacked, other files copied as they are."""
    for path in sorted(distributed.rglob("*")):
        if path.name.endswith(".tar.gz"):
            with tarfile.open(path) as tar:
                tar.extractall(extracted, filter="data")
        elif path.suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                zf.extractall(extracted)
        elif path.is_file():
            target = extracted / path.relative_to(distributed)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return extracted


def build(root: Path, module, **kwargs) -> tuple[Path, dict]:
    summary = module.generate(root / "distributed", root / "ground_truth", **kwargs)
    return extract(root / "distributed", root / "extracted"), summary


def rejected_lines(result, file_suffix: str) -> dict[int, str]:
    rows = result.rejected[result.rejected["file"].str.endswith(file_suffix)]
    return {int(r.line): r.reason for r in rows.itertuples() if pd.notna(r.line)}


def test_registry_names_every_source():
    assert set(PARSERS) == {"oxford_pets", "selfies", "landmark_photos", "flickr_aes",
                            "photo_preferences", "photographer_folders"}
    assert {"oxford_pets", "flickr_aes", "photo_preferences"} <= set(available())
    assert PARSERS["oxford_pets"].load() is oxford_pets.parse


# ------------------------------------------------------------------------------ Oxford-IIIT Pet
@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    root = tmp_path_factory.mktemp("pets")
    extracted, summary = build(root, synth_pets, seed=3, photographers=4,
                               images_per_photographer=10)
    return root, extracted, summary


def test_pets_records_labels_and_splits(pets):
    root, extracted, summary = pets
    result = oxford_pets.parse(extracted, root)
    records = result.records
    assert len(records) == summary["images"]
    assert records["split"].value_counts().to_dict() == {"train": summary["trainval"],
                                                         "test": summary["test"]}
    unlisted = records[records["class_id"].isna()]
    assert len(unlisted) == summary["unlisted"] and unlisted["split"].isna().all()
    listed = records.dropna(subset=["class_id"])
    for row in listed.itertuples():
        assert oxford_pets.BREEDS[row.class_id - 1] == row.breed
        assert row.species == ("cat" if row.breed[0].isupper() else "dog")
        assert Path(row.path).stem.rsplit("_", 1)[0] == row.breed
    assert records["image_id"].str.startswith("oxford_pets:images/").all()
    assert all((root / p).is_file() for p in records["path"])
    assert not records["path"].str.contains(str(root)).any()  # relative, POSIX
    mats = result.rejected[result.rejected["file"].str.endswith(".mat")]
    assert len(mats) == 3 and mats["reason"].str.contains("not an image").all()
    assert result.rejected["reason"].str.contains("AppleDouble").any()


def test_pets_tables_trimaps_and_head_boxes(pets):
    root, extracted, summary = pets
    result = oxford_pets.parse(extracted, root)
    trimaps, boxes = result.tables["trimaps"], result.tables["head_boxes"]
    assert len(trimaps) == summary["listed"]
    values = np.unique(np.asarray(Image.open(root / trimaps["trimap"].iloc[0])))
    assert set(values) <= {1, 2, 3} and {1, 2} <= set(values)
    assert len(boxes) == summary["head_boxes"] > 0
    records = result.records.set_index("image_id")
    assert (records.loc[boxes["image_id"], "split"] == "train").all()
    for box in boxes.head(5).itertuples():
        width, height = Image.open(root / records.loc[box.image_id, "path"]).size
        assert 1 <= box.xmin < box.xmax <= width and 1 <= box.ymin < box.ymax <= height


def test_pets_accepts_the_torchvision_wrapper(pets, tmp_path):
    root, extracted, _ = pets
    wrapped = tmp_path / "extracted" / "oxford-iiit-pet"
    shutil.copytree(extracted, wrapped)
    plain = oxford_pets.parse(extracted, root).records
    result = oxford_pets.parse(tmp_path / "extracted", tmp_path).records
    assert list(result["image_id"]) == list(plain["image_id"])
    assert result["path"].str.startswith("extracted/oxford-iiit-pet/images/").all()


def test_pets_real_rows_are_accepted():
    # rows as the real list.txt writes them (cats 1-12, dogs 1-25: the README has it backwards)
    for row, labels in [("Abyssinian_100 1 1 1", ("Abyssinian", 1, "cat", 1)),
                        ("Sphynx_9 34 1 12", ("Sphynx", 34, "cat", 12)),
                        ("american_bulldog_100 2 2 1", ("american_bulldog", 2, "dog", 1)),
                        ("yorkshire_terrier_99 37 2 25", ("yorkshire_terrier", 37, "dog", 25))]:
        parsed = oxford_pets.parse_list_row(row.split())
        assert (parsed["breed"], parsed["class_id"], parsed["species"],
                parsed["breed_id"]) == labels
    assert oxford_pets.parse_list_row(["Sphynx_9", "34", "2", "12"]).startswith("unknown label")


def test_pets_bad_list_rows_are_rejected_with_line_numbers(pets, tmp_path):
    _, extracted, summary = pets
    copy = tmp_path / "extracted"
    shutil.copytree(extracted, copy)
    list_txt = copy / "annotations" / "list.txt"
    lines = list_txt.read_text().splitlines()
    first = lines[6].split()[0]
    bad = ["Abyssinian_900 1 1", "beagle_901 1 1 1", "Abyssinian_902 x 1 1",
           "Abyssinian_903 1 1 1", f"{first} 1 1 1"]
    list_txt.write_text("\n".join([*lines, *bad]) + "\n")
    result = oxford_pets.parse(copy, tmp_path)
    n = len(lines)
    reasons = rejected_lines(result, "annotations/list.txt")
    assert set(reasons) == {n + 1, n + 2, n + 3, n + 4, n + 5}
    assert "expected 4 fields" in reasons[n + 1]
    assert reasons[n + 2].startswith("unknown label")
    assert "non-integer" in reasons[n + 3]
    assert "image file missing" in reasons[n + 4]
    assert "duplicate" in reasons[n + 5]
    assert len(result.records) == summary["images"]


def test_pets_missing_files_raise_naming_them(pets, tmp_path):
    _, extracted, _ = pets
    copy = tmp_path / "extracted"
    shutil.copytree(extracted, copy)
    (copy / "annotations" / "test.txt").unlink()
    with pytest.raises(DataError) as err:
        oxford_pets.parse(copy, tmp_path)
    assert err.value.where.endswith("test.txt")
    (copy / "annotations" / "list.txt").unlink()
    with pytest.raises(DataError) as err:
        oxford_pets.parse(copy, tmp_path)
    assert err.value.where.endswith("list.txt")
    no_images = tmp_path / "no_images"
    shutil.copytree(extracted / "annotations", no_images / "annotations")
    with pytest.raises(DataError) as err:
        oxford_pets.parse(no_images, tmp_path)
    assert err.value.where.endswith("images")


# ------------------------------------------------------------------------------ FLICKR-AES
@pytest.fixture(scope="module")
def aes(tmp_path_factory):
    root = tmp_path_factory.mktemp("aes")
    extracted, summary = build(root, synth_aes, seed=3, scale=0.1, max_side=24)
    return root, extracted, summary


def test_aes_records_ratings_and_split(aes):
    root, extracted, summary = aes
    result = flickr_aes.parse(extracted, root)
    records, ratings = result.records, result.tables["ratings"]
    assert len(records) == summary["images"] and len(ratings) == summary["ratings"]
    assert records["n_ratings"].sum() == summary["ratings"]
    assert records["mean_score"].between(0.2, 1.0).all()
    assert list(ratings.columns) == ["worker", "image_id", "score"]
    assert ratings["score"].between(1, 5).all()
    assert set(ratings["image_id"]) == set(records["image_id"])
    assert records["image_id"].str.startswith("flickr_aes:40K/farm").all()
    assert result.rejected.empty
    truth = pd.read_csv(root / "ground_truth" / "worker_split.csv").set_index("worker")["split"]
    rule = flickr_aes.worker_split(ratings)
    assert rule.sort_index().equals(truth.sort_index().rename("split"))
    assert records["split"].value_counts().to_dict() == {
        "train": summary["train_images"], "test": summary["test_images"]}


def test_aes_accepts_the_zip_wrapper(aes, tmp_path):
    _, extracted, summary = aes
    wrapped = tmp_path / "extracted"
    shutil.copytree(extracted / "40K", wrapped / "FLICKR-AES-001" / "40K")
    shutil.copy(extracted / flickr_aes.RATINGS_FILE, wrapped)
    result = flickr_aes.parse(wrapped, tmp_path)
    assert len(result.records) == summary["images"]
    assert result.records["path"].str.startswith("extracted/FLICKR-AES-001/40K/").all()
    assert result.records["mean_score"].isna().all()  # no score file: no mean score


def test_aes_bad_rows_are_rejected_with_line_numbers(aes, tmp_path):
    _, extracted, _ = aes
    copy = tmp_path / "extracted"
    shutil.copytree(extracted, copy)
    name = sorted(p.name for p in (copy / "40K").iterdir())[0]
    (copy / flickr_aes.RATINGS_FILE).write_text(
        "worker, imagePair, score\n"
        f"A1, {name}, 4\n"
        f"A1, {name}, good\n"
        f"A2, {name}, 6\n"
        "A3, farm1_1_1_missing.jpg, 3\n"
        f"A4, {name}\n"
        f"A5, {name}, 2\n")
    result = flickr_aes.parse(copy, tmp_path)
    reasons = rejected_lines(result, flickr_aes.RATINGS_FILE)
    assert set(reasons) == {3, 4, 5, 6}
    assert "'good'" in reasons[3] and "integer 1-5" in reasons[4]
    assert "missing" in reasons[5] and "fields" in reasons[6]
    assert result.tables["ratings"]["worker"].tolist() == ["A1", "A5"]
    assert result.records["n_ratings"].tolist() == [2]


def test_aes_missing_column_or_file_raises_naming_the_file(aes, tmp_path):
    _, extracted, _ = aes
    copy = tmp_path / "extracted"
    shutil.copytree(extracted, copy)
    (copy / flickr_aes.RATINGS_FILE).write_text("worker, image, score\nA1, x.jpg, 3\n")
    with pytest.raises(DataError, match="imagePair") as err:
        flickr_aes.parse(copy, tmp_path)
    assert err.value.where.endswith(flickr_aes.RATINGS_FILE)
    (copy / flickr_aes.RATINGS_FILE).unlink()
    with pytest.raises(DataError) as err:
        flickr_aes.parse(copy, tmp_path)
    assert err.value.where.endswith(flickr_aes.RATINGS_FILE)


# ------------------------------------------------------------------------------ preferences
@pytest.fixture(scope="module")
def prefs(tmp_path_factory):
    root = tmp_path_factory.mktemp("prefs")
    extracted, summary = build(root, synth_prefs, seed=3, scale=0.12, max_side=32)
    return root, extracted, summary


def test_prefs_records_and_pairs(prefs):
    root, extracted, summary = prefs
    result = photo_preferences.parse(extracted, root)
    records, pairs = result.records, result.tables["pairs"]
    assert len(records) == summary["photos"] and len(pairs) == summary["pairs"]
    assert set(records["tier"]) == set(range(15)) and records["split"].isna().all()
    assert "burst" not in records.columns  # ground truth stays separate
    assert set(pairs["left"]) | set(pairs["right"]) <= set(records["image_id"])
    assert set(pairs["winner"]) == {"left", "right"}
    first = records.iloc[0]
    assert first["image_id"] == f"photo_preferences:photos/{first['tier']:02d}/" + Path(
        first["path"]).name
    assert result.rejected.empty


def test_prefs_bad_pairs_and_stray_files_are_rejected(prefs, tmp_path):
    _, extracted, _ = prefs
    copy = tmp_path / "extracted"
    shutil.copytree(extracted, copy)
    pairs = copy / "pairs.csv"
    lines = pairs.read_text().splitlines()
    a, b = lines[1].split(",")[:2]
    pairs.write_text("\n".join([*lines, f"{a},99/IMG_0000.jpg,left", f"{a},{b},both",
                                f"{a},{a},right", f"{a},{b}"]) + "\n")
    (copy / "photos" / "misc").mkdir()
    shutil.copy(copy / "photos" / a, copy / "photos" / "misc" / "stray.jpg")
    (copy / "photos" / "00" / "._IMG_0001.jpg").write_bytes(b"\x00\x05\x16\x07")
    result = photo_preferences.parse(copy, tmp_path)
    n = len(lines)
    reasons = rejected_lines(result, "pairs.csv")
    assert set(reasons) == {n + 1, n + 2, n + 3, n + 4}
    assert "unknown photo" in reasons[n + 1] and "winner" in reasons[n + 2]
    assert "itself" in reasons[n + 3] and "fields" in reasons[n + 4]
    stray = result.rejected[result.rejected["line"].isna()]["reason"].tolist()
    assert any("tier folder" in r for r in stray) and any("AppleDouble" in r for r in stray)
    assert len(result.tables["pairs"]) == n - 1


def test_prefs_missing_parts(prefs, tmp_path):
    _, extracted, summary = prefs
    copy = tmp_path / "extracted"
    shutil.copytree(extracted, copy)
    (copy / "pairs.csv").write_text("a,right,winner\nx,y,left\n")
    with pytest.raises(DataError, match="left") as err:
        photo_preferences.parse(copy, tmp_path)
    assert err.value.where.endswith("pairs.csv")
    (copy / "pairs.csv").unlink()
    result = photo_preferences.parse(copy, tmp_path)  # pairs are optional
    assert len(result.records) == summary["photos"] and result.tables["pairs"].empty
    shutil.rmtree(copy / "photos")
    with pytest.raises(DataError, match="photos"):
        photo_preferences.parse(copy, tmp_path)


# ------------------------------------------------------------------------- photographer folders
def test_photographer_folders_label_by_folder_and_share_bases(tmp_path):
    extracted, summary = build(tmp_path, synth_folders, seed=2, photographers=3, scenes=5)
    assert summary == {"photographers": 3, "scenes": 5, "photos": 15, "defects": True}
    result = photographer_folders.parse(extracted, tmp_path)
    records = result.records
    # the truncated JPEG is a record: the catalog decodes it and quarantines it with a reason
    assert len(records) == 16 and records["split"].isna().all()
    assert sorted(records["photographer"].unique()) == ["expert_A", "expert_B", "expert_C"]
    assert records["image_id"].iloc[0] == "photographer_folders:expert_A/a0001.jpg"
    assert records.groupby("base")["photographer"].nunique().loc["a0001"] == 3
    assert (tmp_path / records["path"].iloc[0]).is_file()
    assert dict(zip(result.rejected["file"], result.rejected["reason"], strict=True)) == {
        "extracted/cover.jpg": "not inside a photographer folder "
                               "(the layout is <root>/<photographer>/<photo>)",
        "extracted/expert_A/Thumbs.db": "not an image file (suffix .db)"}


def test_photographer_folders_wrapper_nesting_and_bad_trees(tmp_path):
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (8, 8), (200, 90, 30)).save(photo)
    export = tmp_path / "extracted" / "fivek_export"  # a zip of the export folder
    for rel in ("Expert A/a0001.jpg", "Expert A/2013-05/a0002.jpg", "Expert B/a0001.jpg",
                ".lenslab-extracted/marker.jpg"):
        (export / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(photo, export / rel)
    (export / "Expert C").mkdir()
    result = photographer_folders.parse(tmp_path / "extracted", tmp_path)
    assert photographer_folders.find_root(tmp_path / "extracted") == export
    records = result.records.set_index("image_id")
    assert list(records.index) == ["photographer_folders:Expert A/2013-05/a0002.jpg",
                                   "photographer_folders:Expert A/a0001.jpg",
                                   "photographer_folders:Expert B/a0001.jpg"]
    assert list(records["photographer"]) == ["Expert A", "Expert A", "Expert B"]
    assert list(records["base"]) == ["a0002", "a0001", "a0001"]
    assert list(result.rejected["reason"]) == ["photographer folder without photos"]
    assert result.rejected["file"].iloc[0] == "extracted/fivek_export/Expert C"

    with pytest.raises(DataError, match="no photos in <photographer>/ folders"):
        photographer_folders.parse(tmp_path / "extracted" / "fivek_export" / "Expert C",
                                   tmp_path)
    with pytest.raises(DataError, match="missing photographer folders"):
        photographer_folders.parse(tmp_path / "nowhere", tmp_path)


def test_each_format_names_every_file_its_generator_distributes(tmp_path):
    from lenslab.formats.registry import distribution
    from lenslab.synthetic.registry import GENERATORS

    for source in PARSERS:
        dist = tmp_path / source
        GENERATORS[source](dist, tmp_path / f"{source}-truth", seed=3, scale=0.1)
        taken, left_out = distribution(source).select(dist)
        # the photographer generator drops one stray photo beside the folders, as users do
        assert left_out == (["cover.jpg"] if source == "photographer_folders" else []), source
        assert taken, source


def test_pets_a_bad_list_row_is_one_error_and_the_split_file_keeps_its_labels(pets, tmp_path):
    _, extracted, _ = pets
    copy = tmp_path / "extracted"
    shutil.copytree(extracted, copy)
    annotations = copy / "annotations"
    stem, *labels = (annotations / "trainval.txt").read_text().split("\n")[0].split()
    list_txt = annotations / "list.txt"
    lines = list_txt.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.split()[:1] == [stem])
    lines[at] = f"{stem} 99 {labels[1]} {labels[2]}"  # a CLASS-ID no breed has
    list_txt.write_text("\n".join(lines) + "\n")
    result = oxford_pets.parse(copy, tmp_path)
    about = result.rejected[result.rejected["reason"].str.contains(stem)]
    assert len(about) == 1, about.to_dict(orient="records")
    assert about.iloc[0]["file"].endswith("annotations/list.txt")
    assert int(about.iloc[0]["line"]) == at + 1
    row = result.records.set_index("image_id").loc[f"oxford_pets:images/{stem}.jpg"]
    class_id, _, breed_id = oxford_pets.breed_labels(stem.rsplit("_", 1)[0])
    assert (row["split"], row["class_id"], row["breed_id"]) == ("train", class_id, breed_id)
