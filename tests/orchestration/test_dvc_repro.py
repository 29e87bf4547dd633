"""`dvc repro` on a fresh copy of the repository runs the pipeline; a second run does nothing."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lenslab.params import REPO_ROOT

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    output = f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{output}"
    return proc


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory) -> tuple[Path, dict]:
    """The tracked files of this repository in a new git repository, at a small synthetic scale."""
    dest = tmp_path_factory.mktemp("clone") / "lenslab"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    for rel in files.splitlines():
        src = REPO_ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["synthetic"]["scale"] = 0.25
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(dest), "DAGSTER_HOME": str(dest / "dagster_home"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("LENSLAB_DATA_ROOT", None)
    env.pop("LENSLAB_PARAMS", None)
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                ["git", "-c", "user.email=ci@lenslab", "-c", "user.name=ci", "commit", "-qm", "x"]):
        _run(cmd, dest, env)
    return dest, env


def test_dvc_repro_runs_the_pipeline_then_does_nothing(repo_copy):
    dest, env = repo_copy
    first = _run([sys.executable, "-m", "dvc", "repro"], dest, env)
    assert (dest / "data" / "catalog" / "image_catalog.parquet").is_file()
    assert (dest / "dvc.lock").is_file()
    stages = yaml.safe_load((dest / "dvc.yaml").read_text())["stages"]
    for name in stages:
        assert f"Running stage '{name}'" in first.stdout, name

    # dvc reads the pipeline report's metrics and plot (the same files Dagster links to)
    metrics = json.loads(_run([sys.executable, "-m", "dvc", "metrics", "show", "--json"],
                              dest, env).stdout)
    shown = json.dumps(metrics)
    assert "photographer top-1 (test)" in shown and "ROC-AUC (test)" in shown, shown[:500]
    plots = _run([sys.executable, "-m", "dvc", "plots", "show", "--json"], dest, env).stdout
    assert "headlines.png" in plots

    second = _run([sys.executable, "-m", "dvc", "repro"], dest, env)
    assert "Running stage" not in second.stdout, second.stdout
    status = _run([sys.executable, "-m", "dvc", "status"], dest, env)
    assert "up to date" in status.stdout.lower(), status.stdout

    # the data are DVC-tracked and travel through the local default remote
    _run([sys.executable, "-m", "dvc", "push"], dest, env)
    shutil.rmtree(dest / "data" / "catalog")
    shutil.rmtree(dest / ".dvc" / "cache")
    _run([sys.executable, "-m", "dvc", "pull"], dest, env)
    assert (dest / "data" / "catalog" / "image_catalog.parquet").is_file()


def test_dvc_experiments_keep_and_compare_their_metrics(repo_copy):
    """Two experiments with different parameters: `dvc exp show` reads both rows' metrics."""
    dest, env = repo_copy
    _run([sys.executable, "-m", "dvc", "repro"], dest, env)  # no-op after the test above
    git = ["git", "-c", "user.email=ci@lenslab", "-c", "user.name=ci"]
    _run(["git", "add", "-A"], dest, env)
    _run([*git, "commit", "-qm", "pipeline"], dest, env)
    for places in (4, 6):
        _run([sys.executable, "-m", "dvc", "exp", "run", "-S", f"photobook.album.places={places}",
              "-n", f"places-{places}"], dest, env)
    shown = json.loads(_run([sys.executable, "-m", "dvc", "exp", "show", "--json"],
                            dest, env).stdout)
    rows = {}
    for baseline in shown:
        for group in baseline.get("experiments") or []:
            for rev in group.get("revs") or []:
                data = rev.get("data") or {}
                metrics = data.get("metrics") or {}
                params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
                rows[rev.get("name")] = (
                    json.dumps(metrics.get("data/reports/pipeline/metrics.json", {})),
                    params.get("photobook", {}).get("album", {}).get("places"))
    assert {"places-4", "places-6"} <= set(rows), rows.keys()
    for places in (4, 6):
        metrics, shown_places = rows[f"places-{places}"]
        assert shown_places == places
        assert "photographer top-1 (test)" in metrics, metrics[:300]
    diff = json.loads(_run([sys.executable, "-m", "dvc", "metrics", "diff", "HEAD", "--json"],
                           dest, env).stdout or "{}")
    assert isinstance(diff, dict)  # HEAD's metrics are readable (from the cache)
