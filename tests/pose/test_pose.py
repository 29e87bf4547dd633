"""Landmark pose similarity: the pose schema, backends, pairs, models and a real materialisation."""

import collections
import fractions

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from lenslab.formats.landmark_photos import COCO_KEYPOINTS
from lenslab.pose import backends as B
from lenslab.pose import pairs as P
from models.pose import siamese as M
from tests.support.packaged_photos import bad_inputs, write_photos

CPU = torch.device("cpu")
NOSE, L_SHOULDER, R_SHOULDER, L_HIP, R_HIP = 0, 5, 6, 11, 12

# openpifpaf's visualizers call Colormap.set_bad at import time (matplotlib >= 3.10 warns).
pytestmark = pytest.mark.filterwarnings("ignore:The set_bad function:PendingDeprecationWarning")


def _person(offset=(0.0, 0.0), score=0.9) -> P.PersonPose:
    kps = np.column_stack([np.linspace(10, 40, 17) + offset[0], np.linspace(5, 60, 17) + offset[1],
                           np.ones(17)])
    return P.PersonPose(kps, score)


# ------------------------------------------------------------------------------ schema, masks
def test_no_person_gives_one_empty_row_and_persons_are_ranked_and_capped():
    empty = P.pose_rows("img", "sha", 64, 64, [], "x", 2)
    assert len(empty) == 1 and empty[0]["person"] == -1 and empty[0]["nose_c"] == 0
    rows = P.pose_frame(P.pose_rows("img", "sha", 64, 64,
                                    [_person(score=0.2), _person(score=0.9), _person(score=0.5)],
                                    "x", 2))
    assert rows["person"].tolist() == [0, 1] and rows["score"].tolist() == [0.9, 0.5]
    assert list(rows.columns) == list(P.POSE_COLUMNS)


def test_a_person_cut_at_the_border_keeps_in_frame_keypoints_only():
    cut = P.in_frame(_person(offset=(0, 20)), 64, 64)  # y runs 25..80: the feet leave the frame
    kps = cut.keypoints
    inside = kps[:, 2] > 0
    assert 0 < inside.sum() < 17
    assert (kps[inside, 1] < 64).all() and np.isnan(kps[~inside, :2]).all()
    assert cut.bbox[1] + cut.bbox[3] <= 64
    assert P.in_frame(_person(offset=(500, 500)), 64, 64) is None  # wholly outside


def test_mask_draws_limbs_at_its_own_size_and_tiny_images_work():
    kps = P.keypoints_of(P.pose_frame(P.pose_rows("i", "s", 64, 64, [_person()], "x", 2)))
    mask = np.asarray(P.draw_mask(kps, 64, 64, 96))
    assert mask.shape == (96, 96) and mask.max() == 255
    assert np.asarray(P.draw_mask(np.zeros((0, 17, 3)), 16, 16, 16)).max() == 0


def test_pose_vectors_ignore_place_and_size_and_the_encoder_ignores_mirroring():
    rows = P.pose_rows("a", "s", 200, 200, [_person()], "x", 1)
    moved = P.PersonPose(_person().keypoints * [2, 2, 1] + [30, 10, 0], 0.9)
    rows += P.pose_rows("b", "s", 200, 200, [moved], "x", 1)
    rows += P.pose_rows("c", "s", 200, 200, [], "x", 1)
    v = P.pose_vectors(P.pose_frame(rows), ["a", "b", "c"])
    np.testing.assert_allclose(v[0], v[1], atol=1e-5)
    assert v[2].sum() == 0 and v[0, -1] == 1
    p = torch.from_numpy(v[:1])
    encoder = M.PoseEncoder()
    torch.testing.assert_close(encoder(p), encoder(M.mirror_poses(p)))
    assert M.pose_distance(p, M.mirror_poses(p))[0, 0] < 1e-5


# -------------------------------------------------------------------------------------- pairs
def _images(sites=6, poses=2, per_pose=3, empty=2) -> pd.DataFrame:
    rows = []
    for s in range(sites):
        for pose in [*[f"p{k}" for k in range(poses)], "_zz"]:
            for i in range(empty if pose == "_zz" else per_pose):
                image_id = f"landmark_photos:Data/s{s}/{pose}/{i}.png"
                rows.append({"image_id": image_id, "sha256": f"{s}-{pose}-{i}",
                             "site": f"s{s}", "pose": pose, "has_person": pose != "_zz"})
    return pd.DataFrame(rows)


def test_pairs_are_balanced_split_by_site_seeded_and_typed():
    images = _images()
    fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
    assert (P.image_groups(images) == images["site"]).all()
    split = P.split_groups(P.image_groups(images), fractions, 5)
    assert sorted(collections.Counter(split.values()).values()) == [1, 1, 4]
    images["split"] = images["site"].map(split)
    assert sorted(P.split_groups(["a", "b", "c"], fractions, 5).values()) == ["test", "train",
                                                                              "val"]
    with pytest.raises(ValueError, match="at least 3 groups"):
        P.split_groups(["a", "b", "a"], fractions, 5)
    mix = {"other_pose": 0.5, "no_person": 0.25, "other_site": 0.25}
    pairs = P.make_pairs(images, mix, 5)
    assert pairs["label"].sum() * 2 == len(pairs)
    pos = pairs[pairs["label"] == 1]
    assert len(pos) == 6 * 2 * 3  # C(3, 2) per folder
    assert ((pos["site_a"] == pos["site_b"]) & (pos["pose_a"] == pos["pose_b"])).all()
    neg = pairs[pairs["label"] == 0]
    assert set(neg["kind"]) == set(P.NEGATIVE_KINDS)
    assert (neg.loc[neg["kind"] == "no_person", "pose_b"] == "_zz").all()
    assert (neg.loc[neg["kind"] == "other_site", "site_a"]
            != neg.loc[neg["kind"] == "other_site", "site_b"]).all()
    assert P.images_in_several_splits(pairs, images) == []
    assert pairs.equals(P.make_pairs(images, mix, 5))
    assert not pairs.equals(P.make_pairs(images, mix, 6))
    counts = P.pair_counts(pairs)
    assert counts.loc["train", "total"] == 2 * counts.loc["train", "positive"]
    # a pair-level split (the seed's) leaks images, and the check sees it
    leaky = pairs.assign(split=np.where(np.arange(len(pairs)) % 10 == 0, "val", "train"))
    assert P.images_in_several_splits(leaky, images)


def test_two_sites_split_by_folder_and_still_no_image_is_in_two_splits():
    images = _images(sites=2, poses=3)
    assert P.image_groups(images).nunique() == 8  # 2 sites x (3 poses + _zz)
    for seed in range(5):
        groups, split = P.assign_splits(images, {"train": 0.6, "val": 0.2, "test": 0.2}, seed)
        assert (split.groupby(groups).nunique() == 1).all()  # a group stays whole
        pairs = P.make_pairs(images.assign(split=split), {"other_pose": 1, "no_person": 1,
                                                          "other_site": 1}, seed)
        for name in ("train", "val", "test"):  # positives and negatives everywhere
            assert set(pairs.loc[pairs["split"] == name, "label"]) == {0, 1}
        assert P.images_in_several_splits(pairs, images.assign(split=split)) == []


def test_role_model_is_the_earliest_earlier_photo_called_similar():
    images = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "site": ["s"] * 4,
                           "pose": ["x", "x", "y", "x"], "has_person": True,
                           "taken_at": pd.to_datetime(["2023-01-01", "2023-01-02", "2023-01-03",
                                                       "2023-01-04"])})
    scores = pd.DataFrame({"a": ["a", "a", "a", "b", "b", "c"],
                           "b": ["b", "c", "d", "c", "d", "d"],
                           "p_m": [0.9, 0.1, 0.2, 0.1, 0.8, 0.7]})
    roles = P.role_models(images, scores, "m").set_index("query")
    assert roles.loc["b", "predicted"] == "a" and roles.loc["b", "correct"]
    assert roles.loc["d", "true_role_model"] == "a" and roles.loc["d", "predicted"] == "b"
    assert pd.isna(roles.loc["a", "predicted"]) and roles.loc["a", "correct"]
    assert P.taken_at("Data/x/y/Firefox_Screenshot_2023-03-13T22-56-01.452Z.png") == \
        pd.Timestamp("2023-03-13 22:56:01.452")


# ------------------------------------------------------------------------------------- models
def _pair_data(n=24, d=8):
    g = torch.Generator().manual_seed(0)
    x, p = torch.randn(n, d, generator=g), torch.randn(n, P.POSE_VECTOR_DIM, generator=g)
    def pairs(k):
        a, b = torch.randint(0, n, (k,), generator=g), torch.randint(0, n, (k,), generator=g)
        return a, b, (a % 2 == b % 2).long()
    return M.PairData(x, p, {"train": pairs(64), "val": pairs(16), "test": pairs(16)})


def test_training_resumes_from_its_checkpoint_and_keeps_the_best_epoch(tmp_path):
    data = _pair_data()
    ck = tmp_path / "m.pt"
    torch.manual_seed(0)
    _, first = M.train_siamese(M.Siamese(8, True, hidden=16), data,
                               M.TrainSettings(2, 1e-2, patience=99), CPU, ck)
    assert len(first.history) == 2 and ck.is_file()
    torch.manual_seed(1)
    model, again = M.train_siamese(M.Siamese(8, True, hidden=16), data,
                                   M.TrainSettings(4, 1e-2, patience=99), CPU, ck)
    assert again.resumed_from == 2 and len(again.history) == 4
    losses = [h["val_loss"] for h in again.history]
    assert again.best_epoch == int(np.argmin(losses))
    p = M.predict_pairs(model, data.x, data.p, *data.pairs["test"][:2], CPU)
    assert p.shape == (16,) and ((p >= 0) & (p <= 1)).all()


def test_fine_tuned_siamese_runs_a_trunk_suffix_on_cached_prefix_maps():
    from models.backbones import build_trunk

    trunk = build_trunk("mobilenet_v2", pretrained=False)
    images = torch.randint(0, 255, (3, 3, 64, 64), dtype=torch.uint8)
    prefix = M.trunk_prefix(trunk, images, 17, CPU)
    model = M.Siamese(trunk.dim, False, suffix=M.TrunkSuffix(trunk, 17))
    a, b = torch.tensor([0, 1]), torch.tensor([1, 2])
    p = torch.zeros(3, P.POSE_VECTOR_DIM)
    logits = model.pair_logits(prefix, p, a, b, CPU)
    assert logits.shape == (2,)
    with torch.no_grad():  # the same as the whole trunk
        torch.testing.assert_close(model.features(prefix[:1]),
                                   trunk.eval()(images[:1].float() / 255), atol=1e-4, rtol=1e-4)


# ----------------------------------------------------------------------------------- backends
def test_annotations_backend_maps_coco_visibility_and_missing_images():
    row = {"image_id": "a", "person": 0, "bbox_x": 0.0, "bbox_y": 0.0, "bbox_w": 10.0,
           "bbox_h": 20.0}
    for k, name in enumerate(COCO_KEYPOINTS):
        row |= {f"{name}_x": 5.0, f"{name}_y": float(k), f"{name}_v": [0, 1, 2][k % 3]}
    backend = B.make_backend("annotations", annotations=pd.DataFrame([row]),
                             sizes={"a": (10, 20), "b": (10, 20)})
    found = backend.estimate(["a", "b"], [])
    assert found[1] == [] and found[0][0].score == 1.0
    assert found[0][0].keypoints[:3, 2].tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="unknown pose backend"):
        B.make_backend("openpose")


@pytest.fixture(scope="module")
def openpifpaf_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("opp") / "shufflenetv2k16-random.pt"
    net = B.new_openpifpaf("shufflenetv2k16")
    B.save_openpifpaf(net, "shufflenetv2k16", path)
    return net, path


def test_openpifpaf_checkpoints_reload_through_the_real_loading_path(openpifpaf_checkpoint,
                                                                     tmp_path):
    net, path = openpifpaf_checkpoint
    loaded = B.load_openpifpaf(path)  # lenslab's format (state_dict)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)
    # openpifpaf's own format pickles the network: allowlisted classes only, weights_only
    native = tmp_path / "native.pkl"
    torch.save({"model": net, "epoch": 7, "meta": {}}, native)
    again = B.load_openpifpaf(native)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v)
    bad = tmp_path / "bad.pkl"
    torch.save({"model": fractions.Fraction(1, 3)}, bad)
    with pytest.raises(ValueError, match="refusing to unpickle"):
        B.load_openpifpaf(bad)
    with pytest.raises(FileNotFoundError, match="neither a file nor a known name"):
        B.load_openpifpaf("no-such-checkpoint")


class _CallsOnLoad:
    """Pickles as a call of ``fn(*args)``: what a crafted checkpoint runs when it is loaded."""

    def __init__(self, fn, *args) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("call", ["os.system", "torch.save"])
def test_a_crafted_checkpoint_that_calls_a_function_is_refused(tmp_path, call):
    """os.system (outside the old module prefixes) and torch.save (inside them: the old
    "anything under torch." rule let it run and write a file) are both refused unloaded."""
    import os

    marker = tmp_path / "ran"
    payload = (_CallsOnLoad(os.system, f"touch {marker}") if call == "os.system"
               else _CallsOnLoad(torch.save, {"x": 1}, str(marker)))
    crafted = tmp_path / "crafted.pt"
    torch.save({"model": payload, "epoch": 1}, crafted)
    with pytest.raises(B.CheckpointError, match="refusing to unpickle"):
        B.load_openpifpaf(crafted)
    assert not marker.exists()


@pytest.mark.parametrize("base", sorted(B.NAMED_CHECKPOINTS))
def test_the_allow_list_covers_each_pinned_network_exactly(tmp_path, monkeypatch, base):
    """What the installed openpifpaf pickles for each pinned base network is allow-listed (so
    real checkpoints load); built without ImageNet weights, offline."""
    from openpifpaf.network import basenetworks

    for cls in (basenetworks.Resnet, basenetworks.MobileNetV3, basenetworks.MobileNetV2):
        monkeypatch.setattr(cls, "pretrained", False)
    path = tmp_path / f"{base}.pkl"
    torch.save({"model": B.new_openpifpaf(base), "epoch": 1, "meta": {}}, path)
    names = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    assert names <= B.ALLOWED_GLOBALS, names - B.ALLOWED_GLOBALS
    assert all(not n.startswith(("os.", "posix.", "builtins.", "subprocess.")) for n in names)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty torch hub cache, and no network: fetching fails as it does offline."""
    import urllib.error

    import torch.hub

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "hub" / "checkpoints"


def test_a_named_checkpoint_that_cannot_be_fetched_is_one_line_and_exit_2(hub_cache, tmp_path):
    from click.testing import CliRunner

    from lenslab.cli import main

    photo = write_photos(tmp_path / "photos", "astronaut.jpg") / "astronaut.jpg"
    run = CliRunner().invoke(main, ["pose", str(photo), "--backend", "openpifpaf",
                                    "--checkpoint", "shufflenetv2k16"])
    assert run.exit_code == 2, run.output
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "'shufflenetv2k16'" in run.stderr and "could not be fetched" in run.stderr
    assert "Traceback" not in run.output
    run = CliRunner().invoke(main, ["pose", str(photo), "--backend", "openpifpaf",
                                    "--checkpoint", "shufflenetv2k16-withdense"])  # not pinned
    assert run.exit_code == 2 and "neither a file nor a known name" in run.stderr


def test_a_named_checkpoint_is_checked_against_its_pinned_sha256(hub_cache, monkeypatch,
                                                                 openpifpaf_checkpoint):
    import hashlib
    import shutil

    import torch.hub

    _, path = openpifpaf_checkpoint
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    url = f"https://example.invalid/releases/shufflenetv2k16-test-{digest[:8]}.pkl"
    monkeypatch.setitem(B.NAMED_CHECKPOINTS, "test-net", B.NamedCheckpoint(url, digest[:8]))
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda url, dst, *a, **k: shutil.copyfile(path, dst))
    assert B.load_openpifpaf("test-net") is not None  # fetched into the cache, verified, loaded
    cached = hub_cache / f"shufflenetv2k16-test-{digest[:8]}.pkl"
    assert cached.is_file()
    cached.write_bytes(cached.read_bytes()[:-1] + b"!")  # the cached file altered afterwards
    with pytest.raises(B.CheckpointError, match="does not match the pinned"):
        B.load_openpifpaf("test-net")


def test_a_file_that_is_not_a_checkpoint_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"definitely not a torch file")
    with pytest.raises(B.CheckpointError, match="not a loadable checkpoint"):
        B.load_openpifpaf(junk)


def test_openpifpaf_decodes_images_end_to_end_into_the_schema(openpifpaf_checkpoint, tmp_path):
    _, path = openpifpaf_checkpoint
    paths = []
    for name, image in (("astronaut", Image.fromarray(skdata.astronaut()).resize((96, 96))),
                        ("tiny", Image.new("RGB", (16, 16), (90, 120, 150))),
                        ("wide", Image.fromarray(skdata.coffee()).resize((120, 80)))):
        paths.append(tmp_path / f"{name}.png")
        image.save(paths[-1])
    backend = B.make_backend("openpifpaf", checkpoint=str(path), device=CPU, batch_size=2)
    found = backend.estimate(["a", "t", "w"], paths)
    assert len(found) == 3
    rows = []
    for image_id, persons, size in zip(["a", "t", "w"], found, [(96, 96), (16, 16), (120, 80)],
                                       strict=True):
        for person in persons:
            assert person.keypoints.shape == (17, 3)
        rows += P.pose_rows(image_id, image_id, *size, persons, backend.name, 2)
    frame = P.pose_frame(rows)
    assert set(frame["image_id"]) == {"a", "t", "w"} and (frame["backend"] == "openpifpaf").all()
    assert (frame.groupby("image_id").size() <= 2).all()


@pytest.fixture(scope="module")
def mediapipe_results(tmp_path_factory):
    from matplotlib import cbook

    folder = tmp_path_factory.mktemp("mp")
    astronaut = Image.fromarray(skdata.astronaut())
    images = {
        "astronaut": astronaut,
        "grace_hopper": Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"),
        "empty": Image.new("RGB", (128, 128), (120, 160, 200)),  # no person
        "cut": astronaut.crop((0, 0, 512, 300)),  # the astronaut cut at the waist
        "tiny": astronaut.resize((16, 16)),
    }
    paths = []
    for name, image in images.items():
        paths.append(folder / f"{name}.png")
        image.save(paths[-1])
    found = B.make_backend("mediapipe").estimate(list(images), paths)
    return {name: (image.size, persons) for (name, image), persons in
            zip(images.items(), found, strict=True)}


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_mediapipe_finds_the_person_in_real_photos(mediapipe_results, name):
    (w, h), persons = mediapipe_results[name]
    person = P.top_persons(persons, w, h, 2)[0]
    k = person.keypoints
    head = k[NOSE, 1]
    shoulders = k[[L_SHOULDER, R_SHOULDER], 1].mean()
    assert (k[[NOSE, L_SHOULDER, R_SHOULDER], 2] > 0.5).all()
    assert head < shoulders
    hips = k[[L_HIP, R_HIP]]
    if (hips[:, 2] > 0).any():  # in frame
        assert shoulders < np.nanmean(hips[hips[:, 2] > 0, 1])
    x, y, bw, bh = person.bbox
    seen = k[:, 2] > 0
    assert ((k[seen, 0] >= x - 1) & (k[seen, 0] <= x + bw + 1)).all()
    assert ((k[seen, 1] >= y - 1) & (k[seen, 1] <= y + bh + 1)).all()
    assert bw * bh > 0.2 * w * h  # a person, not a speck


def test_mediapipe_bad_input(mediapipe_results):
    size, persons = mediapipe_results["empty"]
    rows = P.pose_rows("e", "e", *size, persons, "mediapipe", 2)
    assert len(rows) == 1 and rows[0]["person"] == -1
    (w, h), persons = mediapipe_results["cut"]
    cut = P.top_persons(persons, w, h, 2)[0]
    assert cut.keypoints[NOSE, 2] > 0 and np.isfinite(cut.keypoints[NOSE, :2]).all()
    shown = cut.keypoints[:, 2] > 0
    assert (cut.keypoints[shown, 1] < h).all()
    assert not shown[[15, 16]].any()  # the ankles are out of frame
    size, persons = mediapipe_results["tiny"]
    assert len(P.pose_rows("t", "t", *size, persons, "mediapipe", 2)) >= 1


# ---------------------------------------------------------------------------- the pipeline
@pytest.mark.slow
def test_pose_pipeline_materialises_and_meets_the_issue_targets(tmp_path):
    from assets.catalog import image_catalog
    from assets.ingestion import ingestion_assets
    from assets.pose import pose_assets, pose_checks
    from tests.support.one_source import ingest_and_catalog

    resources = ingest_and_catalog(tmp_path, "landmark_photos")  # scale 1.0: the default
    source = next(a for a in ingestion_assets if a.key.path[-1] == "landmark_photos")
    run_config = {"ops": {"similarity_report": {"config": {"bootstrap": 300}}}}
    result = dg.materialize([*pose_assets, *pose_checks, source, image_catalog],
                            selection=[a.key for a in pose_assets], resources=resources,
                            run_config=run_config, raise_on_error=True)
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"landmark_pairs_share_no_image": True,
                      "similarity_model_beats_chance": True}
    keypoints = result.asset_materializations_for_node("pose_keypoints")[0].metadata
    assert keypoints["backend"].value == "annotations"
    poses = pd.read_parquet(tmp_path / "pose" / "keypoints" / "pose_keypoints.parquet")
    assert (poses.loc[poses["image_id"].str.contains("/_zz/"), "person"] == -1).all()
    assert (tmp_path / "pose" / "masks" / "index.parquet").is_file()
    report = result.asset_materializations_for_node("similarity_report")[0].metadata
    image_only = report["frozen_test_accuracy"].value
    with_pose = report["frozen_pose_test_accuracy"].value
    assert image_only >= 0.65, image_only  # pretrained image-only beats chance by >= 15 points
    assert with_pose - image_only >= 0.08, (with_pose, image_only)  # the pose branch: >= 8
    out = tmp_path / "reports" / "pose"
    for name in ("metrics.json", "report.md", "neighbours.png"):
        assert (out / name).stat().st_size > 0, name
    for name in ("frozen", "frozen_pose", "finetuned", "finetuned_pose"):
        assert (tmp_path / "pose" / "models" / f"{name}.pt").is_file()

    # the report registered the variant chosen on validation, promoted past its check; the CLI
    # applies it (poses from BlazePose) and the pose backend to real photos, bad ones among them
    _cli_on_real_photos(tmp_path)


def _cli_on_real_photos(data_root):
    import json

    from click.testing import CliRunner

    from lenslab.cli import main
    from models.registry import entries

    (card,) = entries(data_root)
    assert card["family"] == "pose" and card["promoted"] and card["pose_backend"] == "annotations"
    assert card["model"] in ("frozen_pose", "finetuned_pose", "frozen", "finetuned")
    assert card["metrics"]["test_roc_auc_ci95"][0] > 0.5
    photos = write_photos(data_root / "photos", "astronaut.jpg", "coffee.png", "grace_hopper.jpg")
    Image.fromarray(skdata.astronaut()[:, ::-1]).save(photos / "astronaut_mirrored.jpg")
    bad = bad_inputs(photos, photos / "astronaut.jpg", not_image="notes.jpg")

    def run(*args):
        return CliRunner().invoke(main, [*map(str, args), "--data-root", str(data_root),
                                         "--format", "jsonl"])

    similar = run("similar", photos / "astronaut.jpg", "--among", photos, "--among", bad.missing)
    bad.assert_reported(similar)
    ranked = [json.loads(line) for line in similar.stdout.splitlines()]
    assert [r["photo"].rsplit("/", 1)[-1] for r in ranked][:1] == ["astronaut_mirrored.jpg"]
    assert {r["photo"].rsplit("/", 1)[-1] for r in ranked} == {
        "astronaut_mirrored.jpg", "coffee.png", "grace_hopper.jpg"}

    masks = data_root / "skeletons"
    pose = run("pose", photos, "--masks", masks)
    assert pose.exit_code == 1 and "notes.jpg: not an image" in pose.stderr
    people = {r["photo"].rsplit("/", 1)[-1]: r for r in map(json.loads,
                                                            pose.stdout.splitlines())}
    assert people["astronaut.jpg"]["person"] == 0 and people["coffee.png"]["person"] == -1
    assert len(list(masks.glob("*.png"))) == 4


def test_intervals_resample_sites_or_say_why_they_resample_folders():
    from lenslab.pose.figures import MIN_SITES, resampling_units

    def pairs(sites: int) -> pd.DataFrame:
        names = [f"S{i}" for i in range(sites)]
        return pd.DataFrame({"site_a": names, "site_b": names[1:] + names[:1],
                             "pose_a": "p1", "pose_b": "p2"})

    units, unit = resampling_units(pairs(MIN_SITES))
    assert unit == "site" and units.shape == (MIN_SITES, 2) and units[0].tolist() == ["S0", "S1"]
    units, unit = resampling_units(pairs(2))
    assert units[0].tolist() == ["S0::p1", "S1::p2"]
    assert unit.startswith("Site::Pose folder (only 2 test sites")
