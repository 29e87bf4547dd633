"""Parsers of the UCF Selfie Data Set and of the landmark photo collection."""

from __future__ import annotations

import json
import shutil
import tarfile

import pandas as pd
import pytest
from PIL import Image

from lenslab.errors import DataError
from lenslab.formats import landmark_photos, selfies
from lenslab.synthetic import landmarks
from lenslab.synthetic import selfies as synthetic_selfies

NAMES = ("00cddb96ac4c11e3a30212279ba1b65f_6", "10004079_1374851766130968_2065152224_a",
         "ffe0c2a4ac4c11e3a30212279ba1b65f_1")


# ------------------------------------------------------------------------------------ selfies
def _selfie_tree(root, lines, names=NAMES, wrapper=True):
    """A tiny Selfie-dataset tree with the given lines of selfie_dataset.txt."""
    base = root / "Selfie-dataset" if wrapper else root
    (base / "images").mkdir(parents=True)
    for name in names:
        Image.new("RGB", (8, 8), (200, 150, 120)).save(base / "images" / f"{name}.jpg")
    (base / "selfie_dataset.txt").write_text("\n".join(lines) + "\n")
    (base / "README.txt").write_text("selfies\n")
    return root


def _line(name, popularity="3.5", values=None):
    values = values or ["1", "-1", "0"] * 12
    return " ".join([name, popularity, *values])


def test_selfies_parse_the_generated_archive(tmp_path):
    dist = tmp_path / "raw" / "selfies" / "distributed"
    synthetic_selfies.generate(dist, tmp_path / "gt", seed=2, images=10, size=48)
    extracted = tmp_path / "raw" / "selfies" / "extracted"
    with tarfile.open(dist / synthetic_selfies.ARCHIVE) as tar:
        tar.extractall(extracted, filter="data")
    result = selfies.parse(extracted, tmp_path)
    records = result.records
    assert len(records) == 10 and result.rejected.empty
    assert list(records.columns) == ["image_id", "source", "path", "split", "popularity",
                                     *selfies.ATTRIBUTES]
    assert records["image_id"].str.match(r"^selfies:images/[^/]+\.jpg$").all()
    assert all((tmp_path / p).is_file() for p in records["path"])
    assert records["path"].str.startswith("raw/selfies/extracted/Selfie-dataset/images/").all()
    assert records["split"].isna().all()
    assert str(records["popularity"].dtype) == "float64"
    assert records[list(selfies.ATTRIBUTES)].isin([-1, 0, 1]).all().all()
    truth = pd.read_csv(tmp_path / "gt" / "quality_factors.csv").set_index("name")
    names = records["image_id"].str.extract(r"images/(.+)\.jpg$")[0]
    assert (records["popularity"].round(6).to_numpy()
            == truth.loc[names, "popularity"].to_numpy()).all()


def test_selfie_columns_keep_the_official_order(tmp_path):
    values = ["-1"] * 36
    values[selfies.ATTRIBUTES.index("smiling")] = "1"
    values[selfies.ATTRIBUTES.index("dim_lighting")] = "0"
    _selfie_tree(tmp_path, [_line(NAMES[0], "4.25", values)], names=NAMES[:1])
    row = selfies.parse(tmp_path, tmp_path).records.iloc[0]
    assert row["smiling"] == 1 and row["dim_lighting"] == 0 and row["is_female"] == -1
    assert row["popularity"] == 4.25


def test_selfies_without_the_wrapping_folder_and_with_odd_spacing(tmp_path):
    lines = [_line(NAMES[0]), "  " + _line(NAMES[1]).replace(" ", "\t", 3) + "  ", "",
             _line(NAMES[2])]
    _selfie_tree(tmp_path, lines, wrapper=False)
    result = selfies.parse(tmp_path, tmp_path)
    assert len(result.records) == 3 and result.rejected.empty
    assert result.records["image_id"].iloc[0] == f"selfies:images/{NAMES[0]}.jpg"
    assert result.records["path"].iloc[0] == f"images/{NAMES[0]}.jpg"


def test_bad_selfie_lines_are_rejected_with_their_line(tmp_path):
    lines = [
        _line(NAMES[0]),
        _line(NAMES[1], popularity="n/a"),  # line 2: a score that is not a number
        _line(NAMES[2])[: -len(" 0")],  # line 3: 37 fields
        _line("0123abcd_1"),  # line 4: the image is not in images/
        _line(NAMES[2], values=["1", "2", "0"] * 12),  # line 5: a value outside {-1, 0, 1}
        _line(NAMES[0]),  # line 6: listed twice
    ]
    _selfie_tree(tmp_path, lines)
    result = selfies.parse(tmp_path, tmp_path)
    assert list(result.records["image_id"]) == [f"selfies:images/{NAMES[0]}.jpg"]
    rejected = result.rejected.set_index("line")
    assert (rejected.loc[[2, 3, 4, 5, 6], "file"] == "Selfie-dataset/selfie_dataset.txt").all()
    assert "popularity 'n/a' is not a number" in rejected.loc[2, "reason"]
    assert "37 fields" in rejected.loc[3, "reason"]
    assert "missing" in rejected.loc[4, "reason"]
    assert "{-1, 0, 1}" in rejected.loc[5, "reason"]
    assert "twice" in rejected.loc[6, "reason"]


def test_missing_selfie_files_name_the_file(tmp_path):
    with pytest.raises(DataError, match=r"selfie_dataset\.txt"):
        selfies.parse(tmp_path, tmp_path)
    _selfie_tree(tmp_path, [_line(NAMES[0])])
    shutil.rmtree(tmp_path / "Selfie-dataset" / "images")
    with pytest.raises(DataError, match="images"):
        selfies.parse(tmp_path, tmp_path)


# ---------------------------------------------------------------------------------- landmarks
@pytest.fixture(scope="module")
def landmark_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("landmarks")
    landmarks.generate(root / "dist", root / "gt", seed=5, sites=2, images_per_pose=2,
                       empty_per_site=2, pose_masks=True)
    return root


@pytest.fixture
def extracted(landmark_tree, tmp_path):
    """A fresh copy, as extraction would give it (non-archive files are copied as they are)."""
    target = tmp_path / "raw" / "landmark_photos" / "extracted"
    shutil.copytree(landmark_tree / "dist", target)
    return target


def test_landmarks_parse_the_generated_tree(extracted, tmp_path):
    result = landmark_photos.parse(extracted, tmp_path)
    records = result.records
    assert len(records) == 2 * (4 * 2 + 2)
    assert {"site", "pose", "label", "has_person"} <= set(records.columns)
    assert (records["label"] == records["site"] + "::" + records["pose"]).all()
    assert (records["has_person"] == (records["pose"] != "_zz")).all()
    assert records["image_id"].str.match(r"^landmark_photos:Data/[^/]+/[^/]+/[^/]+\.png$").all()
    assert all((tmp_path / p).is_file() for p in records["path"])
    assert not records["path"].str.endswith("_pose.png").any()
    # the seed's masks beside the photos, and their rows in labels.csv, are rejected
    masks = result.rejected[result.rejected["reason"].str.contains("pose mask")]
    assert len(masks) == 2 * 16 and masks["file"].str.endswith("_pose.png").sum() == 16
    assert len(result.rejected) == len(masks)
    keypoints = result.tables["keypoints"]
    assert set(keypoints["image_id"]) == set(records.loc[records["has_person"], "image_id"])
    assert {"person", "nose_x", "nose_y", "nose_v", "right_ankle_v", "bbox_w"} <= set(
        keypoints.columns)
    assert (keypoints["source"] == "annotations").all()
    first = keypoints[keypoints["person"] == 0].set_index("image_id")["bbox_h"]
    assert (keypoints.groupby("image_id")["bbox_h"].max() >= first).all()
    manifest = result.tables["manifest"]
    assert manifest["present"].all() and set(manifest["image_id"]) == set(records["image_id"])


def test_landmark_records_agree_with_the_ground_truth(extracted, landmark_tree, tmp_path):
    records = landmark_photos.parse(extracted, tmp_path).records
    scenes = pd.read_csv(landmark_tree / "gt" / "scenes.csv")
    by_path = dict(zip("landmark_photos:" + scenes["image"], scenes["pose"], strict=True))
    for row in records.itertuples():
        assert landmark_photos.folder_name(by_path[row.image_id]) == row.pose


def test_a_bare_site_pose_tree_is_read(extracted, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(extracted / "Data", bare)
    (bare / "labels.csv").unlink()
    result = landmark_photos.parse(bare, tmp_path)
    assert len(result.records) == 20
    assert result.records["image_id"].str.startswith("landmark_photos:Data/").all()


def test_labels_csv_missing_a_column_names_the_file(extracted, tmp_path):
    labels = extracted / "Data" / "labels.csv"
    pd.read_csv(labels).drop(columns="Pose").to_csv(labels, index=False)
    with pytest.raises(DataError, match=r"labels\.csv.*Pose"):
        landmark_photos.parse(extracted, tmp_path)


def test_manifest_missing_a_column_names_the_file(extracted, tmp_path):
    manifest = extracted / "manifest.csv"
    pd.read_csv(manifest).drop(columns="site").assign(extra=1).to_csv(manifest, index=False)
    with pytest.raises(DataError, match=r"manifest\.csv.*site"):
        landmark_photos.parse(extracted, tmp_path)


def test_bad_labels_rows_are_rejected_with_their_line(extracted, tmp_path):
    labels_file = extracted / "Data" / "labels.csv"
    labels = pd.read_csv(labels_file)
    labels = labels[~labels["Path"].str.endswith("_pose.png")].reset_index(drop=True)
    labels.loc[0, "Path"] = "Data/Nowhere/Peace/gone.png"
    labels.loc[1, "Pose"] = "Other"
    labels.loc[2, "label"] = "wrong"
    labels.assign(note="tolerated").to_csv(labels_file, index=False)
    rejected = landmark_photos.parse(extracted, tmp_path).rejected
    rows = rejected[rejected["file"] == "raw/landmark_photos/extracted/Data/labels.csv"]
    rows = rows.set_index("line")["reason"]
    assert list(rows.index) == [2, 3, 4]
    assert "missing" in rows[2] and "disagree" in rows[3] and "Site::Pose" in rows[4]


def test_broken_keypoint_files(extracted, tmp_path):
    path = extracted / "annotations" / "person_keypoints.json"
    coco = json.loads(path.read_text())
    coco["annotations"][0]["keypoints"] = coco["annotations"][0]["keypoints"][:-3]
    coco["annotations"][1]["image_id"] = 10**6
    path.write_text(json.dumps(coco))
    result = landmark_photos.parse(extracted, tmp_path)
    where = "raw/landmark_photos/extracted/annotations/person_keypoints.json"
    reasons = result.rejected.loc[result.rejected["file"] == where, "reason"]
    assert len(reasons) == 2 and reasons.str.contains("17").any()
    assert len(result.tables["keypoints"]) == len(coco["annotations"]) - 2
    del coco["annotations"]
    path.write_text(json.dumps(coco))
    with pytest.raises(DataError, match=r"person_keypoints\.json"):
        landmark_photos.parse(extracted, tmp_path)


def test_folder_naming_for_scraped_images():
    assert landmark_photos.site_pose_dir("Big Ben", "Peace") == "Data/Big_Ben/Peace"
    assert landmark_photos.site_pose_dir("Big_Ben", "_zz") == "Data/Big_Ben/_zz"
    assert (landmark_photos.site_pose_dir("Kolloseum", "sitzend, Beine übergeschlagen")
            == "Data/Kolloseum/sitzend_Beine_übergeschlagen")
    for bad in ("  ", "../..", "/"):
        with pytest.raises(DataError):
            landmark_photos.site_pose_dir(bad, "Peace")
    row = {"url": "https://cdn.example.org/p/abc.JPG?sig=1", "site": "Taj Mahal", "pose": "Peace"}
    assert landmark_photos.manifest_target_dir(row) == "Data/Taj_Mahal/Peace"
    assert landmark_photos.manifest_target(row, sha256="ab12") == "Data/Taj_Mahal/Peace/ab12.jpg"
    assert (landmark_photos.manifest_target({**row, "sha256": "cd34"}, ext="png")
            == "Data/Taj_Mahal/Peace/cd34.png")
    with pytest.raises(DataError):
        landmark_photos.manifest_target(row)  # the content hash is not known before the fetch
    local = {"url": "Data/Taj_Mahal/Peace/x.png", "site": "Taj Mahal", "pose": "Peace"}
    assert landmark_photos.manifest_target(local) == "Data/Taj_Mahal/Peace/x.png"


def test_read_manifest_keeps_unknown_columns_and_lines(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text("url,site,pose,licence,comment\n"
                    "https://a.example/1.jpg,Big Ben,Peace,CC-BY,hi\n\n"
                    "https://a.example/2.jpg,Louvre,Zeigen,CC0,\n")
    manifest = landmark_photos.read_manifest(path)
    assert list(manifest["line"]) == [2, 4]
    assert list(manifest["comment"]) == ["hi", ""]
