"""How an asset that can use a GPU says so: the `gpu` pool and a Kubernetes GPU request.

Every GPU-using asset passes ``**GPU_ASSET`` to ``@dg.asset``; CPU assets pass nothing. The pool
limits GPU assets to one at a time per GPU (the instance's pool limit), and the tag makes
`k8s_job_executor` schedule the step on a node with a GPU.
"""

GPU_POOL = "gpu"
K8S_GPU_TAG = {
    "dagster-k8s/config": {
        "container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
    }
}

GPU_ASSET: dict = {"pool": GPU_POOL, "op_tags": K8S_GPU_TAG}
