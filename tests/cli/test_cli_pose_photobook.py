"""The pose and photobook registry families, and `lenslab pose / similar / album / compare` on
real photos with small registered models (the slow tests of test_pose.py and test_photobook.py
run the same commands with the models their pipelines train)."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skimage import data as skdata

from lenslab.cli import main
from lenslab.photobook.rating import Rater
from lenslab.scaling import Standardiser
from models import registry
from models.photobook.rater import RaterModel
from models.pose.siamese import PhotoSimilarity, Siamese, TrunkSuffix, build_from_card, load_variant
from tests.support.packaged_photos import bad_inputs, write_photos

POSE_ARCH = {"backbone": "mobilenet_v2", "pose": True, "hidden": 16, "pose_dim": 8,
             "image_size": 64, "finetuned": False, "frozen_stages": None}
MLSP = {"encoder": "mobilenet_v2_mlsp", "pretrained": True, "weights": "torchvision cache",
        "image_size": 64, "dim": 1656, "requested": "auto"}


def card(arch, **extra):
    return {"asset": "test", "code_version": "test", "architecture": arch,
            "metrics": {"test_roc_auc": 0.7}, "params": {"seed": 1}, "data": {"pairs": "v1"},
            "backbone": {"name": "mobilenet_v2", "weights": "none"}, **extra}


def register_pose(root, **arch):
    torch.manual_seed(0)
    arch = {**POSE_ARCH, **arch}
    return registry.register(root, "pose", build_from_card({"architecture": arch}),
                             card=card(arch, model="frozen_pose"), promote=True)


def register_photobook(root, promote=True):
    r = np.random.default_rng(0)
    rater = Rater(vectors={"learned": r.normal(size=MLSP["dim"])}, scales={"learned": 2.0},
                  descriptions={"learned": "test"},
                  standardiser=Standardiser(r.normal(size=MLSP["dim"]),
                                            r.uniform(0.5, 2, MLSP["dim"])),
                  duplicate_threshold=0.9, encoder=MLSP)
    arch = {"dim": MLSP["dim"], "duplicate_threshold": 0.9}
    return registry.register(root, "photobook", RaterModel.from_rater(rater), promote=promote,
                             card=card(arch, encoder=MLSP, vector={"description": "test"})), rater


# ------------------------------------------------------------------------- registry round trip
def test_pose_family_round_trips_through_the_registry(tmp_path):
    entry = register_pose(tmp_path)
    model, loaded = registry.load_model(tmp_path, "pose")
    assert loaded["version"] == entry.version and not model.training
    torch.manual_seed(0)
    again = build_from_card({"architecture": POSE_ARCH}).eval()
    x = torch.randint(0, 255, (3, 3, 64, 64), dtype=torch.uint8)
    p = torch.rand(3, 52)
    f = model.embed(x)
    assert f.shape == (3, 1280)
    torch.testing.assert_close(model(f[:1].expand(3, -1), f, p[:1].expand(3, -1), p),
                               again(again.embed(x)[:1].expand(3, -1), again.embed(x),
                                     p[:1].expand(3, -1), p))


def test_a_finetuned_variant_is_the_same_network_with_its_suffix_put_back(tmp_path):
    """What the pipeline trained (cached prefix maps + trainable suffix) and what the registry
    serves (raw images through one trunk) give the same logits."""
    from models.backbones import build_trunk
    from models.checkpoints import save_state
    from models.images import as_float
    from models.pose.siamese import trunk_prefix

    torch.manual_seed(1)
    trunk = build_trunk("mobilenet_v2", pretrained=True).eval()
    trained = Siamese(trunk.dim, True, suffix=TrunkSuffix(build_trunk("mobilenet_v2"), 17)).eval()
    save_state(trained, tmp_path / "finetuned_pose.pt")
    served = load_variant(tmp_path / "finetuned_pose.pt", {
        "backbone": "mobilenet_v2", "pose": True, "finetuned": True, "frozen_stages": 17}).eval()
    assert isinstance(served, PhotoSimilarity) and served.siamese.suffix is None
    x = torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8)
    p = torch.rand(2, 52)
    with torch.no_grad():
        maps = trunk_prefix(trunk, x, 17, torch.device("cpu"))
        want = trained(maps[:1], maps[1:], p[:1], p[1:])
        f = served.embed(x)
        got = served(f[:1], f[1:], p[:1], p[1:])
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert torch.allclose(f, served.trunk(as_float(x, torch.device("cpu"))))


def test_the_served_pose_variant_is_chosen_on_validation_and_gated_on_test():
    import pandas as pd

    from lenslab.pose.pairs import chosen_variant, quality_problems

    preds = pd.DataFrame({"split": ["val"] * 4 + ["test"] * 4, "label": [1, 0, 1, 0] * 2,
                          "p_frozen": [0.9, 0.1, 0.8, 0.2, 0.1, 0.9, 0.2, 0.8],
                          "p_frozen_pose": [0.6, 0.7, 0.8, 0.2, 0.9, 0.1, 0.8, 0.2]})
    assert chosen_variant(preds, ["frozen", "frozen_pose"]) == "frozen"  # test ignored
    one_class = preds.assign(label=1)
    assert chosen_variant(one_class, ["frozen", "frozen_pose"]) == "frozen_pose"  # accuracy
    good = {"roc_auc": 0.8, "roc_auc_ci95": [0.7, 0.9]}
    metrics = {"models": {"frozen": {"roc_auc": 0.7, "roc_auc_ci95": [0.6, 0.8]},
                          "frozen_pose": good}}
    assert quality_problems(metrics, "frozen_pose") == []
    metrics["models"]["frozen_pose"] = {"roc_auc": 0.65, "roc_auc_ci95": [0.45, 0.8]}
    assert len(quality_problems(metrics, "frozen_pose")) == 2
    metrics["models"]["frozen_pose"] = {"roc_auc": float("nan"),
                                        "roc_auc_ci95": [float("nan")] * 2}
    assert len(quality_problems(metrics, "frozen_pose")) == 2


def test_photobook_family_round_trips_and_rebuilds_the_rater(tmp_path):
    entry, rater = register_photobook(tmp_path)
    model, loaded = registry.load_model(tmp_path, "photobook")
    assert loaded["version"] == entry.version
    back = model.rater(loaded)
    np.testing.assert_allclose(back.vectors["learned"], rater.vectors["learned"])
    np.testing.assert_allclose(back.standardiser.std, rater.standardiser.std)
    assert back.scales == {"learned": 2.0} and back.duplicate_threshold == 0.9
    e = np.random.default_rng(1).normal(size=(2, MLSP["dim"]))
    np.testing.assert_allclose(back.probabilities(e, "learned"),
                               rater.probabilities(e, "learned"))
    torch.testing.assert_close(model(torch.from_numpy(e)), torch.from_numpy(
        e @ rater.vectors["learned"]))


def test_a_clip_rater_without_its_weights_is_a_clear_error(tmp_path):
    register_photobook(tmp_path)
    folder = registry.family_dir(tmp_path, "photobook")
    path = next(folder.glob("*/card.json"))
    stored = json.loads(path.read_text())
    stored["encoder"] = {**MLSP, "encoder": "clip:ViT-B-32", "weights": str(tmp_path / "no.pt")}
    path.write_text(json.dumps(stored))
    photo = tmp_path / "a.png"
    Image.fromarray(skdata.coffee()).save(photo)
    run = CliRunner().invoke(main, ["compare", str(photo), str(photo), "--data-root",
                                    str(tmp_path)])
    assert run.exit_code == 2 and "CLIP weights" in run.stderr and "Traceback" not in run.output


# ------------------------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Real photos shipped in installed packages, plus a corrupt file and a non-image."""
    folder = tmp_path_factory.mktemp("photos")
    good = write_photos(folder / "good", "astronaut.jpg", "coffee.png", "chelsea.jpg",
                        "grace_hopper.jpg", "china.jpg")
    return {"good": good, "bad": bad_inputs(folder, good / "astronaut.jpg")}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_album_and_compare_on_real_photos_with_bad_ones_among_them(tmp_path, photos):
    register_photobook(tmp_path)
    run = invoke("album", photos["good"], *photos["bad"].paths, "--places", 2, "--data-root",
                 tmp_path, "--format", "jsonl", "--batch-size", 2)
    photos["bad"].assert_reported(run)
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(rows) == 5 and sum(r["chosen"] for r in rows) == 2
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5] and all(r["reason"] for r in rows)
    good = sorted(photos["good"].iterdir())
    run = invoke("compare", good[0], good[1], "--data-root", tmp_path, "--format", "csv")
    assert run.exit_code == 0, run.output
    lines = run.stdout.splitlines()
    assert lines[0] == "photo,p_better,better_pick" and len(lines) == 3
    p = [float(line.split(",")[1]) for line in lines[1:]]
    assert sum(p) == pytest.approx(1, abs=1e-3)
    run = invoke("compare", good[0], photos["bad"].corrupt, "--data-root", tmp_path)
    assert run.exit_code == 1 and "unreadable image" in run.stderr and not run.stdout
    assert invoke("album", good[0], "--data-root", tmp_path).exit_code == 2  # no --places
    assert invoke("compare", photos["good"], good[0], "--data-root", tmp_path).exit_code == 2


def test_similar_without_a_pose_branch_ranks_the_folder(tmp_path, photos):
    register_pose(tmp_path, pose=False, pose_dim=0)
    query = photos["good"] / "astronaut.jpg"
    among = [arg for b in photos["bad"].paths for arg in ("--among", b)]
    run = invoke("similar", query, "--among", photos["good"], *among, "--data-root", tmp_path,
                 "--format", "jsonl")
    photos["bad"].assert_reported(run)
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]  # the query itself is left out
    assert str(query) not in {r["photo"] for r in rows}
    assert all(0 <= r["p_similar"] <= 1 for r in rows)
    assert rows == sorted(rows, key=lambda r: -r["p_similar"])
    none = invoke("similar", query, "--among", tmp_path / "nothing", "--data-root", tmp_path)
    assert none.exit_code == 1 and "no such file or folder" in none.stderr


def test_pose_backends_that_cannot_run_are_named(tmp_path, photos, monkeypatch):
    monkeypatch.setenv("LENSLAB_MEDIAPIPE_PYTHON", str(tmp_path / "none" / "python"))
    run = invoke("pose", photos["good"], "--data-root", tmp_path)
    assert run.exit_code == 2 and "mediapipe backend cannot run" in run.stderr
    assert "install_mediapipe.sh" in run.stderr and "Traceback" not in run.output
    run = invoke("pose", photos["good"], "--backend", "openpifpaf", "--data-root", tmp_path)
    assert run.exit_code == 2 and "needs --checkpoint" in run.stderr
    run = invoke("pose", photos["good"], "--backend", "annotations", "--data-root", tmp_path)
    assert run.exit_code == 2 and "ingest and catalogue landmark_photos" in run.stderr


def test_pose_finds_people_in_real_photos_writes_skeletons_and_names_bad_inputs(tmp_path,
                                                                                 photos):
    masks = tmp_path / "masks"
    run = invoke("pose", photos["good"], *photos["bad"].paths, "--masks", masks, "--format",
                 "jsonl")
    photos["bad"].assert_reported(run)
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    by_photo = {r["photo"].rsplit("/", 1)[-1]: r for r in rows if r["person"] <= 0}
    assert set(by_photo) == {"astronaut.jpg", "coffee.png", "chelsea.jpg", "grace_hopper.jpg",
                             "china.jpg"}
    for name in ("astronaut.jpg", "grace_hopper.jpg"):
        person = by_photo[name]
        assert person["person"] == 0 and person["nose_c"] > 0.5
        assert person["nose_y"] < person["left_shoulder_y"]  # the head above the shoulders
    assert by_photo["coffee.png"]["person"] == -1 and by_photo["coffee.png"]["nose_x"] is None
    skeleton = np.asarray(Image.open(by_photo["astronaut.jpg"]["mask"]))
    assert skeleton.shape == (256, 256) and skeleton.max() == 255
    assert np.asarray(Image.open(by_photo["coffee.png"]["mask"])).max() == 0
    table = invoke("pose", photos["good"] / "astronaut.jpg")
    assert table.exit_code == 0 and "keypoints found" in table.stdout


def test_help_has_examples():
    for command in ("pose", "similar", "album", "compare"):
        run = invoke(command, "--help")
        assert run.exit_code == 0 and "Example" in run.stdout, command
