"""The model registry and the `lenslab` command: versions, promotion, loading, bad inputs."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skimage import data as skdata

from lenslab.cli import main
from models import registry
from models.selfie.classifiers import build_from_card
from tests.support.packaged_photos import bad_inputs, write_photos

ARCH = {"backbone": "mobilenet_v2", "hidden": 32, "frozen": 0, "image_size": 64}


def _register(root, promote=True, **card):
    torch.manual_seed(0)
    model = build_from_card({"architecture": ARCH})
    return registry.register(root, "selfie", model, promote=promote, card={
        "asset": "selfie_classifier", "code_version": "test", "architecture": ARCH,
        "metrics": {"test_roc_auc": 0.8}, "params": {"seed": 1}, "data": {"labels": "v1"},
        "backbone": {"name": "mobilenet_v2", "weights": "none"}, **card})


def test_an_entry_round_trips_and_only_a_promoted_one_is_used(tmp_path):
    first = _register(tmp_path)
    second = _register(tmp_path, promote=False)  # e.g. failed its quality check
    model, card = registry.load_model(tmp_path, "selfie")
    assert card["version"] == first.version and not model.training
    assert (first.path / "card.md").read_text().startswith("# selfie model")
    listed = {c["version"]: c["promoted"] for c in registry.entries(tmp_path)}
    assert listed == {first.version: True, second.version: False}
    reloaded, _ = registry.load_model(tmp_path, "selfie", second.version)
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(model(x), reloaded(x))  # same seed, same weights


def test_a_card_from_an_incompatible_version_is_a_clear_error(tmp_path):
    entry = _register(tmp_path)
    card = json.loads((entry.path / "card.json").read_text())
    (entry.path / "card.json").write_text(json.dumps({**card, "card_format": 99}))
    with pytest.raises(registry.RegistryError, match="card format 99"):
        registry.load_model(tmp_path, "selfie")


def test_no_promoted_model_is_a_clear_error(tmp_path):
    _register(tmp_path, promote=False)
    with pytest.raises(registry.RegistryError, match="no promoted 'selfie' model"):
        registry.load_model(tmp_path, "selfie")


def test_selfie_answers_the_good_inputs_and_names_the_bad_ones_with_exit_1(tmp_path):
    _register(tmp_path)
    good = write_photos(tmp_path / "photos", "astronaut.jpg", "chelsea.png")
    bad = bad_inputs(tmp_path, good / "astronaut.jpg")
    run = CliRunner().invoke(main, ["selfie", str(good), *bad.paths, "--data-root", str(tmp_path),
                                    "--format", "jsonl"])
    bad.assert_reported(run)
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert sorted(r["photo"].rsplit("/", 1)[-1] for r in rows) == ["astronaut.jpg", "chelsea.png"]
    assert all(0 <= r["p_good"] <= 1 for r in rows)


def test_all_good_inputs_exit_0_and_csv_has_a_header(tmp_path):
    _register(tmp_path)
    good = write_photos(tmp_path / "photos", "astronaut.jpg", "chelsea.png")
    run = CliRunner().invoke(main, ["selfie", str(good / "*.jpg"), "--data-root", str(tmp_path),
                                    "--format", "csv"])
    assert run.exit_code == 0, run.output
    assert run.stdout.splitlines()[0] == "photo,verdict,p_good"


def test_models_lists_the_registry_and_usage_errors_exit_2(tmp_path):
    _register(tmp_path)
    run = CliRunner().invoke(main, ["models", "--data-root", str(tmp_path)])
    assert run.exit_code == 0 and "selfie" in run.stdout and "test_roc_auc=0.8" in run.stdout
    assert CliRunner().invoke(main, ["selfie"]).exit_code == 2
    assert CliRunner().invoke(main, ["selfie", "x.jpg", "--format", "xml"]).exit_code == 2
    empty = CliRunner().invoke(main, ["selfie", "x.jpg", "--data-root", str(tmp_path / "none")])
    assert empty.exit_code == 2 and "no promoted 'selfie' model" in empty.stderr


def test_help_has_examples():
    for args in (["--help"], ["selfie", "--help"], ["models", "--help"]):
        run = CliRunner().invoke(main, args)
        assert run.exit_code == 0 and "Example" in run.stdout


def test_grayscale_and_rgba_photos_are_converted(tmp_path):
    _register(tmp_path)
    Image.fromarray(skdata.camera()).save(tmp_path / "gray.png")
    Image.fromarray(np.dstack([skdata.astronaut(), np.full((512, 512), 128, np.uint8)])).save(
        tmp_path / "rgba.png")
    run = CliRunner().invoke(main, ["selfie", str(tmp_path / "gray.png"),
                                    str(tmp_path / "rgba.png"), "--data-root", str(tmp_path)])
    assert run.exit_code == 0, run.output


def test_inputs_are_decoded_a_batch_at_a_time_and_bad_files_are_named(tmp_path):
    from lenslab.cli.common import find_images

    good = skdata.astronaut()[::8, ::8]
    for i in range(4):
        Image.fromarray(good).save(tmp_path / f"p{i}.png")
    (tmp_path / "p1.png").write_bytes((tmp_path / "p0.png").read_bytes()[:200])  # truncated
    (tmp_path / "notes.jpg").write_text("not a photo")
    inputs = find_images([str(tmp_path), str(tmp_path / "gone.jpg")])
    assert inputs.rejected == [(str(tmp_path / "gone.jpg"), "no such file or folder")]
    sizes = []
    for chunk in inputs.batches(2, "test"):
        sizes.append(len(chunk))
        assert all(im.mode == "RGB" for _, im in chunk)
    assert sizes == [1, 1, 1]  # (notes, p0), (p1, p2), (p3): one bad file in each of the first two
    assert {why.split(":")[0] for _, why in inputs.rejected} == {
        "no such file or folder", "not an image", "unreadable image"}


def test_an_empty_folder_is_reported_like_an_empty_glob(tmp_path):
    _register(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no photos here")
    for arg in (tmp_path / "empty", tmp_path / "notes", tmp_path / "empty" / "*.jpg"):
        run = CliRunner().invoke(main, ["selfie", str(arg), "--data-root", str(tmp_path)])
        assert run.exit_code == 1, (arg, run.output)
        assert f"lenslab: {arg}: no " in run.stderr and "Traceback" not in run.output
