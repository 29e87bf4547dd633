"""Style autoencoder, photographer model, similar-photographers query, and the assets end to end."""

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from skimage import data
from skimage.transform import resize

from lenslab.edits import EditParams, apply_edits
from lenslab.paths import DataLayout
from lenslab.style import evaluation as style_models
from models.style import autoencoder as ae
from models.style import photographer as ph
from tests.support.packaged_photos import bad_inputs, write_photos


def _tiny_images(n: int = 12, size: int = 32) -> torch.Tensor:
    torch.manual_seed(0)
    base = torch.rand(n, 3, 1, 1)
    return (base + 0.1 * torch.rand(n, 3, size, size)).clamp(0, 1)


def test_autoencoder_shapes_and_finite_loss():
    model = ae.StyleAutoencoder(size=32, embedding_dim=8, width=4)
    x = _tiny_images()
    recon, z = model(x)
    assert recon.shape == x.shape and z.shape == (12, 8)
    loss, pixel, feature = ae.style_loss(model, x, ae.FeatureScale.fit(x), 0.1)
    loss.backward()
    assert torch.isfinite(loss) and pixel > 0 and feature >= 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with pytest.raises(ValueError):
        ae.StyleAutoencoder(size=30)


def test_autoencoder_trains_resumes_and_logs(tmp_path):
    x = _tiny_images()
    cfg = ae.TrainConfig(size=32, embedding_dim=8, width=4, epochs=2, batch_size=4, seed=3)
    ckpt, tb = tmp_path / "ck.pt", tmp_path / "tb"
    first = ae.train(x[:8], x[8:], cfg, checkpoint=ckpt, log_dir=tb, log=lambda _: None)
    assert len(first.history) == 2 and first.history[-1]["train_loss"] < first.history[0][
        "train_loss"] * 1.5
    assert list(tb.glob("events.out.tfevents.*"))
    state = torch.load(ckpt, weights_only=True)
    assert {"model", "optimizer", "scheduler", "epoch"} <= set(state) and state["epoch"] == 1
    # resuming to 3 epochs runs only the third, and keeps the earlier history
    more = ae.train(x[:8], x[8:], ae.TrainConfig(**{**cfg.__dict__, "epochs": 3}),
                    checkpoint=ckpt, log=lambda _: None)
    assert more.resumed_from == 2 and len(more.history) == 3
    # seeded: the same run gives the same embeddings; eval mode, one model state
    again = ae.train(x[:8], x[8:], cfg, log=lambda _: None)
    torch.testing.assert_close(ae.embed(first.model, x), ae.embed(again.model, x))


TRAIN_CHILD = """
import json, sys
from pathlib import Path
import torch
from models.style import autoencoder as ae

if len(sys.argv) > 3:  # die half-way through writing the Nth checkpoint, as a SIGKILL would
    import io, os, signal
    real_save, calls = torch.save, [0]

    def dying_save(obj, f, *args, **kwargs):
        calls[0] += 1
        if calls[0] < int(sys.argv[3]):
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer)
        half = buffer.getvalue()[: len(buffer.getvalue()) // 2]
        if hasattr(f, "write"):
            f.write(half)
            f.flush()
        else:
            Path(f).write_bytes(half)
        os.kill(os.getpid(), signal.SIGKILL)

    torch.save = dying_save
torch.set_num_threads(1)
torch.manual_seed(0)
x = (torch.rand(160, 3, 1, 1) + 0.1 * torch.rand(160, 3, 32, 32)).clamp(0, 1)
cfg = ae.TrainConfig(size=32, embedding_dim=8, width=8, epochs=5, batch_size=8, seed=3)
checkpoint, out = Path(sys.argv[1]), Path(sys.argv[2])
result = ae.train(x[:128], x[128:], cfg, checkpoint=checkpoint, log=lambda _: None)
out.write_text(json.dumps({"history": result.history, "resumed_from": result.resumed_from,
                           "embedding": ae.embed(result.model, x).sum(0).tolist()}))
"""


def _train_child(checkpoint, out, *die_in_save):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", TRAIN_CHILD, str(checkpoint), str(out),
                             *map(str, die_in_save)], env=env)


def test_training_killed_with_sigkill_mid_epoch_resumes_to_the_same_result(tmp_path):
    """A training process SIGKILLed mid-epoch, after its first checkpoint: the rerun resumes
    from that checkpoint (written atomically, so never torn) and ends where an uninterrupted
    run ends, to the last metric."""
    import signal
    import time

    killed_ckpt, killed_out = tmp_path / "killed" / "ck.pt", tmp_path / "killed.json"
    child = _train_child(killed_ckpt, killed_out)
    deadline = time.monotonic() + 300
    while not killed_ckpt.exists():
        assert child.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL
    assert not killed_out.exists()  # it did not finish
    done = torch.load(killed_ckpt, weights_only=True)["epoch"]  # loads: not torn
    assert done < 4
    assert [p.name for p in killed_ckpt.parent.iterdir()] == ["ck.pt"]  # no temp file left

    rerun = _train_child(killed_ckpt, killed_out)
    whole = _train_child(tmp_path / "whole" / "ck.pt", tmp_path / "whole.json")
    assert rerun.wait(timeout=600) == 0 and whole.wait(timeout=600) == 0
    resumed, uninterrupted = (json.loads(p.read_text()) for p in (killed_out,
                                                                   tmp_path / "whole.json"))
    assert resumed["resumed_from"] == done + 1 >= 1 and uninterrupted["resumed_from"] == 0
    assert len(resumed["history"]) == len(uninterrupted["history"]) == 5
    for a, b in zip(resumed["history"], uninterrupted["history"], strict=True):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-7)
    assert resumed["embedding"] == pytest.approx(uninterrupted["embedding"], rel=1e-5, abs=1e-6)


def test_training_killed_while_writing_a_checkpoint_resumes_from_the_previous_one(tmp_path):
    """Killed half-way through writing its third checkpoint: the second is still whole (the
    write went to a temporary file beside it), so the rerun resumes from it and ends as an
    uninterrupted run does. A bare torch.save to the checkpoint leaves it torn."""
    import signal

    ckpt, out = tmp_path / "killed" / "ck.pt", tmp_path / "killed.json"
    child = _train_child(ckpt, out, 3)
    assert child.wait(timeout=600) == -signal.SIGKILL and not out.exists()
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1
    assert [p.name for p in ckpt.parent.iterdir() if not p.name.startswith(".")] == ["ck.pt"]
    rerun = _train_child(ckpt, out)
    whole = _train_child(tmp_path / "whole" / "ck.pt", tmp_path / "whole.json")
    assert rerun.wait(timeout=600) == 0 and whole.wait(timeout=600) == 0
    resumed, uninterrupted = (json.loads(p.read_text()) for p in (out, tmp_path / "whole.json"))
    assert resumed["resumed_from"] == 2
    assert resumed["embedding"] == pytest.approx(uninterrupted["embedding"], rel=1e-5, abs=1e-6)
    assert resumed["history"][-1] == pytest.approx(uninterrupted["history"][-1], rel=1e-5)


def test_photographer_model_identifies_separable_styles():
    r = np.random.default_rng(0)
    n_phot, per = 5, 12
    centres = r.normal(0, 3, (n_phot, 6))
    labels = np.repeat(np.arange(n_phot), per)
    feats = torch.tensor(centres[labels] + r.normal(0, 0.5, (len(labels), 6)), dtype=torch.float32)
    y = torch.tensor(labels)
    order = torch.from_numpy(r.permutation(len(labels)))
    train_idx, val_idx, test_idx = order[:36], order[36:48], order[48:]
    result = ph.train(feats, feats, y, train_idx, val_idx, n_phot,
                      ph.TrainConfig(epochs=150, seed=1))
    with torch.no_grad():
        top1 = ph.topk_accuracy(result.model.logits(feats[test_idx]), y[test_idx], 1)
        style_top1 = ph.topk_accuracy(result.model.style_scores(feats[test_idx]), y[test_idx], 1)
    assert top1 >= 0.9 and style_top1 >= 0.9
    assert result.model.predicted_style().shape == (n_phot, 6)
    # one persistent embedding table, trained by the optimiser (not a detached copy)
    assert result.model.photographers.weight.requires_grad


def test_similar_photographers_and_cli(tmp_path, capsys):
    table = pd.DataFrame({"photographer": ["a", "b", "c"], "e0": [1.0, 0.9, -1.0],
                          "e1": [0.0, 0.1, 0.0]})
    result = ph.similar_photographers(table.set_index("photographer"), "a", k=2)
    assert list(result["photographer"]) == ["b", "c"]
    with pytest.raises(KeyError, match="a name or a number from 0 to 2"):
        ph.similar_photographers(table.set_index("photographer"), "zz")
    # folder sources name their photographers: a number is a position in the model's list
    by_number = ph.similar_photographers(table.set_index("photographer"), "0", k=2)
    assert list(by_number["photographer"]) == ["b", "c"]
    with pytest.raises(KeyError):
        ph.similar_photographers(table.set_index("photographer"), 3)
    numbered = table.assign(photographer=["2", "0", "1"]).set_index("photographer")
    assert list(ph.similar_photographers(numbered, "2", k=1)["photographer"]) == ["0"]
    path = ph.embeddings_path(tmp_path)
    path.parent.mkdir(parents=True)
    table.to_parquet(path)
    assert ph.main(["similar", "a", "-k", "1", "--data-root", str(tmp_path)]) == 0
    assert "b" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        ph.main(["--help"])


def test_split_holds_shared_bases_out_entirely():
    base = np.array(["a", "a", "a", "b", "b", "b", "c", "d", "e", "f", "g", "h"])
    parts = style_models.split(len(base), base, seed=0, heldout_base_fraction=0.5)
    held = set(base[parts == "heldout_base"])
    assert len(held) == 1 and held <= {"a", "b"}
    assert not set(base[parts == "train"]) & held
    assert (style_models.split(len(base), base, seed=0) == parts).all()
    plain = style_models.split(10, None, seed=0)
    assert "heldout_base" not in set(plain) and (plain == "train").sum() == 6


def test_identification_intervals_resample_base_scenes_and_pair_the_baseline():
    # 10 bases x 3 renders; the model is right on every render, the baseline on the whole of
    # every other base (so its errors come in base-sized clumps)
    units = np.repeat([f"b{i}" for i in range(10)], 3)
    labels = np.tile([0, 1, 2], 10)
    right = torch.nn.functional.one_hot(torch.from_numpy(labels), 3).float()
    wrong = torch.nn.functional.one_hot(torch.from_numpy((labels + 1) % 3), 3).float()
    base_ok = np.repeat(np.arange(10) % 2 == 0, 3)
    scores = {"model": right, "base": torch.where(torch.from_numpy(base_ok)[:, None], right,
                                                  wrong)}
    rows = {"test": np.arange(30)}
    ident, versus = style_models.identification(scores, labels, rows, units, "base scene",
                                                baseline="base", resamples=500, seed=0)
    assert ident["test/model"]["top1"] == 1.0 and ident["test/model"]["top1_ci95"] == (1.0, 1.0)
    b = ident["test/base"]
    assert b["top1"] == 0.5 and b["units"] == 10 and b["unit"] == "base scene"
    lo, hi = b["top1_ci95"]
    assert lo < 0.5 < hi and hi - lo > 0.4  # 10 independent units, not 30
    d = versus["test/model"]
    assert d["difference"] == 0.5 and d["ci95"][0] > 0.1 and d["baseline"] == "base"


def _photographer_folders(tree) -> None:
    """<tree>/<photographer>/<scene>.jpg: 3 presets, each applied to the same 8 crops of real
    photos (FiveK's layout: every photographer edits every scene, one file name per scene)."""
    presets = {"warm_vivid": EditParams(temperature=0.8, saturation=0.6),
               "dark_vignette": EditParams(exposure=-0.8, vignette=0.7),
               "gritty_mono": EditParams(saturation=-0.8, contrast=0.5, grain=0.04)}
    photos = [resize(img, (128, 128), anti_aliasing=True).astype(np.float32)
              for img in (data.astronaut(), data.chelsea(), data.coffee())]
    r = np.random.default_rng(0)
    for b in range(8):
        y, x = r.integers(0, 32, 2)
        crop = photos[b % 3][y:y + 96, x:x + 96]
        for name, preset in presets.items():
            path = tree / name / f"a{b + 1:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((apply_edits(crop, preset) * 255).round().astype(np.uint8)).save(
                path, quality=92)
    (tree / "dark_vignette" / "a0009.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (tree / "notes.txt").write_text("exported from the catalogue")


@pytest.mark.slow
def test_photographer_folders_train_on_their_folder_names(tmp_path):
    """A folder-per-photographer tree (local mode) goes through ingestion and the catalog, and
    the style assets learn its folder names: held-out scenes identified, the CLI answers with
    the photographers' names."""
    from click.testing import CliRunner

    from assets.style import style_assets
    from lenslab.cli import main
    from tests.support.one_source import ingest_and_catalog

    tree = tmp_path / "export"
    _photographer_folders(tree)
    root = tmp_path / "data"
    resources = ingest_and_catalog(root, "photographer_folders",
                                   config={"mode": "local", "path": str(tree)})
    layout = DataLayout(root)
    report = json.loads(layout.ingest_report("photographer_folders").read_text())
    # local mode takes only what the format names: a stray file beside the folders is not read
    assert report["rejected"] == []
    assert not list((root / "raw" / "photographer_folders").rglob("notes.txt"))
    quarantined = pd.read_parquet(layout.quarantine)
    assert list(quarantined["image_id"]) == ["photographer_folders:dark_vignette/a0009.jpg"]
    assert quarantined["reason"].iloc[0].startswith("corrupt image")
    result = dg.materialize(
        style_assets, resources=resources,
        run_config={"ops": {
            "global_features": {"config": {"source": "photographer_folders", "batch_size": 8,
                                           "size": 64}},
            "photographer_clusters": {"config": {"clusters": 3}},
            "style_autoencoder": {"config": {"size": 32, "epochs": 2, "width": 4,
                                             "batch_size": 8}},
            "photographer_model": {"config": {"epochs": 80}}}},
    )
    assert result.success
    emb = pd.read_parquet(style_models.model_dir(layout, "style_autoencoder")
                          / "embeddings.parquet")
    assert len(emb) == 24 and emb.filter(like="z").notna().all().all()
    assert list((style_models.model_dir(layout, "style_autoencoder") / "tb").iterdir())
    report_dir = style_models.report_dir(layout)
    metrics = json.loads((report_dir / "metrics.json").read_text())
    assert metrics["source"] == "photographer_folders" and metrics["label_origin"] == "folders"
    assert metrics["photographer_names"] == ["dark_vignette", "gritty_mono", "warm_vivid"]
    ident = metrics["identification"]
    # half the scenes never reach training (all three renders held out): identified far above
    # chance (1/3) all the same
    assert ident["heldout_base/embedding_classifier"]["images"] == 12
    assert ident["heldout_base/embedding_classifier"]["top1"] >= 0.6
    assert metrics["clustering"]["ari_standardised"] > 0.5
    assert (report_dir / "report.md").is_file() and len(list(report_dir.glob("*.png"))) == 5
    meta = result.asset_materializations_for_node("style_report")[0].metadata
    assert "heldout_base_embedding_classifier_top1" in meta and "ari_standardised" in meta
    assert ph.main(["similar", "warm_vivid", "-k", "2", "--data-root", str(root)]) == 0

    run = CliRunner().invoke(main, ["photographer", str(tree / "warm_vivid"), "--top-k", "1",
                                    "--format", "jsonl", "--data-root", str(root)])
    assert run.exit_code == 0, run.output
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(rows) == 8 and {r["photographer"] for r in rows} <= set(
        metrics["photographer_names"])
    assert sum(r["photographer"] == "warm_vivid" for r in rows) >= 6


@pytest.mark.slow
def test_default_source_meets_the_targets_and_the_cli_applies_the_registered_model(tmp_path):
    """The embedded default (30 photographers): held-out edits and never-seen bases both
    reported and >= 90 % top-1; the registered model answers `lenslab photographer` on real
    photos, names a corrupt file, a non-image and a missing file, and exits 1."""
    from click.testing import CliRunner

    from assets.style import style_assets
    from lenslab.cli import main
    from models import registry
    from tests.support.one_source import ingest_and_catalog

    resources = ingest_and_catalog(tmp_path, "oxford_pets")
    assert dg.materialize(style_assets, resources=resources).success
    metrics = json.loads((style_models.report_dir(DataLayout(tmp_path))
                          / "metrics.json").read_text())
    ident = metrics["identification"]
    assert metrics["photographers"] == 30 and metrics["labels"] == "true_photographers"
    for part in ("test", "heldout_base"):
        for method in ("embedding_classifier", "baseline_logreg_features"):
            assert ident[f"{part}/{method}"]["images"] >= 60
        assert ident[f"{part}/embedding_classifier"]["top1"] >= 0.9, ident
    assert metrics["target_met"]
    clusters = metrics["clustering"]
    assert clusters["ari_standardised"] > clusters["ari_seed"]

    model, card = registry.load_model(tmp_path, "photographer")
    assert card["promoted"] and len(card["architecture"]["photographers"]) == 30
    assert model.model.photographers.weight.shape[0] == 30 and not model.training

    photos = write_photos(tmp_path / "photos", "astronaut.jpg", "coffee.png", "grace_hopper.jpg")
    bad = bad_inputs(tmp_path, photos / "astronaut.jpg")
    run = CliRunner().invoke(main, ["photographer", str(photos), *bad.paths, "--top-k", "3",
                                    "--format", "jsonl", "--data-root", str(tmp_path)])
    bad.assert_reported(run)
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(rows) == 9 and {r["rank"] for r in rows} == {1, 2, 3}
    assert {r["photographer"] for r in rows} <= set(card["architecture"]["photographers"])
    assert all(0 <= r["probability"] <= 1 for r in rows)

    run = CliRunner().invoke(main, ["similar-photographers", "7", "-k", "4", "--format", "csv",
                                    "--data-root", str(tmp_path)])
    assert run.exit_code == 0 and len(run.stdout.strip().splitlines()) == 5
    run = CliRunner().invoke(main, ["similar-photographers", "nobody", "--data-root",
                                    str(tmp_path)])
    assert run.exit_code == 2 and "unknown photographer" in run.stderr
    # the module's own query still answers from the asset's embeddings
    assert ph.main(["similar", "7", "-k", "2", "--data-root", str(tmp_path)]) == 0
