"""Synthetic photo datasets: deterministic, scalable, in their real formats, and carrying signal."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lenslab import edits
from lenslab.edits import EditParams, apply_edits
from lenslab.synthetic import cli, flickr_aes, oxford_pets, photo_preferences, scenes
from lenslab.synthetic.registry import GENERATORS, available

PETS = {"seed": 5, "photographers": 8, "images_per_photographer": 12}
AES = {"seed": 5, "scale": 0.4, "max_side": 96}
PREFS = {"seed": 5, "scale": 0.5}


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def generate(module, root: Path, **kwargs) -> dict:
    return module.generate(root / "distributed", root / "ground_truth", **kwargs)


def spearmanr(a, b) -> tuple[float]:
    """Rank correlation, like scipy.stats.spearmanr(a, b)[0] (numpy only: fast to import)."""
    return (float(pd.Series(np.asarray(a)).rank().corr(pd.Series(np.asarray(b)).rank())),)


def ridge(x: np.ndarray, y: np.ndarray, alpha: float = 1.0):
    """A ridge regression on standardised features; returns the predictor."""
    mean, sd = x.mean(0), x.std(0) + 1e-9
    z = (x - mean) / sd
    w = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return lambda new: ((new - mean) / sd) @ w + y.mean()


def image_features(image: Image.Image) -> np.ndarray:
    """Naive global features: colour means and spreads, saturation, vignetting, fine detail."""
    x = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    lum = x @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    sat = (x.max(-1) - x.min(-1)) / (x.max(-1) + 1e-3)
    h, w = lum.shape
    ys, xs = np.mgrid[0:h, 0:w]
    r2 = (ys / h - 0.5) ** 2 + (xs / w - 0.5) ** 2
    detail = np.abs(np.diff(lum, axis=1)).mean()
    return np.concatenate([x.mean((0, 1)), x.std((0, 1)), np.percentile(lum, [5, 50, 95]),
                           [sat.mean(), lum[r2 > 0.2].mean() - lum[r2 < 0.05].mean(), detail]])


# ------------------------------------------------------------------------------ edits, scenes
def test_identity_edit_keeps_pixels():
    x = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
    assert np.allclose(apply_edits(x, EditParams()), x, atol=1e-5)


def test_edits_do_what_they_say():
    x = scenes.background(np.random.default_rng(1), 40, 60)
    grey = apply_edits(x, {"saturation": -1.0})
    assert np.abs(grey - grey.mean(-1, keepdims=True)).max() < 1e-4
    assert apply_edits(x, {"exposure": 1.0}).mean() > x.mean() + 0.05
    warm = apply_edits(x, {"temperature": 1.0})
    assert (warm[..., 0] - warm[..., 2]).mean() > (x[..., 0] - x[..., 2]).mean() + 0.05
    vignetted = apply_edits(np.full((40, 60, 3), 0.5, np.float32), {"vignette": 0.8})
    assert vignetted[0, 0, 0] < vignetted[20, 30, 0] - 0.2
    faded = apply_edits(np.zeros((4, 4, 3), np.float32), {"fade": 0.1})
    assert np.allclose(faded, 0.1)
    with pytest.raises(ValueError, match="unknown edit"):
        apply_edits(x, {"sharpen": 1.0})


def test_edits_batch_params_and_torch_gradients():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).random((2, 8, 8, 3)).astype(np.float32)
    batch = apply_edits(x, {"exposure": np.array([0.0, 1.0]), "grain": 0.0})
    assert np.allclose(batch[0], apply_edits(x[0], {"exposure": 0.0}), atol=1e-6)
    assert batch[1].mean() > batch[0].mean()
    exposure = torch.tensor(0.2, requires_grad=True)
    params = EditParams(exposure=exposure, contrast=0.3, split_amount=0.4, vignette=0.2)
    out = apply_edits(torch.from_numpy(x), params)
    out.mean().backward()
    assert exposure.grad is not None and float(exposure.grad) > 0
    assert np.allclose(out.detach().numpy(), apply_edits(x, params.to_dict() | {
        "exposure": 0.2}), atol=1e-5)


def test_scenes_are_seeded_and_trimaps_have_three_values():
    a = scenes.render_scene(np.random.default_rng(3), 60, 80,
                            creature=scenes.random_creature(np.random.default_rng(4)))
    b = scenes.render_scene(np.random.default_rng(3), 60, 80,
                            creature=scenes.random_creature(np.random.default_rng(4)))
    assert np.array_equal(a.pixels, b.pixels) and a.pixels.shape == (60, 80, 3)
    assert a.pixels.min() >= 0.0 and a.pixels.max() <= 1.0
    assert set(np.unique(scenes.trimap(a.mask))) == {1, 2, 3}
    x0, y0, x1, y1 = a.head_box
    assert 0 <= x0 < x1 < 80 and 0 <= y0 < y1 < 60


# ------------------------------------------------------------------------------ registry, CLI
def test_registry_and_cli(tmp_path, capsys):
    assert {"oxford_pets", "flickr_aes", "photo_preferences"} <= set(available())
    assert set(GENERATORS) == {"oxford_pets", "selfies", "landmark_photos", "flickr_aes",
                               "photo_preferences", "photographer_folders"}
    assert cli.main(["photo_preferences", str(tmp_path / "out"), "--seed", "3", "--scale",
                     "0.12", "--set", "pairs=1000"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["seed"] == 3 and summary["pairs"] == 120
    assert (tmp_path / "out" / "distributed" / "pairs.csv").is_file()
    assert (tmp_path / "out" / "ground_truth" / "quality.csv").is_file()
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "OUT_DIR" in capsys.readouterr().out


# ------------------------------------------------------------------------------ Oxford-IIIT Pet
@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    root = tmp_path_factory.mktemp("pets")
    summary = generate(oxford_pets, root, **PETS)
    return root, summary


def test_pets_archives_as_distributed(pets):
    root, summary = pets
    with tarfile.open(root / "distributed" / "annotations.tar.gz") as tar:
        names = tar.getnames()
        text = tar.extractfile("annotations/list.txt").read().decode()
    lines = text.splitlines()
    assert lines[0] == "#Image CLASS-ID SPECIES BREED ID"
    assert all(line.startswith("#") for line in lines[:6])
    assert len(lines) == 6 + summary["listed"]
    stem, *labels = lines[6].split()
    assert stem.rsplit("_", 1)[0] in oxford_pets.BREEDS
    assert len(labels) == 3 and all(v.isdigit() for v in labels)
    assert any("/._" in n for n in names)
    assert {"annotations/trainval.txt", "annotations/test.txt", "annotations/README"} <= set(names)
    assert abs(summary["trainval"] - summary["test"]) <= 0.15 * summary["listed"]
    with tarfile.open(root / "distributed" / "images.tar.gz") as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        formats = {Image.open(io.BytesIO(tar.extractfile(m).read())).format
                   for n, m in members.items() if n.endswith(".jpg")}
    assert formats == {"JPEG", "PNG", "GIF"}
    assert sum(n.endswith(".mat") for n in members) == 3
    gt = pd.read_csv(root / "ground_truth" / "photographers.csv")
    assert list(gt.columns) == ["image", "photographer"] and len(gt) == summary["images"]
    presets = pd.read_csv(root / "ground_truth" / "presets.csv")
    assert len(presets) == 8 and set(EditParams.names()) < set(presets.columns)


def test_pets_photographer_is_learnable_but_not_trivial(pets):
    root, _ = pets
    gt = pd.read_csv(root / "ground_truth" / "photographers.csv").set_index("image")
    with tarfile.open(root / "distributed" / "images.tar.gz") as tar:
        rows = [(Path(m.name).stem, image_features(Image.open(tar.extractfile(m))))
                for m in tar.getmembers() if m.name.endswith(".jpg")]
    x = np.stack([f for _, f in rows])
    y = gt.loc[[s for s, _ in rows], "photographer"].to_numpy()
    train = np.arange(len(y)) % 2 == 0
    z = (x - x[train].mean(0)) / x[train].std(0)
    centroids = np.stack([z[train & (y == k)].mean(0) for k in range(8)])
    guess = np.argmin(((z[~train, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    accuracy = (guess == y[~train]).mean()
    # chance is 1/8; a nearest-centroid baseline learns something and stays clearly imperfect
    assert 3 / 8 < accuracy < 0.85


# ------------------------------------------------------------------------------ FLICKR-AES
@pytest.fixture(scope="module")
def aes(tmp_path_factory):
    root = tmp_path_factory.mktemp("aes")
    summary = generate(flickr_aes, root, **AES)
    return root, summary


def test_aes_files_as_distributed(aes):
    root, summary = aes
    dist = root / "distributed"
    lines = (dist / flickr_aes.RATINGS_FILE).read_text().splitlines()
    assert lines[0] == "worker, imagePair, score"
    worker, name, score = lines[1].split(", ")
    assert worker.startswith("A") and name.startswith("farm") and name.endswith(".jpg")
    assert len(name.split("_")) == 4 and score in "12345"
    assert len(lines) - 1 == summary["ratings"]
    score_line = (dist / flickr_aes.SCORES_FILE).read_text().splitlines()[0]
    assert score_line.startswith(" farm") and 0.2 <= float(score_line.split()[1]) <= 1.0
    with zipfile.ZipFile(dist / flickr_aes.ZIP_FILE) as zf:
        names = zf.namelist()
        assert all(n.startswith("40K/") for n in names) and len(names) == summary["images"]
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())


def test_aes_worker_split_follows_the_count_rule(aes):
    root, summary = aes
    split = pd.read_csv(root / "ground_truth" / "worker_split.csv")
    test = split[split["split"] == "test"]
    train = split[split["split"] == "train"]
    assert len(test) == summary["test_workers"] == 2
    assert test["n_ratings"].between(112, 171).all()
    assert not train["n_ratings"].between(105, 180).any()
    ratings = pd.read_csv(root / "distributed" / flickr_aes.RATINGS_FILE, skipinitialspace=True)
    ratings.columns = [c.strip() for c in ratings.columns]
    by_worker = ratings.groupby("worker")["imagePair"].apply(set)
    test_images = set().union(*by_worker[test["worker"]])
    train_images = set().union(*by_worker[train["worker"]])
    assert not test_images & train_images
    per_image = ratings[ratings["imagePair"].isin(train_images)].groupby("imagePair").size()
    assert 4 <= per_image.mean() <= 5


def test_aes_ratings_carry_generic_and_personal_signal(aes):
    root, _ = aes
    ratings = pd.read_csv(root / "distributed" / flickr_aes.RATINGS_FILE, skipinitialspace=True)
    ratings.columns = [c.strip() for c in ratings.columns]
    attrs = pd.read_csv(root / "ground_truth" / "image_attributes.csv").set_index("image")
    tastes = pd.read_csv(root / "ground_truth" / "worker_tastes.csv").set_index("worker")
    names = list(flickr_aes.appearance.ATTRIBUTES)
    a = attrs.loc[ratings["imagePair"], names].to_numpy()
    taste = tastes.loc[ratings["worker"], [f"taste_{n}" for n in names]].to_numpy()
    personal = tastes.loc[ratings["worker"], [f"personal_{n}" for n in names]].to_numpy()
    common_var = np.var(np.einsum("nd,nd->n", a, taste - personal))
    personal_var = np.var(np.einsum("nd,nd->n", a, personal))
    assert 0.1 < personal_var / (common_var + personal_var) < 0.45  # a minority
    generic, own = [], []
    for worker, group in ratings.groupby("worker"):
        generic.append(spearmanr(attrs.loc[group["imagePair"], "generic_score"],
                                 group["score"])[0])
        t = tastes.loc[worker, [f"taste_{n}" for n in names]].to_numpy(dtype=float)
        own.append(spearmanr(attrs.loc[group["imagePair"], names].to_numpy() @ t,
                             group["score"])[0])
    # even a perfect generic model is far from perfect; the worker's own taste does better
    assert 0.45 < np.median(generic) < 0.8
    assert np.median(own) > np.median(generic) + 0.03


def test_aes_pixels_predict_ratings_naively(aes):
    root, _ = aes
    attrs = pd.read_csv(root / "ground_truth" / "image_attributes.csv").set_index("image")
    with zipfile.ZipFile(root / "distributed" / flickr_aes.ZIP_FILE) as zf:
        feats = {Path(n).name: image_features(Image.open(zf.open(n))) for n in zf.namelist()}
    scores = {}
    for line in (root / "distributed" / flickr_aes.SCORES_FILE).read_text().splitlines():
        name, score = line.split()
        scores[name] = float(score)
    train = attrs.index[attrs["split"] == "train"]
    test = attrs.index[attrs["split"] == "test"]
    model = ridge(np.stack([feats[n] for n in train]), np.array([scores[n] for n in train]))
    rho = spearmanr(model(np.stack([feats[n] for n in test])), [scores[n] for n in test])[0]
    oracle = spearmanr(attrs.loc[test, "generic_score"], [scores[n] for n in test])[0]
    assert 0.15 < rho < oracle  # learnable from pixels, and naive features leave room


# ------------------------------------------------------------------------------ preferences
@pytest.fixture(scope="module")
def prefs(tmp_path_factory):
    root = tmp_path_factory.mktemp("prefs")
    summary = generate(photo_preferences, root, **PREFS)
    return root, summary


def test_prefs_layout_and_pairs(prefs):
    root, summary = prefs
    photos = root / "distributed" / "photos"
    tiers = sorted(p.name for p in photos.iterdir())
    assert tiers == [f"{t:02d}" for t in range(15)]
    assert sum(1 for _ in photos.rglob("*.jpg")) == summary["photos"]
    pairs = pd.read_csv(root / "distributed" / "pairs.csv")
    assert list(pairs.columns) == ["left", "right", "winner"]
    assert set(pairs["winner"]) == {"left", "right"} and len(pairs) == summary["pairs"]
    assert 0.35 < (pairs["winner"] == "left").mean() < 0.65
    assert all((photos / p).is_file() for p in pd.concat([pairs["left"], pairs["right"]]))


def test_prefs_tiers_pairs_and_bursts_follow_quality(prefs):
    root, _ = prefs
    truth = pd.read_csv(root / "ground_truth" / "quality.csv").set_index("photo")
    assert spearmanr(truth["quality"], truth["tier"])[0] < -0.8  # tier 00 is best
    pairs = pd.read_csv(root / "distributed" / "pairs.csv")
    left_better = truth.loc[pairs["left"], "quality"].to_numpy() > truth.loc[
        pairs["right"], "quality"].to_numpy()
    agreement = (left_better == (pairs["winner"] == "left")).mean()
    assert 0.65 < agreement < 0.95  # annotators are noisy, but follow quality
    sizes = truth.groupby("burst").size()
    burst = sizes.index[sizes > 1][0]
    members = truth.index[truth["burst"] == burst]
    photos = root / "distributed" / "photos"

    def load(name):
        return np.asarray(Image.open(photos / name), dtype=np.float32) / 255

    near = np.abs(load(members[0]) - load(members[1])).mean()
    others = [n for n in truth.index if truth.loc[n, "burst"] != burst]
    far = np.mean([np.abs(load(members[0]) - load(n)).mean() for n in others[:5]
                   if load(n).shape == load(members[0]).shape] or [1.0])
    assert near < 0.5 * far


def test_prefs_tiers_are_learnable_from_pixels_naively(prefs):
    root, _ = prefs
    truth = pd.read_csv(root / "ground_truth" / "quality.csv").set_index("photo")
    photos = root / "distributed" / "photos"
    x = np.stack([image_features(Image.open(photos / n)) for n in truth.index])
    fit = np.arange(len(x)) % 2 == 0
    tier = truth["tier"].to_numpy(dtype=float)
    rho = spearmanr(ridge(x[fit], tier[fit])(x[~fit]), tier[~fit])[0]
    assert 0.2 < rho < 0.9


# ------------------------------------------------------------------------------ determinism, scale
@pytest.mark.parametrize(("module", "fixture", "args"), [
    (oxford_pets, "pets", PETS), (flickr_aes, "aes", AES), (photo_preferences, "prefs", PREFS)])
def test_same_seed_same_bytes(tmp_path, request, module, fixture, args):
    root, summary = request.getfixturevalue(fixture)
    assert generate(module, tmp_path, **args) == summary
    assert digest(tmp_path) == digest(root)


def test_another_seed_other_data(tmp_path, prefs):
    generate(photo_preferences, tmp_path, **(PREFS | {"seed": 6}))
    theirs, ours = digest(prefs[0]), digest(tmp_path)
    assert theirs != ours
    assert (tmp_path / "distributed" / "pairs.csv").read_bytes() != (
        prefs[0] / "distributed" / "pairs.csv").read_bytes()


def test_counts_scale(tmp_path, prefs, aes):
    assert (prefs[1]["photos"], prefs[1]["pairs"]) == (125, 1000)
    small = generate(photo_preferences, tmp_path / "s", seed=1, scale=0.2)
    assert (small["photos"], small["pairs"]) == (50, 400)
    pets = generate(oxford_pets, tmp_path / "p", seed=1, scale=0.5, photographers=4,
                    images_per_photographer=20)
    assert pets["listed"] == 40 and pets["images"] == 42
    aes_small = generate(flickr_aes, tmp_path / "f", **(AES | {"scale": 0.2, "max_side": 24}))
    assert (aes_small["train_workers"], aes[1]["train_workers"]) == (6, 10)
    assert (aes_small["test_workers"], aes[1]["test_workers"]) == (1, 2)
    assert aes[1]["ratings"] > 1.5 * aes_small["ratings"]


def test_edit_params_round_trip():
    p = EditParams(exposure=0.5, gamma=1.2)
    assert EditParams.from_dict(p.to_dict()) == p
    assert edits.LUMA[1] > edits.LUMA[0]


@pytest.mark.parametrize("source", ["oxford_pets", "landmark_photos"])
def test_an_unknown_knob_is_named_with_the_valid_ones_and_no_traceback(tmp_path, capsys,
                                                                      source):
    assert cli.main([source, str(tmp_path / "out"), "--set", "photgraphers=10"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown knob 'photgraphers'" in err
    valid = "photographers" if source == "oxford_pets" else "sites"
    assert valid in err.split("its knobs:")[1]
    assert not (tmp_path / "out" / "distributed").exists()  # nothing written
