"""The layout's rules hold: layers point down, no cycles, each system is one Dagster group, and an
asset's code version and dvc.yaml deps follow every project file its module really runs."""

from __future__ import annotations

import configparser
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from lenslab.params import REPO_ROOT
from orchestration.definitions import defs
from orchestration.dvc_stages import build_dvc_pipeline
from orchestration.kit.code_deps import PROJECT_PACKAGES, code_files
from orchestration.kit.stages import stage_of
from orchestration.launch import main as launch_main
from orchestration.launch import resolve

SYSTEMS = ("style", "selfie", "photobook", "pose", "aesthetics")


def _stages() -> dict[str, object]:
    graph = defs.resolve_asset_graph()
    return {key.to_user_string(): stage_of(graph.get(key).metadata)
            for key in graph.materializable_asset_keys}


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout


def test_the_core_layer_names_every_core_module():
    """The lowest layer lists lenslab's core by name: a new core module must join it."""
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / ".importlinter")
    layers = config["importlinter:contract:layers"]["layers"].strip().splitlines()
    core = {m.strip() for m in layers[-1].split(":")}
    children = {f"lenslab.{p.stem if p.suffix else p.name}"
                for p in (REPO_ROOT / "lenslab").iterdir()
                if (p.suffix == ".py" and p.stem != "__init__")
                or (p.is_dir() and (p / "__init__.py").exists())}
    assert core == children - {"lenslab.cli", "lenslab.web"}


def test_each_system_is_one_group_and_selecting_it_selects_exactly_its_assets():
    graph = defs.resolve_asset_graph()
    for system in SYSTEMS:
        module = f"assets.{system}"
        own = {key.to_user_string() for key, stage in
               ((k, stage_of(graph.get(k).metadata)) for k in graph.materializable_asset_keys)
               if stage.module == module}
        assert own, system
        selected = {k.to_user_string() for k in resolve(f"group:{system}", graph)}
        assert selected == own, system


def test_a_selection_that_matches_nothing_is_refused(capsys):
    assert launch_main(["--assets", "group:no_such_group", "--dry-run"]) == 2
    assert "matches no asset" in capsys.readouterr().err
    assert launch_main(["--assets", "no_such_asset", "--dry-run"]) == 2
    assert launch_main(["--assets", "group:style", "--dry-run"]) == 0
    assert "5 assets selected" in capsys.readouterr().out


def test_derived_code_covers_every_project_module_the_asset_module_imports():
    """What Python really loads when it imports an asset module is within the derived files."""
    for module in sorted({s.module for s in _stages().values()}):
        script = (f"import sys, json; import {module}; print(json.dumps(sorted(m for m in "
                  f"sys.modules if m.split('.')[0] in {list(PROJECT_PACKAGES)!r})))")
        loaded = json.loads(subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT,
                                           capture_output=True, text=True, check=True,
                                           timeout=300).stdout)
        derived = set(code_files(module))
        for name in loaded:
            path = name.replace(".", "/")
            assert f"{path}.py" in derived or f"{path}/__init__.py" in derived, (module, name)


def _copy_code(dst: Path) -> None:
    for package in PROJECT_PACKAGES:
        shutil.copytree(REPO_ROOT / package, dst / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO_ROOT / "scripts", dst / "scripts")


def test_an_edit_to_any_file_an_asset_runs_changes_its_code_version(tmp_path):
    """Every asset, every file it runs: a comment appended in a copy moves the version."""
    graph = defs.resolve_asset_graph()
    _copy_code(tmp_path)
    stages = _stages()
    for name, stage in stages.items():
        assert graph.get(dg.AssetKey(name)).code_version == stage.code_version(), name
        assert stage.code_version(tmp_path) == stage.code_version(), name
    files = sorted({f for stage in stages.values() for f in stage.all_code()})
    assert "lenslab/style/evaluation.py" in stages["photographer_model"].all_code()
    for rel in files:
        path = tmp_path / rel
        original = path.read_bytes()
        before = {n: s.code_version(tmp_path) for n, s in stages.items() if rel in s.all_code()}
        path.write_bytes(original + b"\n# an edit\n")
        for name, version in before.items():
            assert stages[name].code_version(tmp_path) != version, (rel, name)
        path.write_bytes(original)


@pytest.mark.slow
def test_dvc_stages_list_the_derived_files_and_follow_an_edit_in_a_fresh_copy(tmp_path):
    """End to end in a copy of the repository: edit a randomly chosen project file, regenerate
    dvc.yaml there and load the definitions there; the stages that run it list it and move."""
    pipeline = build_dvc_pipeline(defs)["stages"]
    stages = _stages()
    for name, stage in stages.items():
        assert set(stage.all_code()) <= set(pipeline[name]["deps"]), name
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                             cwd=REPO_ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    for rel in tracked:
        if not rel.startswith("data/") and (REPO_ROOT / rel).is_file():
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / rel, tmp_path / rel)
    seed = time.time_ns()
    rel = random.Random(seed).choice(sorted({f for s in stages.values() for f in s.all_code()
                                              if f.endswith(".py")}))
    with (tmp_path / rel).open("a") as handle:
        handle.write("\n# an edit\n")
    versions = ("import json; from orchestration.definitions import defs; g = defs."
                "resolve_asset_graph(); print(json.dumps({k.to_user_string(): g.get(k)."
                "code_version for k in g.materializable_asset_keys}))")
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path),
           "DAGSTER_HOME": str(tmp_path), "PYTHONPATH": str(tmp_path)}
    loaded = subprocess.run([sys.executable, "-c", versions], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    after = json.loads(loaded.stdout.splitlines()[-1])
    subprocess.run([sys.executable, "-m", "orchestration.dvc_stages", "--write"], cwd=tmp_path,
                   env=env, check=True, capture_output=True, timeout=300)
    written = yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]
    graph = defs.resolve_asset_graph()
    runs_it = {n for n, s in stages.items() if rel in s.all_code()}
    assert runs_it, rel
    for name in stages:
        moved = after[name] != graph.get(dg.AssetKey(name)).code_version
        assert moved == (name in runs_it), (seed, rel, name)
        assert (rel in written[name]["deps"]) == (name in runs_it), (seed, rel, name)


def test_the_launch_line_shows_one_headline_figure_per_asset():
    from orchestration.progress import headline

    assert headline({"images": 12, "head_test_auc": 0.8123, "promoted": True}) == \
        "head_test_auc 0.8123"
    assert headline({"records": 1200, "mode": "synthetic"}) == "records 1,200"
    assert headline({"promoted": True, "path": "x"}) == ""


def test_browser_screenshots_go_to_an_ignored_folder_with_no_tracked_files():
    from tests.support.browser import SCREENSHOTS

    folder = SCREENSHOTS.relative_to(REPO_ROOT)
    tracked = subprocess.run(["git", "ls-files", str(folder)], cwd=REPO_ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    assert tracked == [], f"tracked files in {folder}/ would be rewritten by every test run"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(folder / "any.png")],
                             cwd=REPO_ROOT)
    assert ignored.returncode == 0, f"{folder}/ is not ignored by git"
