"""Exactly the assets that use the torch device carry the GPU pool, k8s GPU request and queue."""

import json

from orchestration.definitions import defs
from orchestration.kit.gpu import GPU_POOL, GPU_QUEUE


def _steps():
    yield from defs.resolve_job_def("pipeline").graph.node_defs


def test_gpu_assets_and_only_they_carry_the_pool_the_k8s_request_and_the_gpu_queue():
    gpu, cpu = [], []
    for op in _steps():
        uses_device = "device" in op.required_resource_keys
        (gpu if uses_device else cpu).append(op.name)
        tags = op.tags
        k8s = tags.get("dagster-k8s/config")
        if uses_device:
            assert op.pool == GPU_POOL, op.name
            k8s = json.loads(k8s) if isinstance(k8s, str) else k8s
            limits = k8s["container_config"]["resources"]["limits"]
            assert limits == {"nvidia.com/gpu": "1"}, op.name
            assert k8s["pod_spec_config"]["tolerations"], op.name
            assert tags["dagster-celery/queue"] == GPU_QUEUE, op.name
        else:
            assert op.pool is None, op.name
            assert k8s is None, op.name
            assert "dagster-celery/queue" not in tags, op.name
    # the model stages exist on both sides: training/feature steps on the GPU, the rest on CPU
    assert {"selfie_features", "selfie_classifier", "style_autoencoder"} <= set(gpu)
    assert {"image_catalog", "oxford_pets", "selfie_labels"} <= set(cpu)
