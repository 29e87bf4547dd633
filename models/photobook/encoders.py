"""Image encoders for the photobook rater: CLIP (open_clip) when its weights are present, else a
multi-level MobileNetV2 embedding that works offline. No Dagster here.

CLIP gives image and text embeddings in one space (L2-normalised, as CLIP compares them), so a
text prompt can be a master vector. The offline encoder concatenates the spatial means of several
MobileNetV2 stages ("multi-level spatially pooled" features, Hosu et al., CVPR 2019): the last
stage alone is trained to ignore exposure, colour, blur and grain, which are what photo quality
is mostly about, while the early stages keep them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.backbones import build_trunk
from models.images import as_float, image_tensor

CPU = torch.device("cpu")

CLIP_MODEL = "ViT-B-32"
CLIP_TAG = "openai"
MLSP = "mobilenet_v2_mlsp"
MLSP_STAGES = (3, 6, 10, 13, 16, 18)  # MobileNetV2 feature stages whose means are kept
ENCODERS = ("auto", "clip", MLSP)


def resolve_clip_weights(explicit: str | None, model: str = CLIP_MODEL,
                         tag: str = CLIP_TAG) -> Path | None:
    """A local file with the CLIP weights, or None: an explicit path, else open_clip's caches.

    Never downloads: the Hugging Face cache is only looked up, and the OpenAI file is looked for
    where open_clip's URL download keeps it (``~/.cache/clip``).
    """
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"CLIP weights {path} do not exist")
        return path
    from huggingface_hub import try_to_load_from_cache
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(model, tag)
    if cfg.get("hf_hub"):
        repo = cfg["hf_hub"].rstrip("/")
        for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            found = try_to_load_from_cache(repo, name)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    if cfg.get("url"):
        cached = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(cfg["url"])
        if cached.is_file():
            return cached
    return None


@dataclass
class ClipEncoder:
    """open_clip image and text towers; ``weights`` None means random weights (tests only)."""

    weights: Path | None
    model_name: str = CLIP_MODEL
    device: torch.device = CPU

    def __post_init__(self) -> None:
        import open_clip

        self.model = open_clip.create_model(
            self.model_name, pretrained=str(self.weights) if self.weights else None).eval()
        self.model.to(self.device)
        self.tokenizer = open_clip.get_tokenizer(self.model_name)
        self.preprocess = open_clip.image_transform(self.model.visual.image_size, is_train=False)
        self.name = f"clip:{self.model_name}"
        self.pretrained = self.weights is not None

    @torch.inference_mode()
    def encode_images(self, images: list[Image.Image], batch_size: int = 32) -> np.ndarray:
        out = []
        for i in range(0, len(images), batch_size):
            batch = torch.stack([self.preprocess(im.convert("RGB"))
                                 for im in images[i:i + batch_size]]).to(self.device)
            out.append(torch.nn.functional.normalize(self.model.encode_image(batch), dim=-1))
        return _stack(out, self.model.visual.output_dim)

    @torch.inference_mode()
    def encode_texts(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts).to(self.device)
        return torch.nn.functional.normalize(self.model.encode_text(tokens), dim=-1).cpu().numpy()


@dataclass
class MlspEncoder:
    """Means of several MobileNetV2 stages at ``image_size`` px (ImageNet weights, offline)."""

    image_size: int = 128
    pretrained: bool = True
    device: torch.device = CPU

    def __post_init__(self) -> None:
        self.trunk = build_trunk("mobilenet_v2", pretrained=self.pretrained).eval().to(self.device)
        self.name = MLSP

    @torch.inference_mode()
    def encode_images(self, images: list[Image.Image], batch_size: int = 64) -> np.ndarray:
        out = []
        for i in range(0, len(images), batch_size):
            batch = torch.stack([image_tensor(im, self.image_size)
                                 for im in images[i:i + batch_size]])
            x = (as_float(batch, self.device) - self.trunk.mean) / self.trunk.std
            pooled = []
            for k, stage in enumerate(self.trunk.stages):
                x = stage(x)
                if k in MLSP_STAGES:
                    pooled.append(x.mean(dim=(2, 3)))
            out.append(torch.cat(pooled, dim=1))
        return _stack(out, None)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError("the MobileNetV2 encoder has no text tower")


Encoder = ClipEncoder | MlspEncoder


def _stack(parts: list[torch.Tensor], dim: int | None) -> np.ndarray:
    if parts:
        return torch.cat(parts).float().cpu().numpy()
    return np.zeros((0, dim or 0), np.float32)


def build_encoder(name: str, *, clip_weights: str | None = None, image_size: int = 128,
                  device: torch.device = CPU) -> Encoder:
    """``auto``: CLIP when its weights are found locally, else MobileNetV2 multi-level."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose from {ENCODERS}")
    if name in ("auto", "clip"):
        weights = resolve_clip_weights(clip_weights)
        if weights is not None:
            return ClipEncoder(weights, device=device)
        if name == "clip":
            raise FileNotFoundError(
                f"no CLIP {CLIP_MODEL} weights found: give photobook.clip_weights (a local "
                "file) or fill open_clip's cache")
    return MlspEncoder(image_size, device=device)


def encode_paths(encoder: Encoder, paths: list[Path], batch_size: int = 64) -> np.ndarray:
    """Embeddings (n, dim) of image files, read a batch at a time."""
    out = []
    for i in range(0, len(paths), batch_size):
        images = []
        for path in paths[i:i + batch_size]:
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
        out.append(encoder.encode_images(images, batch_size))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
