"""A slice of the pipeline through the Celery executor: Redis and two workers on 127.0.0.1 (started
by scripts/celery_cluster.sh), GPU steps on the GPU worker, CPU steps on the CPU worker."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from lenslab.params import REPO_ROOT
from lenslab.paths import SOURCES
from tests.support.browser import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None,
                       reason="redis-server is installed by scripts/install_system_packages.sh"),
]
SCRIPT = REPO_ROOT / "scripts" / "celery_cluster.sh"
SLICE = [*SOURCES, "image_catalog", "global_features"]  # global_features is a GPU asset


@pytest.fixture
def cluster(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home),
           "VENV": str(Path(sys.executable).parent.parent)}
    started = subprocess.run(["bash", str(SCRIPT), "start", str(tmp_path / "celery"),
                              str(free_port())], env=env, text=True, capture_output=True,
                             timeout=300)
    assert started.returncode == 0, started.stderr
    broker = started.stdout.strip().splitlines()[-1]
    try:
        yield home, broker, env
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(tmp_path / "celery")], env=env)


def _workers_by_step(home: Path) -> dict[str, str]:
    """Which Celery worker ran each step: the engine event dagster-celery records on the worker."""
    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        run = instance.get_runs(limit=1)[0]
        assert run.status == dg.DagsterRunStatus.SUCCESS
        workers = {}
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event and event.is_engine_event and event.step_key:
                meta = event.engine_event_data.metadata
                if "Celery worker" in meta:
                    workers[event.step_key] = meta["Celery worker"].value
        return workers


def test_a_pipeline_slice_runs_on_celery_with_gpu_steps_on_the_gpu_worker(cluster, tmp_path):
    home, broker, env = cluster
    config = {"ops": {s: {"config": {"scale": 0.1}} for s in SOURCES},
              "resources": {"data_root": {"config": {"path": str(tmp_path / "data")}}}}
    launched = subprocess.run(
        [str(Path(sys.executable).with_name("dg")), "launch",
         "--assets", " or ".join(f"key:{k}" for k in SLICE), "--config-json", json.dumps(config)],
        cwd=REPO_ROOT, text=True, capture_output=True, timeout=900,
        env={**env, "LENSLAB_EXECUTOR": "celery", "LENSLAB_CELERY_BROKER": broker})
    assert launched.returncode == 0, launched.stderr[-3000:]
    workers = _workers_by_step(home)
    assert set(SLICE) <= set(workers)
    assert workers["global_features"].startswith("gpu@")
    for step, worker in workers.items():
        if step != "global_features":
            assert worker.startswith("cpu@"), (step, worker)
    assert (tmp_path / "data" / "features").is_dir()
