"""Landmark pose similarity, the plain logic: the pose schema, skeleton masks, pairs, role models.

Pose table (``pose_keypoints.parquet``): one row per kept person, up to the top ``max_persons``
by score (the seed kept the top two to drop background people), in the pixel frame of the image
the backend saw (``width`` x ``height``). An image where no person was found keeps one row with
``person = -1`` and no keypoints, so "no person" is data, not an error. Keypoints outside the
frame are dropped (confidence 0, coordinates NaN): a person cut at the border keeps only what is
in view. ``backend`` records who produced each row.

Pairs follow the seed (positives = all 2-combinations of a Site::Pose folder) with its weaknesses
fixed: negatives mix the seed's hard negatives (same site, another pose or ``_zz``) with
different-site ones, and the split is by *site* (see :func:`image_groups`), so no image, and no
background, is in two splits (the seed split pairs 90/10 and leaked images).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from lenslab.formats.landmark_photos import COCO_KEYPOINTS, COCO_SKELETON, NO_PERSON_POSE
from lenslab.seeding import rng

SOURCE = "landmark_photos"
SPLITS = ("train", "val", "test")
KP_COLUMNS = tuple(f"{n}_{a}" for n in COCO_KEYPOINTS for a in ("x", "y", "c"))
POSE_COLUMNS = ("image_id", "sha256", "backend", "person", "score", "width", "height",
                "bbox_x", "bbox_y", "bbox_w", "bbox_h", *KP_COLUMNS)
NEGATIVE_KINDS = ("other_pose", "no_person", "other_site")
# COCO left/right partners: mirroring a pose swaps them
FLIP_INDEX = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
POSE_VECTOR_DIM = 3 * len(COCO_KEYPOINTS) + 1


# ------------------------------------------------------------------------------------ schema
@dataclass(frozen=True)
class PersonPose:
    """One person: (17, 3) keypoints (x, y, confidence; confidence 0 = not found) and a box."""

    keypoints: np.ndarray
    score: float
    bbox: tuple[float, float, float, float] | None = None  # x, y, w, h


def in_frame(person: PersonPose, width: int, height: int) -> PersonPose | None:
    """Keep only keypoints inside the image; ``None`` if none is left. The box is clipped too
    (or made from the kept keypoints when the backend gave none)."""
    kps = np.asarray(person.keypoints, dtype=float).reshape(len(COCO_KEYPOINTS), 3).copy()
    x, y, c = kps[:, 0], kps[:, 1], kps[:, 2]
    keep = np.isfinite(x) & np.isfinite(y) & (c > 0) & (x >= 0) & (x < width) & (y >= 0) & (
        y < height)
    if not keep.any():
        return None
    kps[~keep] = (np.nan, np.nan, 0.0)
    if person.bbox is not None and all(np.isfinite(person.bbox)):
        bx, by, bw, bh = person.bbox
        x0, y0 = max(0.0, bx), max(0.0, by)
        x1, y1 = min(float(width), bx + bw), min(float(height), by + bh)
    else:
        x0, y0 = np.nanmin(kps[:, 0]), np.nanmin(kps[:, 1])
        x1, y1 = np.nanmax(kps[:, 0]), np.nanmax(kps[:, 1])
    return PersonPose(kps, float(person.score), (float(x0), float(y0), float(x1 - x0),
                                                 float(y1 - y0)))


def top_persons(persons: Sequence[PersonPose], width: int, height: int,
                max_persons: int) -> list[PersonPose]:
    """In-frame persons, best score first, at most ``max_persons``."""
    kept = [p for p in (in_frame(q, width, height) for q in persons) if p is not None]
    return sorted(kept, key=lambda p: -p.score)[:max_persons]


def pose_rows(image_id: str, sha256: str, width: int, height: int, persons: Sequence[PersonPose],
              backend: str, max_persons: int) -> list[dict]:
    """The table rows of one image (one ``person = -1`` row when no person is found)."""
    kept = top_persons(persons, width, height, max_persons)
    base = {"image_id": image_id, "sha256": sha256, "backend": backend, "width": int(width),
            "height": int(height)}
    if not kept:
        return [{**base, "person": -1, "score": 0.0,
                 **dict.fromkeys(("bbox_x", "bbox_y", "bbox_w", "bbox_h"), np.nan),
                 **{c: (0.0 if c.endswith("_c") else np.nan) for c in KP_COLUMNS}}]
    rows = []
    for index, p in enumerate(kept):
        rows.append({**base, "person": index, "score": p.score,
                     **dict(zip(("bbox_x", "bbox_y", "bbox_w", "bbox_h"), p.bbox, strict=True)),
                     **dict(zip(KP_COLUMNS, p.keypoints.reshape(-1).tolist(), strict=True))})
    return rows


def pose_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(POSE_COLUMNS))
    frame[["person", "width", "height"]] = frame[["person", "width", "height"]].astype("int64")
    return frame


def keypoints_of(rows: pd.DataFrame) -> np.ndarray:
    """(n, 17, 3) keypoints of pose-table rows."""
    return rows[list(KP_COLUMNS)].to_numpy(dtype=float).reshape(len(rows), len(COCO_KEYPOINTS),
                                                                3)


# ----------------------------------------------------------------------------- pose features
def pose_vectors(poses: pd.DataFrame, image_ids: Sequence[str]) -> np.ndarray:
    """(n, 52) float32 per image: the main person's keypoints, centred on their mean and scaled
    by their spread (so place and size in the photo do not matter), confidence, and a presence
    flag; zeros where no person was found."""
    main = poses[poses["person"] == 0].drop_duplicates("image_id").set_index("image_id")
    out = np.zeros((len(image_ids), POSE_VECTOR_DIM), np.float32)
    if main.empty:
        return out
    kps = keypoints_of(main)
    where = {image_id: i for i, image_id in enumerate(main.index)}
    for row, image_id in enumerate(image_ids):
        i = where.get(image_id)
        if i is None:
            continue
        k = kps[i]
        seen = k[:, 2] > 0
        centre = k[seen, :2].mean(0)
        spread = max(float(np.ptp(k[seen, 1])), float(np.ptp(k[seen, 0])), 1.0)
        xy = np.where(seen[:, None], (k[:, :2] - centre) / spread, 0.0)
        out[row, :-1] = np.concatenate([xy, seen[:, None].astype(float)], 1).reshape(-1)
        out[row, -1] = 1.0
    return out


# ------------------------------------------------------------------------------------- masks
def draw_mask(persons: np.ndarray, width: int, height: int, size: int,
              line_width: int = 2) -> Image.Image:
    """The seed's skeleton mask (limbs of each person, white on black), rasterised at the output
    ``size`` rather than drawn at full size and shrunk (which made the seed's 2-px lines vanish).

    ``persons``: (k, 17, 3) keypoints in the ``width`` x ``height`` frame.
    """
    image = Image.new("L", (size, size))
    draw = ImageDraw.Draw(image)
    scale = np.array([size / width, size / height])
    for kps in persons:
        for a, b in COCO_SKELETON:
            pa, pb = kps[a - 1], kps[b - 1]
            if pa[2] > 0 and pb[2] > 0:
                draw.line([tuple(pa[:2] * scale), tuple(pb[:2] * scale)], fill=255,
                          width=line_width)
    return image


# ------------------------------------------------------------------------------------ images
_TAKEN = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2})(?:\.(\d{3}))?")


def taken_at(image_id: str) -> pd.Timestamp:
    """When a screenshot was taken, from its ``Firefox_Screenshot_<time>`` name (NaT if none)."""
    m = _TAKEN.search(Path(image_id).name)
    if not m:
        return pd.NaT
    t = datetime.strptime(m.group(1), "%Y-%m-%dT%H-%M-%S")
    return pd.Timestamp(t) + pd.Timedelta(milliseconds=int(m.group(2) or 0))


def landmark_images(catalog: pd.DataFrame) -> pd.DataFrame:
    """The catalog's landmark photos, one per distinct content, with site, pose and time."""
    rows = catalog[(catalog["source"] == SOURCE) & catalog["duplicate_of"].isna()]
    rows = rows.drop_duplicates("sha256").sort_values("image_id")
    if rows.empty:
        raise ValueError(f"the catalog has no {SOURCE} images")
    labels = [json.loads(x) if x else {} for x in rows["labels"]]
    missing = [i for i, lab in zip(rows["image_id"], labels, strict=True)
               if "site" not in lab or "pose" not in lab]
    if missing:
        raise ValueError(f"catalog rows without site/pose labels, e.g. {missing[0]}")
    out = rows[["image_id", "sha256", "normalised_path", "width", "height"]].copy()
    out["site"] = [lab["site"] for lab in labels]
    out["pose"] = [lab["pose"] for lab in labels]
    out["has_person"] = out["pose"] != NO_PERSON_POSE
    out["taken_at"] = [taken_at(i) for i in out["image_id"]]
    return out.reset_index(drop=True)


# ------------------------------------------------------------------------------------- pairs
def image_groups(images: pd.DataFrame) -> pd.Series:
    """The unit a split keeps whole: the site, so no background is in two splits; with fewer
    than three sites (tiny synthetic scales) the Site::Pose folder, so still no image is."""
    if images["site"].nunique() >= 3:
        return images["site"].astype(str)
    return images["site"].astype(str) + "::" + images["pose"].astype(str)


def split_groups(groups: Sequence[str], fractions: Mapping[str, float],
                 seed: int) -> dict[str, str]:
    """Group -> split: groups shuffled (seeded) and cut by the fractions, each split keeping at
    least one group (so at least three groups are needed)."""
    unique = sorted(set(groups))
    if len(unique) < 3:
        raise ValueError(f"a train/val/test split needs at least 3 groups, got {unique}")
    order = [unique[i] for i in rng(seed, "pose", "group_split").permutation(len(unique))]
    total = sum(fractions[s] for s in SPLITS)
    counts = [max(1, round(fractions[s] / total * len(order))) for s in SPLITS[1:]]
    while len(order) - sum(counts) < 1:  # the train split keeps at least one site
        counts[int(np.argmax(counts))] -= 1
    n_val, n_test = counts
    n_train = len(order) - n_val - n_test
    names = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    return dict(zip(order, names, strict=True))


def assign_splits(images: pd.DataFrame, fractions: Mapping[str, float],
                  seed: int) -> tuple[pd.Series, pd.Series]:
    """(group, split) per image. By site, groups are cut as :func:`split_groups` does; by
    folder (fewer than three sites), the pose folders are, so every split has positives, and the
    ``_zz`` folders are dealt to the splits in turn, test first."""
    groups = image_groups(images)
    if images["site"].nunique() >= 3:
        return groups, groups.map(split_groups(groups, fractions, seed))
    posed = groups[images["has_person"].to_numpy()]
    split_of = split_groups(posed, fractions, seed)
    empty = sorted(set(groups[~images["has_person"].to_numpy()]))
    deal = ("test", "val", "train")  # the small splits first: they need negatives most
    split_of |= {g: deal[i % len(deal)] for i, g in enumerate(empty)}
    return groups, groups.map(split_of)


def make_pairs(images: pd.DataFrame, negative_mix: Mapping[str, float],
               seed: int) -> pd.DataFrame:
    """Positives: every 2-combination inside a Site::Pose folder. One negative per positive, with
    the same anchor, its kind drawn from ``negative_mix`` among the kinds possible in the split:
    ``other_pose`` (same site, another pose), ``no_person`` (same site, ``_zz``), ``other_site``.
    Pairs only join images of the same split (``images["split"]``)."""
    kinds = [k for k in NEGATIVE_KINDS if negative_mix.get(k, 0) > 0]
    if not kinds:
        raise ValueError(f"negative_mix needs a positive weight for one of {NEGATIVE_KINDS}")
    rows = []
    for split in SPLITS:
        part = images[images["split"] == split]
        r = rng(seed, "pose", "pairs", split)
        for (site, pose), folder in part.groupby(["site", "pose"], sort=True):
            if pose == NO_PERSON_POSE:
                continue
            pools = {
                "other_pose": part[(part["site"] == site) & (part["pose"] != pose)
                                   & part["has_person"]],
                "no_person": part[(part["site"] == site) & ~part["has_person"]],
                "other_site": part[part["site"] != site],
            }
            possible = [k for k in kinds if len(pools[k])]
            weights = np.array([negative_mix[k] for k in possible], float)
            for a, b in combinations(folder.itertuples(index=False), 2):
                rows.append(_pair(split, a, b, 1, "positive"))
                if not possible:
                    continue
                kind = possible[r.choice(len(possible), p=weights / weights.sum())]
                pool = pools[kind]
                neg = pool.iloc[int(r.integers(len(pool)))]
                rows.append(_pair(split, a, neg, 0, kind))
    return pd.DataFrame(rows, columns=["split", "a", "b", "label", "kind", "site_a", "site_b",
                                       "pose_a", "pose_b"])


def _pair(split: str, a, b, label: int, kind: str) -> dict:
    return {"split": split, "a": a.image_id, "b": b.image_id, "label": label, "kind": kind,
            "site_a": a.site, "site_b": b.site, "pose_a": a.pose, "pose_b": b.pose}


def images_in_several_splits(pairs: pd.DataFrame, images: pd.DataFrame) -> list[str]:
    """Images (by content) that appear in pairs of more than one split: must be empty."""
    sha = images.set_index("image_id")["sha256"]
    long = pd.concat([pairs[["split", "a"]].rename(columns={"a": "image_id"}),
                      pairs[["split", "b"]].rename(columns={"b": "image_id"})])
    long["sha256"] = long["image_id"].map(sha)
    per_image = long.groupby("sha256")["split"].nunique()
    return sorted(per_image[per_image > 1].index)


def split_files(pairs: pd.DataFrame, images: pd.DataFrame) -> pd.DataFrame:
    """image_id, path (its normalised copy), split: one row per image and split its pairs use,
    for an audit that reads the files (lenslab.split_audit)."""
    long = pd.concat([pairs[["split", "a"]].rename(columns={"a": "image_id"}),
                      pairs[["split", "b"]].rename(columns={"b": "image_id"})])
    path = images.set_index("image_id")["normalised_path"]
    long = long.drop_duplicates().assign(path=lambda d: d["image_id"].map(path))
    return long[["image_id", "path", "split"]].reset_index(drop=True)


def pair_counts(pairs: pd.DataFrame) -> pd.DataFrame:
    """The seed's table: pairs per split and type (positive, and each negative kind)."""
    table = pairs.groupby(["split", "kind"]).size().unstack(fill_value=0)
    table = table.reindex(index=[s for s in SPLITS if s in table.index],
                          columns=[k for k in ("positive", *NEGATIVE_KINDS) if k in table.columns],
                          fill_value=0)
    table["total"] = table.sum(axis=1)
    return table


# -------------------------------------------------------------------------------- role models
def role_models(images: pd.DataFrame, scores: pd.DataFrame, model: str,
                threshold: float = 0.5) -> pd.DataFrame:
    """For each photo with a person: the earliest earlier photo the model calls similar
    (predicted role model) beside the earliest earlier photo of the same site and pose (true).

    ``scores``: unordered image pairs (``a``, ``b``) with a ``p_<model>`` column.
    """
    p = {}
    for a, b, v in zip(scores["a"], scores["b"], scores[f"p_{model}"], strict=True):
        p[(a, b)] = p[(b, a)] = float(v)
    ordered = images.sort_values(["taken_at", "image_id"]).reset_index(drop=True)
    rows = []
    for i, q in enumerate(ordered.itertuples(index=False)):
        if not q.has_person:
            continue
        earlier = ordered.iloc[:i]
        truth = earlier[(earlier["site"] == q.site) & (earlier["pose"] == q.pose)]
        called = [e for e in earlier["image_id"] if p.get((q.image_id, e), 0.0) >= threshold]
        rows.append({"query": q.image_id, "true_role_model": truth["image_id"].iloc[0]
                     if len(truth) else None, "predicted": called[0] if called else None})
    out = pd.DataFrame(rows, columns=["query", "true_role_model", "predicted"])
    out["correct"] = out["true_role_model"].fillna("") == out["predicted"].fillna("")
    return out


@dataclass(frozen=True)
class PoseLayout:
    """Where the pose system keeps its files under the data root (outside raw/)."""

    # the stage folders under the data root (the assets' Stage outs name these)
    KEYPOINTS = "pose/keypoints"
    MASKS = "pose/masks"
    PAIRS = "pose/pairs"
    MODELS = "pose/models"
    REPORT = "reports/pose"

    root: Path

    @property
    def keypoints(self) -> Path:
        return self.root / self.KEYPOINTS / "pose_keypoints.parquet"

    @property
    def masks(self) -> Path:
        return self.root / self.MASKS

    def mask(self, sha256: str) -> Path:
        return self.masks / sha256[:2] / f"{sha256}.png"

    @property
    def pairs_dir(self) -> Path:
        return self.root / self.PAIRS

    @property
    def pairs(self) -> Path:
        return self.pairs_dir / "landmark_pairs.parquet"

    @property
    def images(self) -> Path:
        return self.pairs_dir / "images.parquet"

    @property
    def models(self) -> Path:
        return self.root / self.MODELS

    @property
    def report(self) -> Path:
        return self.root / self.REPORT


# -------------------------------------------------------------------------- the served model
def chosen_variant(predictions: pd.DataFrame, variants: Sequence[str]) -> str:
    """The variant `lenslab similar` serves: the best validation ROC-AUC (never chosen on test;
    accuracy where the validation pairs hold one class only, as at tiny synthetic scales)."""
    from lenslab.metrics import accuracy, roc_auc

    val = predictions[predictions["split"] == "val"]
    if val.empty:
        raise ValueError("no validation pairs: no variant can be chosen")
    score = roc_auc if val["label"].nunique() == 2 else accuracy
    return max(variants, key=lambda n: score(val["label"].to_numpy(), val[f"p_{n}"].to_numpy()))


def quality_problems(metrics: dict, chosen: str, baseline: str = "frozen") -> list[str]:
    """Why the chosen variant must not be promoted: its test ROC-AUC interval reaches chance, or
    it scores below the image-only frozen baseline on test ROC-AUC."""
    m = metrics["models"][chosen]
    problems = []
    if not m["roc_auc_ci95"][0] > 0.5:  # NaN (one class in the test pairs) fails too
        problems.append(f"{chosen} test ROC-AUC 95% interval {m['roc_auc_ci95']} reaches chance")
    if not m["roc_auc"] >= metrics["models"][baseline]["roc_auc"]:
        problems.append(f"{chosen} test ROC-AUC {m['roc_auc']:.3f} below the {baseline} "
                        f"baseline's {metrics['models'][baseline]['roc_auc']:.3f}")
    return problems
