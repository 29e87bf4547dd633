"""The benchmark's photo set: N varied 640x480 JPEGs, made once from a seed and reused."""

from __future__ import annotations

import json
from pathlib import Path

from lenslab import atomic
from lenslab.seeding import rng
from lenslab.synthetic.common import encode_jpeg
from lenslab.synthetic.scenes import random_creature, render_scene


def make_photos(folder: Path, n: int, seed: int = 0) -> list[str]:
    """Write ``n`` photos (JPEG quality 90) into ``folder``; reuse them if made for (n, seed)."""
    marker = folder / "made.json"
    names = [f"photo_{i:05d}.jpg" for i in range(n)]
    if marker.exists() and json.loads(marker.read_text()) == {"n": n, "seed": seed}:
        return names
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        r = rng(seed, "bench-photo", i)
        scene = render_scene(r, 480, 640, creature=random_creature(r))
        # sensor-like noise gives the files a camera photo's size (~80 KB at quality 90)
        pixels = scene.pixels + r.normal(0.0, 0.03, scene.pixels.shape)
        atomic.write_bytes(folder / name, encode_jpeg(pixels, quality=90))
    marker.write_text(json.dumps({"n": n, "seed": seed}))
    return names
