"""The deployment profiles load: Kubernetes (instance, chart, executor, GPU tags) and Celery."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from lenslab.params import REPO_ROOT

K8S = REPO_ROOT / "deploy" / "k8s"


def _load_definitions_with(profile: str) -> dict:
    """Load the real Definitions in a fresh process under ``LENSLAB_EXECUTOR=profile``."""
    code = (
        "import json; from orchestration.definitions import defs;"
        "job = defs.resolve_job_def('pipeline');"
        "gpu = [n for n in job.graph.node_defs if 'device' in n.required_resource_keys];"
        "print(json.dumps({'executor': job.executor_def.name,"
        " 'gpu_tags': {n.name: n.tags.get('dagster-k8s/config') for n in gpu}}, default=str))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, text=True,
                         capture_output=True, env={**os.environ, "LENSLAB_EXECUTOR": profile})
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_k8s_instance_configuration_is_valid_for_dagster(monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    for var in ("DAGSTER_PG_HOST", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD"):
        monkeypatch.setenv(var, "x")
    config, _ = dagster_instance_config(str(K8S), "dagster.yaml")
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["run_monitoring"]["enabled"] is True


def test_the_definitions_load_with_the_k8s_job_executor_and_gpu_steps_ask_for_a_gpu_node():
    from dagster_k8s.job import UserDefinedDagsterK8sConfig

    loaded = _load_definitions_with("k8s")
    assert loaded["executor"] == "k8s"
    assert loaded["gpu_tags"], "some steps use the GPU"
    for name, raw in loaded["gpu_tags"].items():
        tag = json.loads(raw) if isinstance(raw, str) else raw
        k8s = UserDefinedDagsterK8sConfig.from_dict(tag)  # how dagster-k8s reads the tag
        assert k8s.container_config["resources"]["limits"]["nvidia.com/gpu"] == "1", name
        assert k8s.pod_spec_config["node_selector"], name
        assert k8s.pod_spec_config["tolerations"][0]["key"] == "nvidia.com/gpu", name


def test_the_helm_values_serve_lenslabs_definitions_with_the_k8s_profile():
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "orchestration.definitions"]
    assert {"name": "LENSLAB_EXECUTOR", "value": "k8s"} in deployment["env"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"


def test_the_definitions_load_with_the_celery_executor():
    assert _load_definitions_with("celery")["executor"] == "celery"


def test_an_unknown_profile_is_a_clear_error():
    from orchestration.executors import build_executor

    with pytest.raises(ValueError, match="local, celery, k8s"):
        build_executor("spark")
