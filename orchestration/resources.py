"""Typed resources: where the data lives, how to talk HTTP, which torch device to use."""


import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from lenslab.params import REPO_ROOT, param
from lenslab.paths import DataLayout


def _default_data_root() -> str:
    return os.environ.get("LENSLAB_DATA_ROOT", str(REPO_ROOT / "data"))


class DataRoot(dg.ConfigurableResource):
    """The data tree every asset reads and writes (``data/`` in the repository by default)."""

    path: str = Field(
        default_factory=_default_data_root,
        description="Root folder of the data tree; DVC tracks the stage folders under it.",
    )

    def layout(self) -> DataLayout:
        return DataLayout(Path(self.path).expanduser().resolve())


class HttpClient(dg.ConfigurableResource):
    """How downloads behave: identity, timeouts, retries, caps and per-host politeness."""

    user_agent: str = Field(default=param("http.user_agent"), description="Sent with requests.")
    connect_timeout_s: float = Field(default=param("http.connect_timeout_s"))
    read_timeout_s: float = Field(default=param("http.read_timeout_s"))
    deadline_s: float = Field(default=param("http.deadline_s"), description="Total time per file.")
    max_bytes: int = Field(default=param("http.max_bytes"), description="Cap per archive.")
    max_image_bytes: int = Field(default=param("http.max_image_bytes"), description="Per image.")
    retries: int = Field(default=param("http.retries"))
    backoff_s: float = Field(default=param("http.backoff_s"))
    per_host_concurrency: int = Field(default=param("http.per_host_concurrency"))
    per_host_rate_per_s: float = Field(default=param("http.per_host_rate_per_s"))

    def settings(self):
        from lenslab.ingest.http import HttpSettings

        return HttpSettings.from_params(self.model_dump())


class TorchDevice(dg.ConfigurableResource):
    """The torch device for GPU-capable assets: ``auto`` picks CUDA when present, else CPU."""

    device: str = Field(default="auto", description="auto, cpu, cuda or cuda:N")

    def torch_device(self):
        from models.device import pick_device

        return pick_device(self.device)
