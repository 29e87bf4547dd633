"""The whole embedded pipeline three ways in one run: `make demo`'s job, `dvc repro`, a second
`dvc repro`; wall time, the machine's busy cores and the lines the job printed.

    .venv/bin/python bench/pipeline/run.py [--scale 1.0] [--out bench-pipeline.json]

Each run starts from an empty data root and an empty Dagster instance, in a fresh copy of the
repository's tracked files (a new git repository, so `dvc repro` writes its own `dvc.lock`).
Busy cores come from /proc/stat over the run (the whole machine: run it on a quiet one).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from lenslab.params import REPO_ROOT


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> dict[str, object]:
    busy0, total0 = _cpu_jiffies()
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    busy1, total1 = _cpu_jiffies()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                         f"{proc.stderr[-3000:]}")
    cores = os.cpu_count() or 1
    return {"command": " ".join(cmd), "wall_s": round(wall, 1),
            "busy_cores": round(cores * (busy1 - busy0) / max(1, total1 - total0), 2),
            "stdout_lines": len(proc.stdout.splitlines()),
            "stderr_lines": len(proc.stderr.splitlines())}


def repository_copy(dest: Path, scale: float) -> None:
    """The tracked (and untracked, not ignored) files in a new git repository at ``scale``."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    for rel in files.splitlines():
        if (REPO_ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / rel, dest / rel)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["synthetic"]["scale"] = scale
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (dest / "dvc.lock").unlink(missing_ok=True)
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                ["git", "-c", "user.email=bench@lenslab", "-c", "user.name=bench", "commit",
                 "-qm", "bench"]):
        subprocess.run(cmd, cwd=dest, check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="synthetic.scale of the copy")
    ap.add_argument("--out", type=Path, default=Path("bench-pipeline.json"))
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="lenslab-bench-") as tmp:
        repo = Path(tmp) / "lenslab"
        repository_copy(repo, args.scale)
        base = {**os.environ, "PYTHONPATH": str(repo),
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        base.pop("LENSLAB_PARAMS", None)
        job_env = {**base, "DAGSTER_HOME": str(Path(tmp) / "home-job"),
                   "LENSLAB_DATA_ROOT": str(Path(tmp) / "data-job")}
        dvc_env = {**base, "DAGSTER_HOME": str(Path(tmp) / "home-dvc")}
        dvc_env.pop("LENSLAB_DATA_ROOT", None)  # dvc stages write the copy's data/
        for env in (job_env, dvc_env):
            Path(env["DAGSTER_HOME"]).mkdir()
            shutil.copy2(repo / "dagster_home" / "dagster.yaml", env["DAGSTER_HOME"])
        rows = {
            "job": _timed([sys.executable, "-m", "orchestration.launch", "--changed"], repo,
                          job_env),
            "dvc_repro": _timed([sys.executable, "-m", "dvc", "repro"], repo, dvc_env),
            "dvc_repro_again": _timed([sys.executable, "-m", "dvc", "repro"], repo, dvc_env),
        }
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "date": time.strftime("%Y-%m-%d"), "scale": args.scale, "runs": rows,
              "dvc_repro_over_job": round(rows["dvc_repro"]["wall_s"] / rows["job"]["wall_s"], 2)}
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
