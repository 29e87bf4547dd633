"""Global photo edits, the kind a photographer's preset applies, on float RGB arrays in [0, 1].

Every edit is a vectorised closed-form function of the pixels, so one call edits a single image
(H, W, 3) or a batch (..., H, W, 3), and each parameter may be a scalar or an array over the
leading batch axes (one value per image). The same code runs on numpy arrays and on torch tensors,
so a model can optimise a low-dimensional edit by gradient ascent (the enhancement task) with the
very edits that made the data.

Order, as a raw converter applies them: white balance -> exposure -> gamma -> contrast curve ->
saturation -> split toning -> fade -> vignette -> grain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

# Rec. 709 luma weights: saturation and toning act around this grey.
LUMA = (0.2126, 0.7152, 0.0722)


@dataclass(frozen=True)
class EditParams:
    """One look. The defaults are the identity edit.

    exposure     stops: linear gain 2**exposure, highlights clip
    contrast     S-curve strength in (-1, 1): slope 1+contrast at mid-grey, 1-contrast at the ends
    saturation   chroma factor 1+saturation around luma (-1 = greyscale)
    temperature  white balance, + warm (red up, blue down), - cool
    tint         white balance, + magenta, - green
    split_amount strength of split toning (0 = none)
    shadow_hue   hue (radians) mixed into the shadows
    highlight_hue hue (radians) mixed into the highlights
    vignette     darkening at the corners, 0..1
    grain        standard deviation of monochrome film grain
    fade         black-point lift, 0..1 (matte look)
    gamma        midtone power: output = input ** (1 / gamma); > 1 brightens midtones
    """

    exposure: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    temperature: float = 0.0
    tint: float = 0.0
    split_amount: float = 0.0
    shadow_hue: float = 0.0
    highlight_hue: float = 0.0
    vignette: float = 0.0
    grain: float = 0.0
    fade: float = 0.0
    gamma: float = 1.0

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EditParams:
        unknown = set(values) - set(cls.names())
        if unknown:
            raise ValueError(f"unknown edit parameters {sorted(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        # not dataclasses.asdict: it deep-copies, which would cut a tensor out of its graph
        return {name: getattr(self, name) for name in self.names()}


def _namespace(pixels: Any) -> Any:
    """numpy for arrays, torch for tensors (imported only when a tensor is passed)."""
    if type(pixels).__module__.startswith("torch"):
        import torch

        return torch
    return np


def _param(xp: Any, value: Any, like: Any) -> Any:
    """A parameter as an array of ``like``'s kind, shaped to broadcast over (H, W, 3)."""
    if xp is np:
        arr = np.asarray(value, dtype=like.dtype)
    else:
        arr = xp.as_tensor(value, dtype=like.dtype, device=like.device)
    return arr.reshape((*arr.shape, 1, 1, 1))


def _luma(pixels: Any) -> Any:
    return pixels[..., 0:1] * LUMA[0] + pixels[..., 1:2] * LUMA[1] + pixels[..., 2:3] * LUMA[2]


def _hue_colour(xp: Any, hue: Any) -> Any:
    """A unit-luma-ish RGB direction for a hue angle, centred on 0 (so it only shifts colour)."""
    offsets = (0.0, 2.0 * math.pi / 3.0, 4.0 * math.pi / 3.0)
    return xp.concatenate([xp.cos(hue - o) for o in offsets], -1)


def _radius2(xp: Any, like: Any) -> Any:
    """Squared distance from the image centre, 1 at the corners, shape (H, W, 1)."""
    height, width = like.shape[-3], like.shape[-2]
    ys = np.linspace(-1.0, 1.0, height)[:, None]
    xs = np.linspace(-1.0, 1.0, width)[None, :]
    r2 = ((ys**2 + xs**2) / 2.0)[..., None]
    if xp is np:
        return r2.astype(like.dtype)
    return xp.as_tensor(r2, dtype=like.dtype, device=like.device)


def apply_edits(
    pixels: Any,
    params: EditParams | dict[str, Any],
    *,
    rng: np.random.Generator | None = None,
) -> Any:
    """Apply a look to float RGB pixels in [0, 1]; returns a new array of the same shape.

    ``params`` values may be arrays over the batch axes (one value per image). Grain needs noise:
    it is drawn from ``rng`` (a fixed-seed generator when none is given, so output is repeatable).
    """
    edit = params if isinstance(params, EditParams) else EditParams.from_dict(params)
    p = edit.to_dict()
    xp = _namespace(pixels)
    x = pixels if xp is not np else np.asarray(pixels, dtype=np.float32)

    def get(name: str) -> Any:
        return _param(xp, p[name], x)

    # white balance: opposite gains on red/blue (temperature) and green vs magenta (tint)
    t, m = get("temperature"), get("tint")
    red = x[..., 0:1] * xp.exp(0.25 * t + 0.1 * m)
    green = x[..., 1:2] * xp.exp(-0.2 * m)
    blue = x[..., 2:3] * xp.exp(-0.25 * t + 0.1 * m)
    x = xp.concatenate([red, green, blue], -1)
    x = xp.clip(x * 2.0 ** get("exposure"), 0.0, 1.0)
    x = xp.clip(x, 1e-6, 1.0) ** (1.0 / get("gamma"))
    # S-curve fixed at 0 and 1, monotonic for |contrast| < 1
    c = get("contrast")
    x = x - c * xp.sin(2.0 * math.pi * x) / (2.0 * math.pi)
    grey = _luma(x)
    x = grey + (x - grey) * (1.0 + get("saturation"))
    amount = get("split_amount")
    if bool((amount != 0).any()):
        grey = xp.clip(_luma(x), 0.0, 1.0)
        shadow = _hue_colour(xp, get("shadow_hue")) * (1.0 - grey) ** 2
        highlight = _hue_colour(xp, get("highlight_hue")) * grey**2
        x = x + 0.25 * amount * (shadow + highlight)
    fade = get("fade")
    x = fade + (1.0 - fade) * x
    x = x * (1.0 - get("vignette") * _radius2(xp, x))
    grain = get("grain")
    if bool((grain != 0).any()):
        generator = rng if rng is not None else np.random.default_rng(0)
        noise = generator.standard_normal((*x.shape[:-1], 1)).astype(np.float32)
        noise = noise if xp is np else xp.as_tensor(noise, dtype=x.dtype, device=x.device)
        x = x + grain * noise
    return xp.clip(x, 0.0, 1.0)
