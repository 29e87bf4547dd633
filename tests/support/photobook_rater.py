"""What the photobook web page loads (rater.json, master vectors), written without the pipeline:
a seeded random learned vector in the layout ``photobook_rater`` writes. The page's tests and its
load benchmark (bench/web) use it; the model itself is tested in tests/photobook/test_photobook.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lenslab.photobook.rating import PhotobookLayout


def write_rater(root: Path, dim: int, image_size: int = 64) -> None:
    """Rater artefacts under ``root`` for an MLSP encoder of ``dim`` features at ``image_size``."""
    layout = PhotobookLayout(root)
    r = np.random.default_rng(0)
    layout.vectors_dir.mkdir(parents=True)
    np.savez(layout.vectors, mean=np.zeros(dim), std=np.ones(dim),
             vector_learned=r.normal(size=dim) / np.sqrt(dim),
             vector_seed_ranksvm=r.normal(size=dim) / np.sqrt(dim))
    layout.provenance.write_text(json.dumps({"vectors": {}}))
    layout.rater_dir.mkdir(parents=True)
    entry = {"available": True, "scale": 1.0}
    layout.rater.write_text(json.dumps({
        "encoder": {"encoder": "mobilenet_v2_mlsp", "image_size": image_size, "pretrained": True},
        "duplicate_threshold": 0.6,
        "vectors": {"learned": {**entry, "description": "learned from preference pairs"},
                    "seed_ranksvm": {**entry, "description": "seed's RankSVM (baseline)"},
                    "prompt_appealing": {"available": False, "description": "prompt"}}}))
