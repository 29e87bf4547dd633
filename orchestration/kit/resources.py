"""Typed resources every asset may take: where the data lives, which torch device to use."""


from pathlib import Path

import dagster as dg
from pydantic import Field

from lenslab.paths import DataLayout, default_data_root


def _default_data_root() -> str:
    return str(default_data_root())


class DataRoot(dg.ConfigurableResource):
    """The data tree every asset reads and writes (``data/`` in the repository by default)."""

    path: str = Field(
        default_factory=_default_data_root,
        description="Root folder of the data tree; DVC tracks the stage folders under it.",
    )

    def layout(self) -> DataLayout:
        return DataLayout(Path(self.path).expanduser().resolve())


class TorchDevice(dg.ConfigurableResource):
    """The torch device for GPU-capable assets: ``auto`` picks CUDA when present, else CPU."""

    device: str = Field(default="auto", description="auto, cpu, cuda or cuda:N")

    def torch_device(self):
        from models.device import pick_device

        return pick_device(self.device)
