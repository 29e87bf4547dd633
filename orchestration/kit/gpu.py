"""How an asset that can use a GPU says so: the `gpu` pool, a Kubernetes GPU request, a GPU queue.

Every GPU-using asset (it takes the ``device`` resource) passes ``**GPU_ASSET`` to ``@dg.asset``;
CPU assets pass nothing (tests/orchestration/test_gpu_assets.py holds both directions). The pool
limits GPU
assets to one at a time per GPU (the instance's pool limit, dagster_home/dagster.yaml); the
`dagster-k8s/config` tag makes `k8s_job_executor` put the step on a GPU node; the Celery queue tag
sends the step to the GPU worker (orchestration/celery.py), while CPU steps stay on the default
queue.
"""

GPU_POOL = "gpu"
GPU_QUEUE = "gpu"
# GPU nodes as the NVIDIA GPU operator labels and taints them; change to match your cluster
K8S_GPU_CONFIG = {
    "container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
    "pod_spec_config": {
        "node_selector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}

GPU_ASSET: dict = {
    "pool": GPU_POOL,
    "op_tags": {"dagster-k8s/config": K8S_GPU_CONFIG, "dagster-celery/queue": GPU_QUEUE},
}
