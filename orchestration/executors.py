"""Where the steps run: one code base, three deployment profiles chosen by ``LENSLAB_EXECUTOR``.

- ``local`` (default): every step in its own process, forked from a forkserver that has already
  imported the project (dagster, torch, pandas): milliseconds per step instead of ~8 s.
- ``celery``: steps go to Celery workers through a Redis broker; GPU steps carry the `gpu` queue
  tag (orchestration/kit/gpu.py) and reach the GPU worker, the rest the default queue. Broker and
  backend from ``LENSLAB_CELERY_BROKER`` / ``LENSLAB_CELERY_BACKEND``; `scripts/celery_cluster.sh`
  starts Redis and a CPU and a GPU worker on 127.0.0.1.
- ``k8s``: each step is a Kubernetes Job (`k8s_job_executor`); GPU steps request
  ``nvidia.com/gpu`` with a node selector and toleration from their tags. The instance side (run
  launcher, storage) is `deploy/k8s/dagster.yaml`; see the README, "Scaling out".
"""

from __future__ import annotations

import os

import dagster as dg

PROFILES = ("local", "celery", "k8s")
DEFAULT_CELERY_BROKER = "redis://127.0.0.1:6379/0"


def celery_settings() -> dict[str, str]:
    broker = os.environ.get("LENSLAB_CELERY_BROKER", DEFAULT_CELERY_BROKER)
    return {"broker": broker, "backend": os.environ.get("LENSLAB_CELERY_BACKEND", broker)}


def build_executor(profile: str | None = None) -> dg.ExecutorDefinition:
    profile = profile or os.environ.get("LENSLAB_EXECUTOR", "local")
    if profile == "local":
        return dg.multiprocess_executor.configured(
            {"start_method": {"forkserver": {"preload_modules": ["orchestration.definitions"]}}},
            name="local_forkserver")
    if profile == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_settings(), name="celery")
    if profile == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor.configured({
            # the run's own image and namespace are inherited from the run launcher
            "max_concurrent": int(os.environ.get("LENSLAB_K8S_MAX_CONCURRENT", "8")),
            "env_vars": ["LENSLAB_EXECUTOR=k8s"],
        }, name="k8s")
    raise ValueError(f"LENSLAB_EXECUTOR={profile!r}: choose one of {', '.join(PROFILES)}")
