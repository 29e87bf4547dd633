"""Synthetic photographer folders: the same scenes edited by each photographer, FiveK style.

Writes ``<photographer>/<name>.jpg`` into ``distributed/``, read by
lenslab.formats.photographer_folders: folders ``expert_A`` .. ``expert_E`` (as MIT-Adobe FiveK's
five experts), every photographer rendering every scene, a scene's file named the same in every
folder (``a0001.jpg``, ...).

Content: each scene is a varied base photo (lenslab.synthetic.scenes, a creature in a cluttered
room or garden), edited by each photographer's preset plus per-photo jitter; the presets come
from the same distribution as the Oxford pets photographers' (lenslab.synthetic.oxford_pets), drawn
from this source's own random stream.

Knobs:
    photographers (5)      number of photographers (folders)
    scenes (60)            scenes at scale 1.0; the photo count is scenes x photographers
    jitter (0.05)          per-photo deviation from the preset (see oxford_pets)
    preset_spread (3.0)    how far apart the photographers' looks are (see oxford_pets)
    max_side (160)         longest image side in pixels
    defects (True)         what real exports carry: a ``Thumbs.db`` in one folder, a stray photo
                           beside the folders, a truncated JPEG

Ground truth: ``presets.csv`` (photographer + edit parameters) and ``image_edits.csv`` (image id
+ the exact edit parameters applied); the labels themselves are the folder names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from lenslab.edits import apply_edits
from lenslab.seeding import rng
from lenslab.synthetic.common import encode_jpeg, scaled, write_ground_truth
from lenslab.synthetic.oxford_pets import draw_presets, jittered
from lenslab.synthetic.scenes import random_creature, render_scene

SOURCE = "photographer_folders"


def folder_name(k: int) -> str:
    """FiveK's experts are A-E; past Z, numbers."""
    return f"expert_{chr(ord('A') + k)}" if k < 26 else f"expert_{k + 1}"


def generate(distributed: Path, ground_truth: Path, *, seed: int, scale: float = 1.0,
             photographers: int = 5, scenes: int = 60, jitter: float = 0.05,
             preset_spread: float = 3.0, max_side: int = 160,
             defects: bool = True) -> dict[str, Any]:
    """Write <photographer>/<scene>.jpg into ``distributed``; see the module doc."""
    n_scenes = scaled(scenes, scale, minimum=4)
    presets = draw_presets(seed, photographers, preset_spread, source=SOURCE)
    names = [folder_name(k) for k in range(photographers)]
    edits_rows = []
    for i in range(n_scenes):
        rs = rng(seed, SOURCE, "scene", i)
        side = round(max_side * rs.uniform(0.8, 1.2))
        height, width = (side * 3 // 4, side) if rs.random() < 0.7 else (side, side * 3 // 4)
        scene = render_scene(rs, height, width, creature=random_creature(rs),
                                    subject_size=float(rs.uniform(0.25, 0.5)))
        stem = f"a{i + 1:04d}"
        for k, name in enumerate(names):
            r = rng(seed, SOURCE, "edit", i, k)
            edit = jittered(presets[k], r, jitter, preset_spread)
            target = distributed / name / f"{stem}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            # plain writes: the ingestion builds distributed/ in a temporary folder, swapped in
            target.write_bytes(encode_jpeg(apply_edits(scene.pixels, edit, rng=r),
                                           quality=int(r.integers(85, 96))))
            edits_rows.append({"image": f"{name}/{stem}.jpg", **edit.to_dict()})
    if defects:
        (distributed / names[0] / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + b"\x00" * 60)
        (distributed / "cover.jpg").write_bytes((distributed / names[0] / "a0001.jpg").read_bytes())
        truncated = distributed / names[-1] / f"a{n_scenes + 1:04d}.jpg"
        truncated.write_bytes((distributed / names[-1] / "a0001.jpg").read_bytes()[:400])
    write_ground_truth(ground_truth, "presets", pd.DataFrame(
        [{"photographer": name, **p.to_dict()} for name, p in zip(names, presets, strict=True)]))
    write_ground_truth(ground_truth, "image_edits", pd.DataFrame(edits_rows))
    return {"photographers": photographers, "scenes": n_scenes,
            "photos": n_scenes * photographers, "defects": defects}
