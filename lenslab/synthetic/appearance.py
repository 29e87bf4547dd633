"""Appearance attributes that really drive how a synthetic photo looks.

An image is described by standardised attributes (each ~N(0, 1) over a dataset). Rendering maps
them to the subject's size and placement, the clutter, the sharpness and a global edit, so a model
that sees only pixels can recover them, imperfectly, as it would real aesthetic qualities. The
aesthetics (FLICKR-AES) and preference datasets score photos as a linear function of these
attributes plus noise.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lenslab.edits import EditParams, apply_edits
from lenslab.synthetic import scenes

# The sign is the usual taste (brighter, sharper, tidier is better); tastes may disagree.
ATTRIBUTES = (
    "brightness",  # exposure
    "contrast",  # tone-curve strength
    "colourfulness",  # saturation
    "sharpness",  # less blur
    "subject_size",  # subject fills more of the frame
    "placement",  # subject nearer a rule-of-thirds point
    "warmth",  # white balance temperature
    "clutter",  # busy background (more objects, more texture)
    "noise",  # sensor grain
)
USUAL_TASTE = np.array([0.45, 0.35, 0.45, 0.6, 0.3, 0.45, 0.2, -0.45, -0.4])
# A shared "skill" factor: well-exposed photos tend to be sharper and less noisy.
SKILL_LOADINGS = np.array([0.3, 0.2, 0.2, 0.4, 0.1, 0.3, 0.0, -0.2, -0.3])


def sample_attributes(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """``n`` images' attributes, standard normal, mildly correlated as in real photos."""
    z = rng.standard_normal((n, len(ATTRIBUTES)))
    skill = rng.standard_normal((n, 1))
    mixed = z * np.sqrt(1.0 - SKILL_LOADINGS**2) + skill * SKILL_LOADINGS
    return pd.DataFrame(mixed, columns=list(ATTRIBUTES))


def attribute_covariance() -> np.ndarray:
    """The covariance of sample_attributes (unit variances, correlation through skill)."""
    cov = np.outer(SKILL_LOADINGS, SKILL_LOADINGS)
    np.fill_diagonal(cov, 1.0)
    return cov


def unit_variance(direction: np.ndarray) -> np.ndarray:
    """Scale a taste so that its score over images, direction . a, has variance 1."""
    return direction / np.sqrt(direction @ attribute_covariance() @ direction)


def attribute_edit(attrs: dict[str, float]) -> EditParams:
    """The global edit that expresses the tonal attributes."""
    return EditParams(
        exposure=0.45 * attrs["brightness"],
        contrast=float(np.clip(0.3 * attrs["contrast"], -0.85, 0.85)),
        saturation=float(max(-0.9, 0.35 * attrs["colourfulness"])),
        temperature=0.35 * attrs["warmth"],
        grain=0.02 * math.exp(0.6 * attrs["noise"]),
    )


def render_photo(rng: np.random.Generator, attrs: dict[str, float], height: int, width: int,
                 creature: scenes.Creature | None = None) -> np.ndarray:
    """Render one photo whose look follows ``attrs``; the scene itself is drawn from ``rng``."""
    # rule-of-thirds point, then an offset that grows as placement gets worse
    tx = (1.0 if rng.random() < 0.5 else 2.0) / 3.0
    ty = (1.0 if rng.random() < 0.5 else 2.0) / 3.0
    offset = 0.3 / (1.0 + math.exp(1.3 * attrs["placement"]))
    angle = rng.uniform(0, 2 * math.pi)
    x = float(np.clip(tx + offset * math.cos(angle), 0.12, 0.88))
    y = float(np.clip(ty + offset * math.sin(angle), 0.15, 0.85))
    clutter_level = attrs["clutter"]
    scene = scenes.render_scene(
        rng, height, width,
        creature=creature if creature is not None else scenes.random_creature(rng),
        subject_size=0.28 * math.exp(0.3 * attrs["subject_size"]),
        subject_xy=(x, y),
        clutter=round(2 + 3 * math.exp(0.5 * clutter_level)),
        texture=float(np.clip(0.5 + 0.25 * clutter_level, 0.05, 1.2)),
    )
    # blur radius: ~0.4 px for a typical photo, ~1.8 px for the softest, none for the sharpest
    sigma = 2.0 / (1.0 + math.exp(1.6 * (attrs["sharpness"] + 0.8)))
    pixels = scenes.blur(scene.pixels, sigma)
    return apply_edits(pixels, attribute_edit(attrs), rng=rng)
