"""The synthetic selfie and landmark datasets: formats, determinism, scaling and signal."""

from __future__ import annotations

import io
import itertools
import json
import re
import tarfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lenslab.formats.landmark_photos import COCO_KEYPOINTS, COCO_SKELETON, MANIFEST_COLUMNS
from lenslab.formats.selfies import ATTRIBUTES
from lenslab.synthetic import figures, landmarks, selfies

SELFIE_NAME = re.compile(r"^([0-9a-f]{32}_\d|\d+_\d+_\d+_[an])$")
SCREENSHOT = re.compile(r"^Firefox_Screenshot_\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}Z\.png$")
LANDMARK_KNOBS = {"sites": 3, "images_per_pose": 2, "empty_per_site": 2}


def _tree(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def selfie_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("selfies")
    summary = selfies.generate(root / "dist", root / "gt", seed=7, scale=0.25)
    with tarfile.open(root / "dist" / selfies.ARCHIVE) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    truth = pd.read_csv(root / "gt" / "quality_factors.csv")
    return summary, members, truth


@pytest.fixture(scope="module")
def landmark_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("landmarks")
    summary = landmarks.generate(root / "dist", root / "gt", seed=7, **LANDMARK_KNOBS)
    return root, summary


# ------------------------------------------------------------------------------------ selfies
def test_selfies_are_deterministic(tmp_path):
    for run in ("a", "b", "c"):
        selfies.generate(tmp_path / run / "dist", tmp_path / run / "gt",
                         seed=3 if run != "c" else 4, images=12)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    assert _tree(tmp_path / "a" / "dist") != _tree(tmp_path / "c" / "dist")


def test_selfie_archive_has_the_real_layout(selfie_set):
    summary, members, _ = selfie_set
    prefix = "Selfie-dataset/"
    assert {f"{prefix}README.txt", f"{prefix}selfie_dataset.txt"} <= set(members)
    images = {n for n in members if n.startswith(f"{prefix}images/")}
    assert len(images) == summary["images"] == 150
    lines = members[f"{prefix}selfie_dataset.txt"].decode().splitlines()
    assert len(lines) == 150
    for line in lines:
        fields = line.split()
        assert len(fields) == 38
        assert SELFIE_NAME.match(fields[0]) and f"{prefix}images/{fields[0]}.jpg" in images
        float(fields[1])
        assert set(fields[2:]) <= {"1", "-1", "0"}
    readme = members[f"{prefix}README.txt"].decode()
    positions = [readme.index(f"  {a}\n") for a in ATTRIBUTES]
    assert positions == sorted(positions)  # the official attribute order
    jpeg = Image.open(io.BytesIO(members[next(iter(sorted(images)))]))
    assert jpeg.format == "JPEG" and jpeg.size == (160, 160)


def test_selfie_count_scales(tmp_path):
    small = selfies.generate(tmp_path / "s", tmp_path / "sg", seed=1, scale=0.01)
    larger = selfies.generate(tmp_path / "l", tmp_path / "lg", seed=1, scale=0.03, size=64)
    assert (small["images"], larger["images"]) == (6, 18)
    assert len(pd.read_csv(tmp_path / "lg" / "quality_factors.csv")) == 18


def test_selfie_labels_follow_the_drawn_attributes(selfie_set):
    _, members, truth = selfie_set
    labels = {}
    for line in members["Selfie-dataset/selfie_dataset.txt"].decode().splitlines():
        fields = line.split()
        labels[fields[0]] = [int(v) for v in fields[2:]]
    written = np.array([labels[n] for n in truth["name"]])
    drawn = truth[list(ATTRIBUTES)].to_numpy() * 2 - 1
    agree = (written == drawn).mean()
    assert 0.9 < agree < 0.99  # annotators are good but not perfect
    assert (written == 0).any()
    # the lighting attributes come from the hidden factors
    assert (truth["dim_lighting"] == (truth["exposure"] < -0.6)).all()
    assert (truth["harsh_lighting"] == (truth["harshness"] > 0.45)).all()


def test_selfie_popularity_carries_a_learnable_but_noisy_signal(selfie_set):
    summary, members, truth = selfie_set
    corr = truth["quality"].corr(truth["popularity"])
    assert 0.6 < corr < 0.9 and abs(summary["quality_popularity_corr"] - corr) < 1e-3
    good = truth["popularity"] > truth["popularity"].median()
    oracle = ((truth["quality"] > truth["quality"].median()) == good).mean()
    smile_only = ((truth["smiling"] == 1) == good).mean()
    assert 0.7 < oracle < 0.95 and smile_only < oracle - 0.05
    # no single hidden factor decides the score on its own
    factors = truth[list(selfies.FACTORS)].abs().corrwith(truth["popularity"]).abs()
    assert factors.max() < 0.6
    # the factors are in the pixels: exposure shows as brightness
    brightness = [np.asarray(Image.open(io.BytesIO(
        members[f"Selfie-dataset/images/{n}.jpg"])), float).mean() for n in truth["name"]]
    assert np.corrcoef(brightness, truth["exposure"])[0, 1] > 0.6


# ---------------------------------------------------------------------------------- landmarks
def test_landmarks_are_deterministic(tmp_path, landmark_set):
    root, _ = landmark_set
    landmarks.generate(tmp_path / "dist", tmp_path / "gt", seed=7, **LANDMARK_KNOBS)
    assert _tree(tmp_path / "dist") == _tree(root / "dist")
    assert _tree(tmp_path / "gt") == _tree(root / "gt")
    other = landmarks.plan(8, **LANDMARK_KNOBS)
    assert [s.path for s in other] != [s.path for s in landmarks.plan(7, **LANDMARK_KNOBS)]


def test_landmark_counts_scale():
    assert len(landmarks.plan(1)) == 10 * (4 * 5 + 4)
    assert len(landmarks.plan(1, scale=0.5)) == 5 * (4 * 2 + 2)  # round(2.5) == 2
    assert len(landmarks.plan(1, scale=2.0)) == 14 * (4 * 10 + 8)  # every drawn site


def test_landmark_files_follow_the_seed_layout(landmark_set):
    root, summary = landmark_set
    dist = root / "dist"
    labels = pd.read_csv(dist / "Data" / "labels.csv")
    assert list(labels.columns) == ["Site", "Pose", "Path", "label"]
    assert (labels["label"] == labels["Site"] + "::" + labels["Pose"]).all()
    assert len(labels) == summary["images"] == 3 * (4 * 2 + 2)
    for row in labels.itertuples():
        assert row.Path == f"Data/{row.Site}/{row.Pose}/{row.Path.rsplit('/', 1)[1]}"
        assert SCREENSHOT.match(row.Path.rsplit("/", 1)[1]) and (dist / row.Path).is_file()
    assert (labels["Pose"] == "_zz").sum() == 3 * 2
    manifest = pd.read_csv(dist / "manifest.csv")
    assert tuple(manifest.columns) == MANIFEST_COLUMNS
    assert sorted(manifest["url"]) == sorted(labels["Path"])
    assert "Big Ben" in set(manifest["site"])  # human names; folders are Big_Ben
    coco = json.loads((dist / "annotations" / "person_keypoints.json").read_text())
    assert {"images", "annotations", "categories"} <= set(coco)
    assert coco["categories"][0]["keypoints"] == list(COCO_KEYPOINTS)
    assert coco["categories"][0]["skeleton"] == [list(p) for p in COCO_SKELETON]
    assert {i["file_name"] for i in coco["images"]} == set(labels["Path"])
    ann = coco["annotations"][0]
    assert {"id", "image_id", "category_id", "keypoints", "num_keypoints", "bbox"} <= set(ann)
    assert len(ann["keypoints"]) == 51


def test_keypoints_are_in_the_image_and_empty_sites_have_none(landmark_set):
    root, _ = landmark_set
    coco = json.loads((root / "dist" / "annotations" / "person_keypoints.json").read_text())
    names = {i["id"]: i["file_name"] for i in coco["images"]}
    annotated = {names[a["image_id"]] for a in coco["annotations"]}
    assert not any("/_zz/" in name for name in annotated)
    assert {n for n in names.values() if "/_zz/" not in n} <= annotated  # every posed photo
    for a in coco["annotations"]:
        kp = np.reshape(a["keypoints"], (17, 3))
        labelled, seen = kp[kp[:, 2] > 0], kp[kp[:, 2] == 2]
        assert ((labelled[:, :2] >= 0) & (labelled[:, :2] < 192)).all()
        assert a["num_keypoints"] == len(labelled)
        x, y, w, h = a["bbox"]  # the visible person; hidden joints (v=1) may lie outside
        assert ((seen[:, 0] >= x - 2) & (seen[:, 0] <= x + w + 2)).all()
        assert ((seen[:, 1] >= y - 2) & (seen[:, 1] <= y + h + 2)).all()
    truth = pd.read_csv(root / "gt" / "keypoints.csv")
    assert truth.groupby("image")["is_main"].sum().eq(1).all()
    assert not truth["image"].str.contains("/_zz/").any()


def test_keypoints_land_on_the_drawn_figure():
    shots = [s for s in landmarks.plan(5, sites=2, images_per_pose=2) if s.people][:6]
    hits = []
    for shot in shots:
        with_people, visibility, _ = landmarks.render(shot)
        without, _, _ = landmarks.render(shot, draw_people=False)
        diff = np.abs(np.asarray(with_people, float) - np.asarray(without, float)).mean(axis=2)
        main = shot.people[-1]
        for (x, y), v in zip(main.keypoints, visibility[-1], strict=True):
            if v == 2:
                xi, yi = int(x), int(y)
                hits.append(diff[max(0, yi - 1): yi + 2, max(0, xi - 1): xi + 2].max() > 12)
        far = np.ones_like(diff, bool)
        for person in shot.people:
            x0, y0 = person.keypoints.min(axis=0) - 0.15 * person.height
            x1, y1 = person.keypoints.max(axis=0) + 0.15 * person.height
            far[max(0, int(y0)): max(0, int(y1)), max(0, int(x0)): max(0, int(x1))] = False
        assert diff[far].max() < 1e-9  # people change nothing away from themselves
    assert np.mean(hits) > 0.95


def test_same_site_photos_look_alike_and_poses_differ_by_limbs():
    # nearest neighbours on raw thumbnails find the site, but hardly the pose within a site
    shots = landmarks.plan(11, sites=5, images_per_pose=3, empty_per_site=2)
    x = np.array([np.asarray(landmarks.render(s)[0].resize((24, 24)), float).ravel()
                  for s in shots])
    sites, poses = np.array([s.site for s in shots]), np.array([s.pose for s in shots])
    dist = np.abs(x[:, None] - x[None]).mean(axis=2)
    np.fill_diagonal(dist, np.inf)
    assert (sites[dist.argmin(axis=1)] == sites).mean() > 0.6  # chance 0.2
    pose_hits = []
    for i in range(len(shots)):
        others = np.flatnonzero((sites == sites[i]) & (np.arange(len(shots)) != i))
        pose_hits.append(poses[others[dist[i, others].argmin()]] == poses[i])
    assert np.mean(pose_hits) < 0.45  # chance about 0.15
    # limb angles separate templates by more than the joint jitter blurs them
    r = np.random.default_rng(0)

    def body(pose):
        return figures.body_keypoints(pose, r.normal(0, 9, 8), r.normal(0, 4), np.ones(4))

    within = [np.abs(body(p) - body(p)).mean() for p in landmarks.POSES for _ in range(5)]
    between = [np.abs(body(p) - body(q)).mean()
               for p, q in itertools.combinations(landmarks.POSES, 2)]
    assert np.mean(within) < 0.5 * np.mean(between)
