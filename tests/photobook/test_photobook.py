"""Photobook rater: plain logic, the encoders (real open_clip code), and one end-to-end run."""

import io
import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from lenslab.photobook import rating as pb
from lenslab.scaling import Standardiser
from models.photobook import encoders as mp
from tests.support.packaged_photos import bad_inputs, write_photos

SEED = 7


def _bt_data(n_photos=120, dim=12, n_pairs=1500, scale=3.0, seed=0):
    """Embeddings whose quality is a known direction; Bradley-Terry pair labels."""
    r = np.random.default_rng(seed)
    e = r.normal(size=(n_photos, dim)) * r.uniform(0.5, 3.0, dim)  # unequal feature scales
    direction = r.normal(size=dim)
    quality = (e / e.std(0)) @ direction / np.sqrt(dim)
    i, j = r.integers(n_photos, size=(2, n_pairs))
    keep = i != j
    i, j = i[keep], j[keep]
    y = r.random(len(i)) < pb.sigmoid(scale * (quality[i] - quality[j]))
    return e, quality, pb.Pairs(i, j, y)


def test_split_keeps_near_duplicate_groups_whole_and_follows_fractions():
    groups = np.repeat(np.arange(200), np.random.default_rng(0).integers(1, 4, 200))
    split = pb.split_groups(groups, {"train": 0.6, "val": 0.2, "test": 0.2}, SEED)
    frame = pd.DataFrame({"g": groups, "s": split})
    assert (frame.groupby("g")["s"].nunique() == 1).all()
    shares = frame["s"].value_counts(normalize=True)
    assert abs(shares["train"] - 0.6) < 0.03 and abs(shares["test"] - 0.2) < 0.03
    again = pb.split_groups(groups, {"train": 0.6, "val": 0.2, "test": 0.2}, SEED)
    assert (again == split).all()


def test_near_duplicates_are_grouped_by_similarity():
    r = np.random.default_rng(1)
    base = r.normal(size=(10, 32))
    z = np.r_[base, base[:3] + 0.05 * r.normal(size=(3, 32))]  # three near-copies
    groups = pb.near_duplicate_groups(z, 0.9)
    assert groups.max() + 1 == 10
    assert (groups[10:] == groups[:3]).all()
    # an extra link (near-identical pixels) joins photos the embedding keeps apart
    also = np.zeros((13, 13), bool)
    also[4, 7] = True
    linked = pb.near_duplicate_groups(z, 0.9, also)
    assert linked.max() + 1 == 9 and linked[4] == linked[7] and groups[4] != groups[7]


def test_pair_splits_hold_out_photos():
    split = np.array(["train", "train", "val", "test"])
    pairs = pb.Pairs(np.array([0, 0, 2, 1, 3]), np.array([1, 2, 3, 3, 2]), np.ones(5, bool))
    which, strict = pb.pair_splits(pairs, split)
    assert which.tolist() == ["train", "val", "test", "test", "test"]
    assert not strict.any()
    by_split = pb.split_pairs(pairs, split, tiers=np.array([0, 4, 0, 9]), tier_gap=3)
    # the annotated training pair, then the one tier pair among the training photos (0 over 1)
    assert by_split.train.first.tolist() == [0, 0] and by_split.train.second.tolist() == [1, 1]
    assert len(by_split.val) == 1 and len(by_split.test) == len(by_split.strict_test) == 3
    assert len(pb.split_pairs(pairs, split).train) == 1


def test_tier_pairs_put_the_better_tier_first():
    tiers = np.array([0, 3, 1, 5])
    pairs = pb.tier_pairs(tiers, np.array([0, 1, 3]), 3)
    assert sorted(zip(pairs.first.tolist(), pairs.second.tolist(), strict=True)) == [
        (0, 1), (0, 3)]
    assert len(pb.tier_pairs(tiers, np.arange(4), 0)) == 0


def test_learned_vector_orders_held_out_photos_and_is_calibrated_on_val():
    e, quality, pairs = _bt_data()
    split = pb.split_groups(np.arange(len(e)), {"train": 0.6, "val": 0.2, "test": 0.2}, SEED)
    by_split = pb.split_pairs(pairs, split)
    train, val, test = by_split.train, by_split.val, by_split.test
    std = Standardiser.fit(e[split == "train"])
    learned = pb.fit_learned_vector(e, train, val, std, [1e-3, 1e-2, 0.1, 1.0, 10.0])
    assert len(learned.curve) == 5 and learned.c in (1e-3, 1e-2, 0.1, 1.0, 10.0)
    truth_order = quality[test.first] > quality[test.second]
    gaps = pb.differences(e, test) @ learned.vector
    assert pb.pair_accuracy(gaps, truth_order) > 0.9
    scale = pb.fit_scale(pb.differences(e, val) @ learned.vector, val.y)
    result = pb.evaluate_vector(e, learned.vector, scale, test, by_split.strict_test, quality,
                                units=np.arange(len(e)), bins=10, seed=SEED, resamples=200,
                                name="t")
    assert result["accuracy_truth"]["value"] > 0.9
    assert result["ece"] < 0.1
    head = result[result["headline"]]
    assert result["headline"] == "accuracy_labels_strict"
    assert head["n"] == by_split.strict_test.sum() < result["accuracy_labels"]["n"]
    assert head["ci95"][0] <= head["value"] <= head["ci95"][1] and head["unit"] == pb.UNIT


def test_near_duplicate_groups_are_scored_against_the_true_bursts():
    bursts = np.array([0, 0, 0, 1, 1, 2, 3])
    exact = pb.burst_agreement(bursts + 10, bursts)
    assert exact["precision"] == exact["recall"] == 1.0 and exact["burst_pairs"] == 4
    # burst 0 split in two, bursts 2 and 3 (singles) wrongly merged
    groups = np.array([0, 0, 5, 1, 1, 2, 2])
    got = pb.burst_agreement(groups, bursts)
    assert got["precision"] == pytest.approx(2 / 3) and got["recall"] == pytest.approx(2 / 4)


def test_vector_cosines_are_the_cosines_of_the_vectors():
    vectors = {pb.LEARNED: np.array([2.0, 0.0]), "same": np.array([5.0, 0.0]),
               "opposite": np.array([-1.0, 0.0]), "diagonal": np.array([1.0, 1.0]),
               "other_space": np.array([1.0, 0.0, 0.0])}
    assert pb.vector_cosines(vectors) == pytest.approx(
        {"same": 1.0, "opposite": -1.0, "diagonal": np.sqrt(0.5)})


def test_platt_scale_recovers_the_true_temperature():
    r = np.random.default_rng(2)
    gaps = r.normal(size=20000)
    y = r.random(len(gaps)) < pb.sigmoid(2.5 * gaps)
    assert pb.fit_scale(gaps, y) == pytest.approx(2.5, rel=0.08)


def test_ece_is_small_when_calibrated_and_large_when_not():
    r = np.random.default_rng(3)
    p = r.random(20000)
    y = r.random(len(p)) < p
    table, ece = pb.reliability(p, y, 10)
    assert ece < 0.02 and table["count"].sum() == len(p)
    assert pb.reliability(np.clip(p * 2.0 - 0.5, 0, 1), y, 10)[1] > 0.1
    assert pb.ece_noise_floor(p[:500], 10, SEED, draws=50) > pb.ece_noise_floor(p, 10, SEED,
                                                                               draws=5)


def test_album_skips_near_duplicates_and_says_why():
    r = np.random.default_rng(4)
    z = r.normal(size=(6, 40))
    z[1] = z[0] + 0.01 * r.normal(size=40)  # photo 1 is a burst shot of photo 0
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    names = [f"p{i}" for i in range(6)]
    album = pb.select_album(scores, z, 3, 0.9, names)
    assert album.loc[album["chosen"], "photo"].tolist() == ["p0", "p2", "p3"]
    dup = album.set_index("photo").loc["p1", "reason"]
    assert dup.startswith("near-duplicate of p0")
    assert album.set_index("photo").loc["p5", "reason"].startswith("album full")
    with pytest.raises(ValueError, match="at least one place"):
        pb.select_album(scores, z, 0, 0.9, names)


def test_annotated_pairs_name_unknown_photos():
    ids = pd.Series(["a", "b"])
    with pytest.raises(ValueError, match="not in the embeddings"):
        pb.annotated_pairs(pd.DataFrame({"left": ["a"], "right": ["zz"], "winner": ["left"]}),
                           ids)


# ------------------------------------------------------------------------------------ encoders

def _photos():
    return [Image.fromarray(skdata.astronaut()), Image.fromarray(skdata.chelsea())]


def test_mlsp_encoder_keeps_low_level_stages():
    enc = mp.MlspEncoder(64)
    e = enc.encode_images(_photos())
    assert e.shape == (2, 1656) and np.isfinite(e).all()
    dark = enc.encode_images([Image.fromarray((skdata.astronaut() * 0.3).astype(np.uint8))])
    assert not np.allclose(dark[0, :16], e[0, :16], atol=1e-3)  # exposure reaches stage 3


def test_clip_path_runs_the_real_open_clip_model_and_tokenizer(tmp_path, monkeypatch):
    """Random weights saved as a checkpoint stand in for the pretrained file (none offline)."""
    import os

    import open_clip

    # an empty open_clip cache, while the torchvision cache (MobileNetV2) stays where it is
    monkeypatch.setenv("TORCH_HOME", os.path.dirname(torch.hub.get_dir()))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert mp.resolve_clip_weights(None) is None
    assert isinstance(mp.build_encoder("auto", image_size=64), mp.MlspEncoder)
    with pytest.raises(FileNotFoundError, match="no CLIP"):
        mp.build_encoder("clip")
    with pytest.raises(FileNotFoundError, match="do not exist"):
        mp.resolve_clip_weights(str(tmp_path / "missing.pt"))

    torch.manual_seed(0)
    weights = tmp_path / "vit_b_32.pt"
    torch.save(open_clip.create_model(mp.CLIP_MODEL, pretrained=None).state_dict(), weights)
    enc = mp.build_encoder("auto", clip_weights=str(weights))
    assert isinstance(enc, mp.ClipEncoder) and enc.pretrained and enc.name == "clip:ViT-B-32"
    images = enc.encode_images(_photos())
    texts = enc.encode_texts(["visually appealing photo", "a picture that is not appealing"])
    assert images.shape == (2, 512) and texts.shape == (2, 512)
    assert np.allclose(np.linalg.norm(images, axis=1), 1, atol=1e-4)
    assert not np.allclose(texts[0], texts[1])  # the tokenizer tells the prompts apart


# ---------------------------------------------------------------------------------- end to end

@pytest.mark.slow
def test_photobook_pipeline_rates_held_out_pairs_and_serves_the_rater(tmp_path):
    from starlette.testclient import TestClient

    from assets.photobook import photobook_assets, photobook_checks
    from lenslab.params import param
    from lenslab.web.photobook import create_app
    from tests.support.one_source import ingest_and_catalog

    # the default scale: on pairs of two held-out photos, half of it leaves too few photo
    # groups for an interval clear of chance (the check fails, the rater is not promoted)
    resources = ingest_and_catalog(tmp_path, "photo_preferences")
    result = dg.materialize([*photobook_assets, *photobook_checks], resources=resources,
                            raise_on_error=True)
    emb = result.asset_materializations_for_node("image_embeddings")[0].metadata
    assert emb["encoder"].value == "mobilenet_v2_mlsp" and emb["photos"].value == 250
    checks = result.get_asset_check_evaluations()
    assert {c.check_name for c in checks if c.passed} >= {"photobook_splits_share_no_photo"}

    out = pb.PhotobookLayout(tmp_path)
    provenance = json.loads(out.provenance.read_text())
    assert provenance["vectors"]["learned"]["C"] in param("photobook.c_grid")
    assert provenance["vectors"]["prompt_appealing"]["available"] is False
    assert provenance["encoder"]["encoder"] == "mobilenet_v2_mlsp"
    rater = json.loads(out.rater.read_text())
    learned = rater["vectors"]["learned"]
    # the must-show figures exist and are sane at this small scale
    assert learned["accuracy_labels"]["ci95"][0] > 0.5
    assert learned["headline"] == "accuracy_labels_strict"
    assert 0 < learned["accuracy_labels_strict"]["n"] < learned["accuracy_labels"]["n"]
    assert learned["accuracy_truth"]["value"] > 0.6
    assert 0 <= learned["ece"] < 0.15 and learned["scale"] > 0
    for name in ("metrics.json", "report.md", "reliability.png", "album.png", "album.csv"):
        assert (out.report / name).stat().st_size > 0, name
    album = pd.read_csv(out.report / "album.csv")
    assert album["chosen"].sum() == 8 and album["reason"].notna().all()
    assert "Held-out pairwise accuracy" in (out.report / "report.md").read_text()

    # the web page loads what the pipeline wrote
    client = TestClient(create_app(tmp_path))
    photos = [skdata.astronaut(), skdata.coffee()]
    files = {}
    for key, pixels in zip(("photo_a", "photo_b"), photos, strict=True):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG")
        files[key] = (f"{key}.jpg", buf.getvalue(), "image/jpeg")
    response = client.post("/compare", files=files, data={"vector": "learned"})
    assert response.status_code == 200 and 'id="p0"' in response.text

    # the rater registered (promoted only past its check); the CLI applies it to real photos
    _cli_on_real_photos(tmp_path, checks)

    # the CLIP path through the same assets (random weights saved as the "pretrained" file):
    # prompt master vectors from the real text tower, their cosine with the learned one
    import open_clip

    torch.manual_seed(0)
    weights = tmp_path / "vit_b_32.pt"
    torch.save(open_clip.create_model(mp.CLIP_MODEL, pretrained=None).state_dict(), weights)
    root = tmp_path / "clip"
    resources = ingest_and_catalog(root, "photo_preferences", 0.2)
    clip_config = {"encoder": "clip", "clip_weights": str(weights)}
    dg.materialize(photobook_assets, resources=resources, raise_on_error=True,
                   run_config={"ops": {"image_embeddings": {"config": clip_config},
                                       "master_vectors": {"config": {
                                           "clip_weights": str(weights)}}}})
    clip_out = pb.PhotobookLayout(root)
    assert json.loads(clip_out.embeddings.with_name("encoder.json").read_text())[
        "encoder"] == "clip:ViT-B-32"
    vectors = json.loads(clip_out.rater.read_text())["vectors"]
    assert vectors["prompt_photobook"]["available"] and "ece" in vectors["prompt_photobook"]
    cosines = json.loads((clip_out.report / "metrics.json").read_text())["cosines"]
    assert {"prompt_appealing", "prompt_photobook", "prompt_not_appealing"} <= set(cosines)
    # each reported cosine is the cosine of the vectors written to vectors.npz, computed here
    arrays = np.load(clip_out.vectors)
    learned_vector = arrays["vector_learned"]
    for name, c in cosines.items():
        v = arrays[f"vector_{name}"]
        expected = v @ learned_vector / (np.linalg.norm(v) * np.linalg.norm(learned_vector))
        assert c == pytest.approx(expected, abs=1e-6), name
    # the prompt vectors are CLIP text embeddings times their sign: "not appealing" points
    # against its text's own embedding, so a dropped sign shows up here
    prompts = {p["name"]: p for p in param("photobook.prompts")}
    texts = mp.build_encoder("clip", clip_weights=str(weights)).encode_texts(
        [prompts["not_appealing"]["text"]])
    assert prompts["not_appealing"].get("sign", 1) == -1
    np.testing.assert_allclose(arrays["vector_prompt_not_appealing"], -texts[0], atol=1e-5)


def _cli_on_real_photos(data_root, checks):

    from click.testing import CliRunner

    from lenslab.cli import main
    from models.registry import entries

    (card,) = entries(data_root)
    check = next(c for c in checks if c.check_name == "photobook_learned_beats_baseline")
    assert card["family"] == "photobook" and card["promoted"] == check.passed
    assert card["encoder"]["encoder"] == "mobilenet_v2_mlsp" and card["metrics"]["test_pairs"] > 0
    photos = write_photos(data_root / "photos", "astronaut.jpg", "chelsea.jpg", "coffee.jpg",
                          "china.jpg", "grace_hopper.jpg")
    Image.fromarray(skdata.astronaut()).save(photos / "astronaut_again.png")  # a near-duplicate
    bad = bad_inputs(data_root, photos / "chelsea.jpg")

    def run(*args):
        return CliRunner().invoke(main, [*map(str, args), "--data-root", str(data_root),
                                         "--model-version", card["version"],
                                         "--format", "jsonl"])

    album = run("album", photos, *bad.paths, "--places", 3)
    bad.assert_reported(album)
    rows = [json.loads(line) for line in album.stdout.splitlines()]
    assert len(rows) == 6 and sum(r["chosen"] for r in rows) == 3
    names = {r["photo"].rsplit("/", 1)[-1]: r for r in rows}
    copies = sorted((names["astronaut.jpg"], names["astronaut_again.png"]),
                    key=lambda r: r["rank"])
    assert copies[1]["reason"].startswith("near-duplicate of") and not copies[1]["chosen"]

    compare = run("compare", photos / "chelsea.jpg", photos / "coffee.jpg")
    assert compare.exit_code == 0, compare.output
    p = [json.loads(line)["p_better"] for line in compare.stdout.splitlines()]
    assert len(p) == 2 and sum(p) == pytest.approx(1, abs=1e-3)
    broken = run("compare", photos / "chelsea.jpg", bad.corrupt)
    assert broken.exit_code == 1 and f"{bad.corrupt}: unreadable image" in broken.stderr


def test_the_rater_check_blocks_only_a_rater_no_better_than_chance():
    from assets.photobook import _learned_problems

    head = pb.HEADLINE

    def v(value, ci, seed):
        return {"learned": {head: {"value": value, "ci95": ci}},
                "seed_ranksvm": {head: {"value": seed, "ci95": ci}}}

    assert _learned_problems(v(0.8, (0.7, 0.9), 0.6)) == ([], False)
    problems, blocking = _learned_problems(v(0.62, (0.45, 0.78), 0.55))  # small data
    assert problems == ["learned CI touches 0.5"] and not blocking  # not promoted, warns
    assert _learned_problems(v(0.49, (0.35, 0.62), 0.45))[1]  # no better than chance
    problems, blocking = _learned_problems(v(0.6, (0.52, 0.66), 0.8))  # under the baseline
    assert problems == ["learned ≤ seed RankSVM"] and not blocking  # not promoted, report shows
