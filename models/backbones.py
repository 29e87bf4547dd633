"""Pretrained torchvision trunks: the shared image encoder of every lenslab model.

Weights come through torchvision's weights API and its cache, so a filled cache works offline
(MobileNetV2's ImageNet weights are installed by the set-up; see scripts/).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torchvision
from torch import nn

from models.device import mixed_precision
from models.images import as_float

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# name -> (torchvision builder, weights enum member, pooled feature size)
BACKBONES: dict[str, tuple[str, str, int]] = {
    "mobilenet_v2": ("mobilenet_v2", "IMAGENET1K_V1", 1280),
    "resnet18": ("resnet18", "IMAGENET1K_V1", 512),
    "resnet50": ("resnet50", "IMAGENET1K_V2", 2048),
    "inception_v3": ("inception_v3", "IMAGENET1K_V1", 2048),  # the seed's backbone
}
# inception's ported TF weights expect [-1, 1] inputs (torchvision's transform_input)
INPUT_NORM = {"inception_v3": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}


class Trunk(nn.Module):
    """A pretrained classifier without its last layer: [0, 1] RGB in, pooled features out.

    ``stages`` are the trunk's layers in order (so fine-tuning can freeze a prefix and the
    report can show per-layer activations).
    """

    def __init__(self, stages: nn.Sequential, dim: int,
                 norm: tuple[Sequence[float], Sequence[float]] = (IMAGENET_MEAN, IMAGENET_STD),
                 ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(norm[0]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(norm[1]).view(1, 3, 1, 1))
        self.stages = stages
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages((x - self.mean) / self.std)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


def build_trunk(name: str = "mobilenet_v2", pretrained: bool = True) -> Trunk:
    """The named backbone's trunk; pretrained weights come from torchvision's cache."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose from {sorted(BACKBONES)}")
    builder, weights, dim = BACKBONES[name]
    kwargs = {"init_weights": False} if name == "inception_v3" else {}
    model = getattr(torchvision.models, builder)(weights=weights if pretrained else None,
                                                 **kwargs)
    if name == "mobilenet_v2":
        stages = model.features
    elif name == "inception_v3":
        stages = nn.Sequential(*[m for n, m in model.named_children()
                                 if n not in ("AuxLogits", "avgpool", "dropout", "fc")])
    else:  # resnets
        stages = nn.Sequential(*list(model.children())[:-2])
    return Trunk(stages, dim, INPUT_NORM.get(name, (IMAGENET_MEAN, IMAGENET_STD)))


@torch.inference_mode()
@torch.inference_mode()
def extract_features(trunk: Trunk, images: torch.Tensor, device: torch.device,
                     batch_size: int = 64) -> np.ndarray:
    """Pooled transfer values (n, dim) for uint8 images, batched on ``device``."""
    trunk = trunk.to(device).eval()
    with mixed_precision(device):
        out = [trunk(as_float(images[i:i + batch_size], device)).float().cpu()
               for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, trunk.dim), np.float32)
