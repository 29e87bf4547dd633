"""Synthetic photo-preference data in the photobook rater's layout (no standard dataset exists).

Writes into ``distributed/``:
    photos/<tier>/<name>.jpg   tiers ``00`` (best) .. ``14`` (worst), as the CLIP photobook seed
                               keeps its photos; names are camera-style ``IMG_<n>.jpg``
    pairs.csv                  ``left,right,winner``: photo paths relative to ``photos/``, winner
                               ``left`` or ``right``

Content: every photo has appearance attributes (lenslab.synthetic.appearance) that drive its
rendering; its latent quality is a hidden direction . attributes + noise. The tier folders sort
photos by a noisy reading of that quality (equal-size tiers). Pairs come from simulated annotators
(noisy Bradley-Terry: P(left wins) = sigmoid((q_left - q_right) / T), a temperature T per
annotator), mostly random pairs plus some within bursts. Bursts are near-duplicates (the same
scene with tiny jitter, consecutive file numbers), so album selection has duplicates to skip.

Knobs (counts at scale 1.0):
    photos (250), pairs (2000), burst_rate (0.15: share of scenes shot as a burst of 2-5),
    annotators (8), annotator_temperature ((0.4, 1.0): range of the annotators' temperatures T;
    params.yaml sets 0.15-0.4, consistent judges), quality_noise (0.35: sd of the quality not
    explained by the attributes; params.yaml sets 0.2), tier_noise (0.25: sd of the error in
    sorting photos into tiers), max_side (128 px)

Ground truth: ``quality.csv`` (photo, quality, burst, tier, attributes; a burst id is shared by
near-duplicates, singles have their own), ``direction.csv`` (attribute, weight).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lenslab import atomic
from lenslab.seeding import rng
from lenslab.synthetic import appearance
from lenslab.synthetic.appearance import ATTRIBUTES
from lenslab.synthetic.common import encode_jpeg, scaled, write_ground_truth

SOURCE = "photo_preferences"
TIERS = 15
BURST_JITTER = 0.12  # attribute jitter between near-duplicates
WITHIN_BURST_PAIRS = 0.1


def _bursts(r: np.random.Generator, n_photos: int, burst_rate: float) -> list[int]:
    """The scene id of each photo: runs of 2-5 photos share a scene (a burst)."""
    scene_of: list[int] = []
    scene = 0
    while len(scene_of) < n_photos:
        size = int(r.integers(2, 6)) if r.random() < burst_rate else 1
        scene_of += [scene] * size
        scene += 1
    return scene_of[:n_photos]


def _pairs(r: np.random.Generator, scene_of: np.ndarray, count: int) -> np.ndarray:
    """(count, 2) photo index pairs: mostly random, some inside a burst."""
    by_scene = pd.Series(np.arange(len(scene_of))).groupby(scene_of).apply(list)
    bursts = [m for m in by_scene if len(m) > 1]
    out = []
    while len(out) < count:
        if bursts and r.random() < WITHIN_BURST_PAIRS:
            members = bursts[int(r.integers(len(bursts)))]
            i, j = r.choice(members, 2, replace=False)
        else:
            i, j = r.choice(len(scene_of), 2, replace=False)
        out.append((int(i), int(j)))
    return np.array(out)


def generate(distributed: Path, ground_truth: Path, *, seed: int, scale: float = 1.0,
             photos: int = 250, pairs: int = 2000, burst_rate: float = 0.15, annotators: int = 8,
             quality_noise: float = 0.35, tier_noise: float = 0.25,
             annotator_temperature: tuple[float, float] = (0.4, 1.0),
             max_side: int = 128) -> dict[str, Any]:
    """Write photos/<tier>/ and pairs.csv into ``distributed``; see the module doc."""
    n_photos = scaled(photos, scale, minimum=TIERS * 2)
    n_pairs = scaled(pairs, scale, minimum=50)
    r = rng(seed, SOURCE, "layout")
    scene_of = np.array(_bursts(r, n_photos, burst_rate))
    n_scenes = int(scene_of.max()) + 1

    scene_attrs = appearance.sample_attributes(rng(seed, SOURCE, "attributes"), n_scenes)
    in_burst = np.bincount(scene_of)[scene_of] > 1
    jitter = rng(seed, SOURCE, "jitter").normal(0.0, BURST_JITTER, (n_photos, len(ATTRIBUTES)))
    attrs = scene_attrs.to_numpy()[scene_of] + jitter * in_burst[:, None]
    qr = rng(seed, SOURCE, "quality")
    direction = appearance.unit_variance(
        appearance.USUAL_TASTE + qr.normal(0.0, 0.3, len(ATTRIBUTES)))
    # the unexplained part is mostly the scene's (content), a little the shot's
    quality = (attrs @ direction + qr.normal(0.0, quality_noise, n_scenes)[scene_of]
               + qr.normal(0.0, 0.1 * quality_noise, n_photos))
    seen = quality + qr.normal(0.0, tier_noise, n_photos)
    rank = np.argsort(np.argsort(-seen, kind="stable"), kind="stable")
    tier = rank * TIERS // n_photos

    # camera numbering follows shooting order: scenes shuffled, a burst's shots consecutive
    scene_order = np.argsort(r.permutation(n_scenes)[scene_of] * n_photos + np.arange(n_photos))
    number = np.empty(n_photos, dtype=int)
    number[scene_order] = int(r.integers(1000, 5000)) + np.arange(n_photos)
    names = [f"{tier[i]:02d}/IMG_{number[i]:04d}.jpg" for i in range(n_photos)]

    for i in range(n_photos):
        # a burst's shots share their scene's generator: same layout, jittered attributes
        rs = rng(seed, SOURCE, "scene", int(scene_of[i]))
        height, width = (max_side * 3 // 4, max_side) if rs.random() < 0.7 else (
            max_side, max_side * 3 // 4)
        pixels = appearance.render_photo(
            rs, dict(zip(ATTRIBUTES, attrs[i], strict=True)), height, width)
        # plain writes: the ingestion builds distributed/ in a temporary folder and swaps it in
        target = distributed / "photos" / names[i]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(encode_jpeg(pixels, quality=92))

    pr = rng(seed, SOURCE, "pairs")
    temperature = pr.uniform(*annotator_temperature, annotators)
    index = _pairs(pr, scene_of, n_pairs)
    who = pr.integers(annotators, size=n_pairs)
    gap = quality[index[:, 0]] - quality[index[:, 1]]
    p_first = 1.0 / (1.0 + np.exp(-gap / temperature[who]))
    first_wins = pr.random(n_pairs) < p_first
    swap = pr.random(n_pairs) < 0.5  # the better photo is not always on the left
    left = np.where(swap, index[:, 1], index[:, 0])
    right = np.where(swap, index[:, 0], index[:, 1])
    winner = np.where(first_wins != swap, "left", "right")
    lines = ["left,right,winner"] + [f"{names[a]},{names[b]},{w}"
                                     for a, b, w in zip(left, right, winner, strict=True)]
    atomic.write_text(distributed / "pairs.csv", "\n".join(lines) + "\n")

    truth = pd.DataFrame({"photo": names, "quality": quality, "burst": scene_of, "tier": tier})
    for k, name in enumerate(ATTRIBUTES):
        truth[name] = attrs[:, k]
    write_ground_truth(ground_truth, "quality", truth.sort_values("photo"))
    write_ground_truth(ground_truth, "direction", pd.DataFrame(
        {"attribute": ATTRIBUTES, "weight": direction}))
    return {"photos": n_photos, "pairs": n_pairs, "scenes": n_scenes,
            "burst_photos": int(in_burst.sum()),
            "tiers": TIERS, "annotators": annotators}
