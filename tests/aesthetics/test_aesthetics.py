"""Personalised aesthetics: worker split, k-shot draws, adapters, enhancement, a materialisation."""

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib import cbook
from PIL import Image
from skimage import data as skdata
from sklearn.datasets import load_sample_image

from lenslab.aesthetics import splits as L
from lenslab.edits import EditParams, apply_edits
from lenslab.errors import DataError
from models.aesthetics import networks as A
from models.backbones import build_trunk
from tests.support.packaged_photos import bad_inputs, write_photos

CPU = torch.device("cpu")
CUT = 16


def _ratings() -> pd.DataFrame:
    """Two test workers (120 and 110 ratings, own images) and six train workers (<105)."""
    rows = [(f"T{w}", f"img:t{w}_{i}", 1 + i % 5) for w, n in ((0, 120), (1, 110))
            for i in range(n)]
    rows += [(f"R{w}", f"img:r{i}", 1 + (i + w) % 5) for w in range(6) for i in range(40 + w)]
    return pd.DataFrame(rows, columns=["worker", "image_id", "score"])


def test_rater_split_rebuilds_the_count_rule_and_rejects_leaks():
    ratings = _ratings()
    workers = L.rater_split(ratings)
    assert set(workers.loc[workers["split"] == "test", "worker"]) == {"T0", "T1"}
    assert L.split_fingerprint(workers) == L.split_fingerprint(workers.iloc[::-1])
    truth = workers.assign(split=np.where(workers["worker"] == "T1", "train", workers["split"]))
    assert L.check_against_truth(workers, truth) == ["T1"]
    leak = pd.concat([ratings, pd.DataFrame([("R0", "img:t0_1", 3)], columns=ratings.columns)])
    with pytest.raises(DataError, match="rated by both"):
        L.rater_split(leak)


def test_kshot_draws_are_seeded_and_short_workers_are_skipped_with_a_message():
    ratings = _ratings()
    workers = L.rater_split(ratings)
    draws, skipped = L.kshot_draws(ratings, workers, [10, 105], [2, 1], 10, seed=7)
    again, _ = L.kshot_draws(ratings, workers, [10, 105], [2, 1], 10, seed=7)
    pd.testing.assert_frame_equal(draws, again)
    assert skipped == ["worker T1 skipped at k=105: 110 ratings, needs 105 shots + 10 held out"]
    shots = draws[draws["role"] == "shot"].groupby(["worker", "k", "repeat"]).size()
    assert shots.to_dict() == {("T0", 10, 0): 10, ("T0", 10, 1): 10, ("T0", 105, 0): 105,
                               ("T1", 10, 0): 10, ("T1", 10, 1): 10}
    first = draws[(draws["k"] == 10) & (draws["worker"] == "T0")]
    picked = [set(d.loc[d["role"] == "shot", "image_id"]) for _, d in first.groupby("repeat")]
    assert picked[0] != picked[1]  # repeats draw different shots, each with its own seed
    assert first.groupby("repeat")["seed"].nunique().eq(1).all()
    means = L.mean_ratings(ratings, workers)
    assert not any(i.startswith("img:t") for i in means.index)  # test workers' images excluded


@pytest.fixture(scope="module")
def generic() -> tuple[A.Prefix, A.AestheticNet]:
    trunk = build_trunk("mobilenet_v2")
    return A.Prefix(trunk, CUT).eval(), A.AestheticNet(trunk, CUT).eval()


def test_adapters_start_exactly_at_the_generic_model_and_are_small(generic, tmp_path):
    _, net = generic
    x = torch.randn(6, 160, 2, 2)
    adapted = A.with_method(net, "adapters")
    np.testing.assert_array_equal(A.predict(net, x, CPU), A.predict(adapted, x, CPU))
    counts = {m: A.count_parameters(A.with_method(net, m), m) for m in A.METHODS}
    assert counts["head"] == 1281 and counts["adapters"] <= 0.1 * counts["full"]
    names = A.personal_names(adapted, "adapters")
    assert any(".adapter." in n for n in names) and all(
        ".adapter." in n or "head." in n or ".weight" in n or ".bias" in n for n in names)
    # train a little, store only the user's parameters, load them on top of the shared model
    y = torch.linspace(1, 5, 6)
    settings = A.PersonalSettings(steps=5, holdout=0.34, lr={"adapters": 1e-2}, anchor=0.0,
                                  lr_shots=6, min_stop=1)
    tuned, _ = A.personalise(net, "adapters", x, y, settings, seed=0, device=CPU)
    path = tmp_path / "user.pt"
    torch.save(A.personal_state(tuned, "adapters"), path)
    loaded = A.load_personal(net, "adapters", path)
    np.testing.assert_allclose(A.predict(loaded, x, CPU), A.predict(tuned, x, CPU), atol=1e-6)
    assert path.stat().st_size < 0.15 * sum(p.numel() * 4 for p in net.parameters())
    with pytest.raises(ValueError, match="expects"):
        A.load_personal(net, "full", path)


def test_personalisation_never_moves_when_the_shots_say_nothing(generic):
    _, net = generic
    x = torch.randn(20, 160, 2, 2)
    y = torch.full((20,), 3.0)  # constant ratings: nothing to learn, step 0 must win
    settings = A.PersonalSettings(steps=3, holdout=0.25, lr=dict.fromkeys(A.METHODS, 1e-2),
                                  anchor=1e-3, lr_shots=20, min_stop=5)
    for method in A.METHODS:
        tuned, steps = A.personalise(net, method, x, y, settings, seed=1, device=CPU)
        assert steps == 0, method
        assert A.spearman(A.predict(net, x, CPU), A.predict(tuned, x, CPU)) > 0.999
    # too few held-aside shots to validate anything: the generic model, untouched
    y = torch.linspace(1, 5, 20)
    few = A.PersonalSettings(steps=3, holdout=0.2, lr={"full": 1e-2}, anchor=0.0, min_stop=5)
    tuned, steps = A.personalise(net, "full", x[:10], y[:10], few, seed=1, device=CPU)
    assert steps == 0
    assert all(torch.equal(a, b) for a, b in zip(tuned.stages.parameters(),
                                                  net.stages.parameters(), strict=True))


def _photos(size: int) -> list[torch.Tensor]:
    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        hopper = np.asarray(Image.open(fh).convert("RGB"))
    arrays = [skdata.astronaut(), skdata.chelsea(), hopper, load_sample_image("china.jpg"),
              skdata.coffee()]
    return [torch.from_numpy(np.asarray(Image.fromarray(a).resize((size, size)))).float()
            .div(255).permute(2, 0, 1) for a in arrays]


def test_a_rater_who_likes_warm_bright_photos_gets_warmer_brighter_edits(generic):
    prefix, net = generic
    photos = _photos(64)
    r = np.random.default_rng(0)
    xs, ys = [], []
    for photo in photos[:4]:  # the fifth photo is held out
        # contrast and saturation vary too but do not matter to this rater
        for exposure, temperature, contrast, saturation in r.uniform(-0.8, 0.8, (30, 4)):
            edit = EditParams(exposure=float(exposure), temperature=float(temperature),
                              contrast=float(contrast), saturation=float(saturation))
            xs.append(apply_edits(photo.permute(1, 2, 0), edit).permute(2, 0, 1))
            ys.append(exposure + temperature)
    with torch.no_grad():
        features = prefix(torch.stack(xs))
    rater = A.with_method(net, "head")
    A.fit_head_ridge(rater, features, torch.tensor(ys, dtype=torch.float32), alpha=0.1)
    scorer = A.Scorer(prefix, rater, 64)
    held_out = photos[4]
    edited, values = A.edit_ascent(scorer, held_out, steps=15, lr=0.1, bound=1.0)
    # judged by the rater's known taste, not by the model ascended: the chosen edit is warmer
    # and brighter, and so are the edited pixels
    assert values["exposure"] > 0.1 and values["temperature"] > 0.1, values
    assert _brightness(edited) > _brightness(held_out) + 0.05
    assert _warmth(edited) > _warmth(held_out) + 0.03
    maps = A.saliency(scorer, held_out[None], smooth_samples=2)
    assert maps.shape == (1, 64, 64) and maps.max() == pytest.approx(1.0)


def _brightness(x: torch.Tensor) -> float:
    return float(x.mean())


def _warmth(x: torch.Tensor) -> float:
    return float((x[0] - x[2]).mean())  # red over blue


class _KnownTaste(torch.nn.Module):
    """A scorer whose preference is known exactly: brighter and warmer is better."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3)) + (x[:, 0] - x[:, 2]).mean(dim=(1, 2))


def test_pixel_ascent_moves_the_photo_the_way_a_known_scorer_prefers():
    photo = _photos(64)[2]
    out = A.pixel_ascent(_KnownTaste(), photo, steps=5, step_size=0.01, epsilon=0.03)
    change = out - photo
    assert float(change.abs().max()) <= 0.03 + 1e-6
    # red up, blue down, everything brighter (except where a pixel was already at 1 or 0)
    assert float(change[0].mean()) > 0.02 and float(change[2].mean()) < 0.0
    assert _brightness(out) > _brightness(photo) + 0.005
    assert _warmth(out) > _warmth(photo) + 0.04
    _, values = A.edit_ascent(_KnownTaste(), photo, steps=15, lr=0.1, bound=1.0)
    assert values["exposure"] > 0.3 and values["temperature"] > 0.3, values


def test_worker_intervals_resample_workers():
    r = np.random.default_rng(0)
    per_worker = pd.DataFrame({"k": 100, "method": "adapters",
                               "worker": [f"T{i}" for i in range(8)],
                               "delta": r.normal(0.05, 0.05, 8), "generic_rho": 0.4,
                               "personal_rho": r.normal(0.45, 0.05, 8)})
    got = L.worker_intervals(per_worker, resamples=500, seed=0)[(100, "adapters")]
    lo, hi = got["median_ci95"]
    assert lo <= np.median(per_worker["delta"]) <= hi and hi - lo > 0.02
    assert got["units"] == 8 and got["unit"] == "test worker"
    assert got["generic_rho_ci95"] == (0.4, 0.4)


def test_summaries_of_deltas():
    s = A.summarise_deltas([0.1, -0.05, 0.2])
    assert s["median"] == pytest.approx(0.1) and s["improved"] == pytest.approx(2 / 3)
    assert A.summarise_deltas([])["n"] == 0


FAST = {"rater_splits": {"ks": [10, 100, 200], "repeats": [1, 1, 1]},
        "aesthetic_model": {"epochs": 1},
        "personal_adapters": {"steps": 3},
        "enhanced_photos": {"photos_per_worker": 2, "steps": 4},
        "saliency_maps": {"samples": 1, "smoothgrad_n": 2, "workers": 1}}


@pytest.mark.slow
def test_aesthetics_pipeline_materialises(tmp_path):
    from assets.aesthetics import aesthetics_assets, aesthetics_checks
    from tests.support.one_source import ingest_and_catalog

    resources = ingest_and_catalog(tmp_path, "flickr_aes", scale=0.25)

    run = dg.materialize([*aesthetics_assets, *aesthetics_checks], resources=resources,
                         run_config={"ops": {k: {"config": v} for k, v in FAST.items()}},
                         raise_on_error=True)
    splits = run.asset_materializations_for_node("rater_splits")[0].metadata
    assert splits["test_workers"].value == 2 and splits["skipped"].value == 2  # k=200
    out = tmp_path / "reports" / "aesthetics"
    metrics = json.loads((out / "metrics.json").read_text())
    table = {(r["k"], r["method"]) for r in metrics["results"]}
    assert table == {(k, m) for k in (10, 100) for m in A.METHODS}  # all side by side
    assert metrics["parameters"]["adapters"] <= 0.1 * metrics["parameters"]["full"]
    report = (out / "report.md").read_text()
    assert "skipped at k=200" in report and "| 100 | adapters |" in report
    for name in ("delta_spearman.png", "enhancements.png"):
        assert (out / name).stat().st_size > 0
    assert (tmp_path / "aesthetics" / "saliency" / "saliency.png").stat().st_size > 0
    enhanced = pd.read_parquet(tmp_path / "aesthetics" / "enhanced" / "enhancement.parquet")
    assert len(enhanced) == 4 and (enhanced["pixel_score"] >= enhanced["score"]).all()
    # each user's adapters load on top of the shared model
    files = sorted((tmp_path / "aesthetics" / "personal" / "adapters" / "k100").glob("*.pt"))
    assert len(files) == 2

    # the report registered the generic scorer with each test worker's adapters; the command
    # applies them to real photos, answering the good inputs and naming the bad ones
    _rate_and_enhance_with_the_registered_model(tmp_path)


def _rate_and_enhance_with_the_registered_model(root) -> None:
    from click.testing import CliRunner

    from lenslab.cli import main
    from models.registry import entries

    (card,) = entries(root)
    assert card["asset"] == "aesthetic_model" and len(card["users"]) == 2
    assert card["metrics"]["test_workers"] == 2 and "val_spearman" in card["metrics"]
    photos = write_photos(root / "photos", "grace_hopper.jpg", "astronaut.png", "chelsea.png",
                          "coffee.jpg", "china.jpg")
    bad = bad_inputs(root, photos / "coffee.jpg", not_image="readme.png")
    user = sorted(card["users"])[0]
    opts = ["--data-root", str(root), "--model-version", card["version"], "--format", "jsonl"]
    scores = {}
    for who in (None, user):
        run = CliRunner().invoke(main, ["rate", str(photos), *bad.paths, *opts,
                                        *(["--user", who] if who else [])])
        bad.assert_reported(run)
        rows = [json.loads(line) for line in run.stdout.splitlines()]
        assert len(rows) == 5 and all(np.isfinite(r["score"]) for r in rows)
        scores[who] = [r["score"] for r in rows]
    assert scores[None] != scores[user]  # the user's adapters change the scores
    out = root / "chelsea_enhanced.jpg"
    run = CliRunner().invoke(main, ["enhance", str(photos / "chelsea.png"), "--user", user, "-o",
                                    str(out), *opts])
    assert run.exit_code == 0, run.output
    row = json.loads(run.stdout)
    assert set(A.EDITS) <= set(row) and {"score_before", "score_after"} <= set(row)
    with Image.open(out) as im:
        assert im.size == (451, 300)
    run = CliRunner().invoke(main, ["enhance", str(photos / "coffee.jpg"), *bad.paths, "--user",
                                    user, "-o", str(root / "enhanced"), "--mode", "pixels", *opts])
    bad.assert_reported(run)
    assert (root / "enhanced" / "coffee_enhanced.png").is_file()
