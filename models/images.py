"""Photos as tensors: uint8 stacks kept compact in memory, made float on the device."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def image_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """A uint8 (3, size, size) tensor: any image, any mode, squashed to a square."""
    rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1)


def load_images(paths: Iterable[Path], size: int) -> torch.Tensor:
    """Stack of uint8 images (n, 3, size, size); kept as bytes to spare memory."""
    tensors = []
    for path in paths:
        with Image.open(path) as im:
            tensors.append(image_tensor(im, size))
    return torch.stack(tensors) if tensors else torch.empty(0, 3, size, size, dtype=torch.uint8)


def as_float(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    return batch.to(device, non_blocking=True).float().div_(255)
