"""Master vectors on the data tree, without Dagster: photos split with their near-duplicates, the
learned vector (C chosen on validation pairs), the seed's RankSVM as the baseline, and prompt
vectors from CLIP's text tower where the encoder is CLIP."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from lenslab.atomic import atomic_path, write_parquet, write_text
from lenslab.photobook.rating import (
    LEARNED,
    Pairs,
    PhotobookLayout,
    fit_learned_vector,
    near_duplicate_groups,
    pixel_near_duplicates,
    scene_groups,
    seed_ranksvm,
    split_groups,
    split_pairs,
    tier_pairs,
)
from lenslab.scaling import Standardiser
from lenslab.seeding import derive_seed


@dataclass(frozen=True)
class VectorSettings:
    train: float
    val: float
    test: float
    duplicate_threshold: float
    tier_gap: int
    c_grid: list[float]
    prompts: list[dict]
    clip_weights: str
    seed: int  # the root seed; the split draws from it by name


@dataclass
class VectorsFit:
    c: float
    curve: list[dict]
    provenance: dict
    common: dict


def _prompt_vectors(info: dict, settings: VectorSettings, device: torch.device
                    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    clip = info["encoder"].startswith("clip")
    vectors, provenance = {}, {}
    if clip:
        from models.photobook.encoders import ClipEncoder, resolve_clip_weights

        encoder = ClipEncoder(resolve_clip_weights(settings.clip_weights), device=device)
        texts = encoder.encode_texts([p["text"] for p in settings.prompts])
    for k, prompt in enumerate(settings.prompts):
        name = f"prompt_{prompt['name']}"
        sign = "minus " if prompt.get("sign", 1) < 0 else ""
        provenance[name] = {"available": clip, "text": prompt["text"],
                            "description": f"prompt: {sign}'{prompt['text']}'",
                            "method": "CLIP text embedding, L2-normalised, times sign"
                            if clip else f"unavailable: encoder {info['encoder']} has no text "
                            "tower"}
        if clip:
            vectors[name] = prompt.get("sign", 1) * texts[k]
    return vectors, provenance


def fit_master_vectors(layout: PhotobookLayout, photos: pd.DataFrame, e: np.ndarray, info: dict,
                       pairs: Pairs, settings: VectorSettings, device: torch.device) -> VectorsFit:
    """Split, fit and write vectors.npz, master_vectors.json and the photo split."""
    fractions = {"train": settings.train, "val": settings.val, "test": settings.test}
    # near-duplicates are found with train-free statistics (all photos), only to group them:
    # by embedding similarity, or by near-identical pixels, which catches burst frames the
    # embedding threshold misses (the split audit found one straddling train and test)
    groups = near_duplicate_groups(
        Standardiser.fit(e)(e), settings.duplicate_threshold,
        pixel_near_duplicates(layout.root, photos["normalised_path"]))
    groups = scene_groups(groups, photos.get("scene"))  # the user's scenes.csv, if any
    split = split_groups(groups, fractions, settings.seed)
    train_photos = np.flatnonzero(split == "train")
    standardiser = Standardiser.fit(e[train_photos])
    tiers = photos["tier"].fillna(-1).to_numpy(dtype=int)
    by_split = split_pairs(pairs, split, tiers, settings.tier_gap)
    pair_split, train, val = by_split.where, by_split.train, by_split.val
    learned = fit_learned_vector(e, train, val, standardiser, settings.c_grid)
    vectors = {LEARNED: learned.vector,
               "seed_ranksvm": seed_ranksvm(e, tier_pairs(tiers, train_photos, 7))}
    provenance = {
        LEARNED: {"available": True, "description": "learned from preference pairs",
                  "method": "logistic ranking, no intercept, standardised embedding "
                  "differences; vector = weights / train std", "C": learned.c,
                  "val_curve": learned.curve, "train_pairs": len(train),
                  "train_pairs_from_tiers": len(train) - int((pair_split == "train").sum()),
                  "val_pairs": len(val), "tier_gap": settings.tier_gap},
        "seed_ranksvm": {"available": True,
                         "description": "seed's RankSVM on tier pairs (baseline)",
                         "method": "LinearSVC hinge loss, no intercept, raw differences, "
                         "tier gap > 6, C 0.5, unit length (the seed's notebook)"},
    }
    prompt_vectors, prompt_provenance = _prompt_vectors(info, settings, device)
    vectors.update(prompt_vectors)
    provenance.update(prompt_provenance)
    common = {"encoder": info, "split_seed": derive_seed(settings.seed, "photobook", "split"),
              "split_fractions": fractions,
              "duplicate_threshold": settings.duplicate_threshold,
              "photos": {s: int((split == s).sum()) for s in ("train", "val", "test")},
              "near_duplicate_groups": int(groups.max() + 1),
              "pairs": {s: int((pair_split == s).sum()) for s in ("train", "val", "test")}}
    with atomic_path(layout.vectors) as tmp, open(tmp, "wb") as f:
        np.savez(f, mean=standardiser.mean, std=standardiser.std,
                 **{f"vector_{n}": v for n, v in vectors.items()})
    write_text(layout.provenance, json.dumps({"vectors": provenance, **common}, indent=2))
    write_parquet(layout.splits, pd.DataFrame({"image_id": photos["image_id"], "group": groups,
                                               "split": split}))
    return VectorsFit(learned.c, learned.curve, provenance, common)
