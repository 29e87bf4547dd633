"""The aesthetics registry entry (generic scorer + per-user states) and `lenslab rate/enhance`.

The end-to-end run with the model the pipeline trains is in tests/aesthetics/test_aesthetics.py;
here a
small untrained entry checks the round trip and the command's contract quickly."""

import json

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from lenslab.cli import main
from models import registry
from models.aesthetics import networks as A
from tests.support.packaged_photos import bad_inputs, write_photos

ARCH = {"backbone": "mobilenet_v2", "image_size": 64, "frozen_stages": 16}
ENHANCE = {"size": 64, "steps": 2, "step_size": 0.01, "epsilon": 0.06, "edit_lr": 0.1,
           "edit_bound": 1.0}
USER = "A1TESTWORKER7"


def _register(root, promote=True):
    torch.manual_seed(0)
    scorer = A.build_from_card({"architecture": ARCH})
    adapted = A.with_method(scorer.net, "adapters")
    with torch.no_grad():  # a user whose parameters differ from the generic model's
        for name, p in adapted.named_parameters():
            if name in A.personal_names(adapted, "adapters"):
                p.add_(0.05 * torch.randn_like(p))
    card = {"asset": "aesthetic_model", "code_version": "test", "architecture": ARCH,
            "metrics": {"val_spearman": 0.5}, "params": {"seed": 1}, "data": {"splits": "v1"},
            "backbone": {"name": "mobilenet_v2", "weights": "none"}, "enhance": ENHANCE,
            "users": {USER: {"method": "adapters", "k": 100, "state": "users/0000"}}}
    entry = registry.register(root, "aesthetics", scorer, card=card, promote=promote,
                              extra_states={"users/0000": A.personal_state(adapted, "adapters")})
    return entry, scorer.eval(), adapted.eval()


def test_the_generic_scorer_and_a_users_parameters_round_trip(tmp_path):
    entry, scorer, adapted = _register(tmp_path)
    model, card = registry.load_model(tmp_path, "aesthetics")
    x = torch.rand(2, 3, 80, 80)
    with torch.no_grad():
        assert torch.allclose(model(x), scorer(x), atol=1e-6)
        state = registry.load_extra_state(tmp_path, card, card["users"][USER]["state"])
        mine = A.Scorer(model.prefix, A.apply_personal(model.net, "adapters", state, USER), 64)
        assert torch.allclose(mine(x), A.Scorer(scorer.prefix, adapted, 64)(x), atol=1e-6)
        assert not torch.allclose(mine(x), model(x))
    assert card["extra_states"]["users/0000"]["sha256"]
    (entry.path / "users" / "0000.pt").write_bytes(b"tampered")
    with pytest.raises(registry.RegistryError, match="sha256"):
        registry.load_extra_state(tmp_path, card, "users/0000")


def _photos(tmp_path):
    good = write_photos(tmp_path / "photos", "astronaut.jpg", "china.png", "grace_hopper.jpg")
    return good, bad_inputs(tmp_path, good / "astronaut.jpg")


def _rows(run):
    return [json.loads(line) for line in run.stdout.splitlines()]


def test_rate_generic_and_personal_bad_inputs_exit_1(tmp_path):
    _register(tmp_path)
    good, bad = _photos(tmp_path)
    args = ["rate", str(good), *bad.paths, "--data-root", str(tmp_path), "--format", "jsonl"]
    generic = CliRunner().invoke(main, args)
    personal = CliRunner().invoke(main, [*args, "--user", USER])
    for run in (generic, personal):
        bad.assert_reported(run)
        assert sorted(r["photo"].rsplit("/", 1)[-1] for r in _rows(run)) == [
            "astronaut.jpg", "china.png", "grace_hopper.jpg"]
    assert {r["model"] for r in _rows(generic)} == {"generic"}
    assert {r["model"] for r in _rows(personal)} == {f"{USER} (adapters, k=100)"}
    assert [r["score"] for r in _rows(generic)] != [r["score"] for r in _rows(personal)]


def test_unknown_user_is_a_usage_error_that_says_how_to_list_users(tmp_path):
    _register(tmp_path)
    good, _ = _photos(tmp_path)
    run = CliRunner().invoke(main, ["rate", str(good), "--user", "nobody",
                                    "--data-root", str(tmp_path)])
    assert run.exit_code == 2 and "unknown user 'nobody'" in run.stderr
    assert "lenslab rate --list-users" in run.stderr
    listed = CliRunner().invoke(main, ["rate", "--list-users", "--data-root", str(tmp_path),
                                       "--format", "csv"])
    assert listed.exit_code == 0 and listed.stdout.splitlines() == ["user,method,k",
                                                                    f"{USER},adapters,100"]
    assert CliRunner().invoke(main, ["rate", "--data-root", str(tmp_path)]).exit_code == 2
    none = CliRunner().invoke(main, ["rate", str(good), "--data-root", str(tmp_path / "x")])
    assert none.exit_code == 2 and "no promoted 'aesthetics' model" in none.stderr


@pytest.mark.parametrize("mode", ["edits", "pixels"])
def test_enhance_writes_the_photo_and_reports_the_edit_and_scores(tmp_path, mode):
    _register(tmp_path)
    good, _ = _photos(tmp_path)
    out = tmp_path / "out.jpg"
    run = CliRunner().invoke(main, ["enhance", str(good / "china.png"), "--user", USER, "-o",
                                    str(out), "--mode", mode, "--data-root", str(tmp_path),
                                    "--format", "jsonl"])
    assert run.exit_code == 0, run.output
    (row,) = _rows(run)
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (640, 427)  # the photo's own size
    assert {"score_before", "score_after"} <= set(row) and row["out"] == str(out)
    keys = set(A.EDITS) if mode == "edits" else {"max_pixel_change"}
    assert keys <= set(row)
    if mode == "pixels":
        assert row["max_pixel_change"] <= ENHANCE["epsilon"] + 1e-6
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically


def test_enhance_several_photos_into_a_folder_with_bad_inputs_exit_1(tmp_path):
    _register(tmp_path)
    good, bad = _photos(tmp_path)
    out = tmp_path / "enhanced"
    run = CliRunner().invoke(main, ["enhance", str(good), *bad.paths, "--user", USER, "-o",
                                    str(out), "--steps", "1", "--data-root", str(tmp_path)])
    bad.assert_reported(run)
    assert sorted(p.name for p in out.iterdir()) == [
        "astronaut_enhanced.png", "china_enhanced.png", "grace_hopper_enhanced.png"]
    assert "not an image" in run.stderr and "Traceback" not in run.output
    one_file = CliRunner().invoke(main, ["enhance", str(good), "--user", USER, "-o",
                                         str(tmp_path / "x.png"), "--data-root", str(tmp_path)])
    assert one_file.exit_code == 2 and "give a folder" in one_file.stderr


def test_help_has_examples():
    for args in (["rate", "--help"], ["enhance", "--help"]):
        run = CliRunner().invoke(main, args)
        assert run.exit_code == 0 and "Example" in run.stdout

