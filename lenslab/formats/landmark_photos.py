"""Instagram-style landmark photos in <Site>/<Pose>/ folders (the InstaModel seed's layout).

The dataset, relative to its root:

    Data/<Site>/<Pose>/<image>.png     one folder per site and pose; the pose ``_zz`` holds photos
                                       of the site without a person
    Data/labels.csv                    optional index: Site, Pose, Path, label (= "Site::Pose")
    manifest.csv                       optional URL manifest: url, site, pose (required) and
                                       licence, source_page, consent_basis, added_by, added_at
    annotations/person_keypoints.json  optional COCO person keypoints (17 per person)

The folder layout is the truth: every image in a <Site>/<Pose>/ folder is a record, labelled by
its folder names (``site``, ``pose``, ``label`` = "Site::Pose", ``has_person``). labels.csv and
the manifest are cross-checked against it; their bad rows are rejected with their line (files
named relative to the data root, as record paths are). A bare <Site>/<Pose>/ tree without the
``Data/`` folder is read too. The seed wrote its pose masks beside the photos as
``<image>_pose.png`` and then indexed them as photos; such files are rejected as derived
artefacts.

Image ids are ``landmark_photos:Data/<Site>/<Pose>/<file>``. Fetched images live at
``site_pose_dir(site, pose)/<sha256>.<ext>`` (see :func:`manifest_target`).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from lenslab.errors import DataError
from lenslab.formats import reading
from lenslab.records import ParseResult

SOURCE = "landmark_photos"
NO_PERSON_POSE = "_zz"
DATA_DIR = "Data"
LABELS_FILE = "labels.csv"
MANIFEST_FILE = "manifest.csv"
KEYPOINTS_FILE = "annotations/person_keypoints.json"
MASK_STEM_SUFFIX = "_pose"
# Data/ with its manifest and keypoints; without Data/, a bare <Site>/<Pose>/ tree or one
# folder wrapping Data/ (any name): every visible folder is then the dataset's
DISTRIBUTION = reading.Distribution(files=(MANIFEST_FILE, LABELS_FILE),
                                    folders=(DATA_DIR, "annotations"), any_folder=True)

LABELS_COLUMNS = ("Site", "Pose", "Path", "label")
MANIFEST_REQUIRED = ("url", "site", "pose")
MANIFEST_COLUMNS = (*MANIFEST_REQUIRED, "licence", "source_page", "consent_basis", "added_by",
                    "added_at")

COCO_KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
# COCO's person skeleton: pairs of 1-based keypoint indices, as in the COCO annotation files.
COCO_SKELETON = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
    (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)
KEYPOINT_COLUMNS = tuple(f"{name}_{axis}" for name in COCO_KEYPOINTS for axis in ("x", "y", "v"))
BBOX_COLUMNS = ("bbox_x", "bbox_y", "bbox_w", "bbox_h")


# ------------------------------------------------------------------------------ folder naming
def folder_name(name: str) -> str:
    """A site or pose name as a folder name: NFC, runs of anything but letters, digits, ``_``
    and ``-`` become ``_`` ("Big Ben" -> "Big_Ben", "Hände zusammen" -> "Hände_zusammen")."""
    cleaned = re.sub(r"[^\w-]+", "_", unicodedata.normalize("NFC", str(name)).strip())
    if not cleaned.strip("_-"):
        raise DataError(repr(name), "a site or pose name needs a letter or a digit")
    return cleaned


def site_pose_dir(site: str, pose: str) -> str:
    """The folder, relative to the dataset root, that holds the images of one site and pose."""
    return f"{DATA_DIR}/{folder_name(site)}/{folder_name(pose)}"


def manifest_target_dir(row: Mapping[str, Any]) -> str:
    """The folder a manifest row's image belongs in (a scraper adds ``<sha256>.<ext>``)."""
    return site_pose_dir(row["site"], row["pose"])


def _is_url(value: str) -> bool:
    return urlparse(value).scheme in ("http", "https")


def manifest_target(row: Mapping[str, Any], *, sha256: str | None = None,
                    ext: str | None = None) -> str:
    """Where a manifest row's image lives in the folder layout, relative to the dataset root.

    An http(s) row is stored under its content hash, so it needs ``sha256`` (an argument or a
    ``sha256`` column) and an extension (``ext``, else the URL's); a row whose ``url`` is a
    relative path keeps its file name.
    """
    url = str(row["url"]).strip()
    if _is_url(url):
        digest = sha256 or str(row.get("sha256") or "").strip()
        suffix = (ext or PurePosixPath(urlparse(url).path).suffix).lstrip(".").lower()
        if not digest or not suffix:
            raise DataError(url, "an http row is stored as <sha256>.<ext>: both must be known")
        name = f"{digest}.{suffix}"
    else:
        name = PurePosixPath(url.replace("\\", "/")).name
        if not name or name in (".", ".."):
            raise DataError(url, "the url names no file")
    return f"{manifest_target_dir(row)}/{name}"


# ---------------------------------------------------------------------------------- CSV files
def _csv_table(path: Path, required: tuple[str, ...],
               data_root: Path) -> tuple[pd.DataFrame, list[reading.Rejected]]:
    """All cells as text plus each row's ``line``; rows with a wrong field count are rejected."""
    rows, rejected = reading.csv_rows(path, required, data_root)
    columns = list(rows[0][1]) if rows else list(required)
    table = pd.DataFrame([values for _, values in rows], columns=columns, dtype=object)
    table["line"] = pd.Series([line for line, _ in rows], dtype="Int64")
    return table, rejected


def read_manifest(path: Path) -> pd.DataFrame:
    """A URL manifest (url, site, pose required; other columns kept) with each row's ``line``.

    Rows with a wrong number of fields are left out; :func:`parse` reports them.
    """
    return _csv_table(Path(path), MANIFEST_REQUIRED, Path(path).parent)[0]


# --------------------------------------------------------------------------------------- parse
def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _key(name: str) -> str | None:
    """A path as labels.csv, the manifest or the COCO file writes it -> its place under Data/.

    Everything up to the last ``Data`` folder is dropped, so ``Data/x``, ``x`` and a Windows
    path ``C:\\...\\Data\\x`` all name ``x``; paths that climb out (``..``) name nothing.
    Keys are NFC, so folder names written in either Unicode normal form match.
    """
    parts = [p for p in _nfc(name).replace("\\", "/").split("/") if p not in ("", ".")]
    if DATA_DIR in parts:
        parts = parts[len(parts) - parts[::-1].index(DATA_DIR):]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def _find_root(extracted: Path) -> tuple[Path, Path]:
    """(dataset root, Data folder): ``Data/`` at the top, inside one wrapping folder, or none."""
    if not extracted.is_dir():
        raise DataError(extracted, "the extracted dataset folder does not exist")
    if (extracted / DATA_DIR).is_dir():
        return extracted, extracted / DATA_DIR
    subdirs = [d for d in extracted.iterdir() if d.is_dir() and not d.name.startswith(".")]
    if len(subdirs) == 1 and (subdirs[0] / DATA_DIR).is_dir():
        return subdirs[0], subdirs[0] / DATA_DIR
    return extracted, extracted


def _is_mask(name: str) -> bool:
    return PurePosixPath(name).stem.lower().endswith(MASK_STEM_SUFFIX)


MASK_REASON = "derived artefact: a pose mask (<image>_pose.png) written beside its photo"


def _walk_layout(root: Path, data_dir: Path, data_root: Path,
                 rejected: list[reading.Rejected]) -> dict[str, dict[str, Any]]:
    """Every image in a <Site>/<Pose>/ folder -> its record, by :func:`_key`; stray files are
    rejected. Files beside the site folders (labels.csv, annotations/) are not images."""
    records: dict[str, dict[str, Any]] = {}
    for path in sorted(data_dir.rglob("*")):
        rel = path.relative_to(data_dir)
        if not path.is_file() or any(p.startswith(".") for p in rel.parts):
            continue
        is_image = path.suffix.lower() in reading.IMAGE_SUFFIXES
        if (len(rel.parts) == 1 and not is_image) or (data_dir == root and
                                                      rel.parts[0] == "annotations"):
            continue
        where = reading.relative_posix(path, data_root)
        if not is_image:
            rejected.append((where, None, "not an image file"))
        elif _is_mask(path.name):
            rejected.append((where, None, MASK_REASON))
        elif len(rel.parts) != 3:
            rejected.append((where, None, "not in a <Site>/<Pose>/ folder"))
        else:
            site, pose = _nfc(rel.parts[0]), _nfc(rel.parts[1])
            records[_nfc(rel.as_posix())] = {
                "image_id": reading.image_id(SOURCE, f"{DATA_DIR}/{rel.as_posix()}"),
                "source": SOURCE,
                "path": reading.relative_posix(path, data_root),
                "split": None,
                "site": site,
                "pose": pose,
                "label": f"{site}::{pose}",
                "has_person": pose != NO_PERSON_POSE,
            }
    return records


def _check_labels(path: Path, data_root: Path, records: dict[str, dict],
                  rejected: list[reading.Rejected]) -> None:
    """labels.csv indexes the folders: rows that disagree with them are rejected."""
    where = reading.relative_posix(path, data_root)
    labels, bad_rows = _csv_table(path, LABELS_COLUMNS, data_root)
    rejected += bad_rows
    for row in labels.itertuples(index=False):
        target = _key(row.Path)
        site, pose, label = _nfc(row.Site), _nfc(row.Pose), _nfc(row.label)
        if target is not None and _is_mask(target):
            reason = MASK_REASON
        elif target not in records:
            reason = f"listed image missing: {row.Path}"
        elif (site, pose) != (records[target]["site"], records[target]["pose"]):
            reason = f"Site/Pose {site}::{pose} disagree with the folders of {row.Path}"
        elif label != f"{site}::{pose}":
            reason = f"label {label!r} is not Site::Pose"
        else:
            continue
        rejected.append((where, row.line, reason))


def _manifest_table(path: Path, data_root: Path, records: dict[str, dict],
                    rejected: list[reading.Rejected]) -> pd.DataFrame:
    where = reading.relative_posix(path, data_root)
    manifest, bad_rows = _csv_table(path, MANIFEST_REQUIRED, data_root)
    rejected += bad_rows
    targets, ids = [], []
    for row in manifest.to_dict(orient="records"):
        target = None
        if not all(str(row[c]).strip() for c in MANIFEST_REQUIRED):
            rejected.append((where, row["line"], "empty url, site or pose"))
        else:
            try:
                target = manifest_target(row)
            except DataError as exc:
                if not _is_url(str(row["url"])):  # http rows are named once fetched
                    rejected.append((where, row["line"], exc.reason))
        located = _key(target) if target else None
        targets.append(target)
        ids.append(records[located]["image_id"] if located in records else None)
    return manifest.assign(target=targets, image_id=ids, present=[i is not None for i in ids])


def _keypoints_table(path: Path, data_root: Path, records: dict[str, dict],
                     rejected: list[reading.Rejected]) -> pd.DataFrame:
    """COCO person keypoints -> one row per person; person 0 is the largest in its image."""
    where = reading.relative_posix(path, data_root)
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"not a readable COCO JSON file: {exc}") from None
    if not isinstance(coco, dict) or not all(isinstance(coco.get(k), list)
                                             for k in ("images", "annotations")):
        raise DataError(path, "a COCO keypoint file needs the lists 'images' and 'annotations'")
    for category in coco.get("categories", []):
        names = category.get("keypoints")
        if names is not None and tuple(names) != COCO_KEYPOINTS:
            raise DataError(path, f"category {category.get('name')!r} does not use COCO-17")
    images = {}
    for image in coco["images"]:
        target = _key(str(image.get("file_name", "")))
        images[image.get("id")] = records.get(target, {}).get("image_id")
    rows = []
    for ann in coco["annotations"]:
        image_id = images.get(ann.get("image_id"))
        kps, bbox = ann.get("keypoints"), ann.get("bbox") or [float("nan")] * 4
        if image_id is None:
            reason = f"image {ann.get('image_id')!r} is not a listed image"
        elif not isinstance(kps, list) or len(kps) != 3 * len(COCO_KEYPOINTS):
            reason = "keypoints are not 17 (x, y, v) triples"
        elif not all(isinstance(v, int | float) for v in [*kps, *bbox]) or len(bbox) != 4:
            reason = "keypoints or bbox are not numbers"
        else:
            rows.append({"image_id": image_id, "annotation_id": ann.get("id"),
                         **dict(zip(KEYPOINT_COLUMNS, kps, strict=True)),
                         **dict(zip(BBOX_COLUMNS, bbox, strict=True)),
                         "num_keypoints": sum(1 for v in kps[2::3] if v > 0)})
            continue
        rejected.append((where, None, f"annotation {ann.get('id')!r}: {reason}"))
    columns = ["image_id", "annotation_id", *KEYPOINT_COLUMNS, *BBOX_COLUMNS, "num_keypoints"]
    table = pd.DataFrame(rows, columns=columns)
    table[[*KEYPOINT_COLUMNS, *BBOX_COLUMNS]] = table[[*KEYPOINT_COLUMNS, *BBOX_COLUMNS]].astype(
        float)
    table["area"] = table["bbox_w"].fillna(0) * table["bbox_h"].fillna(0)
    table = table.sort_values(["image_id", "area"], ascending=[True, False], kind="stable")
    table.insert(1, "person", table.groupby("image_id").cumcount())
    table["source"] = "annotations"
    return table.drop(columns="area").reset_index(drop=True)


def parse(extracted: Path, data_root: Path) -> ParseResult:
    """Read the landmark photos under ``extracted``; image paths relative to ``data_root``."""
    extracted, data_root = Path(extracted), Path(data_root)
    root, data_dir = _find_root(extracted)
    rejected: list[reading.Rejected] = []
    found = _walk_layout(root, data_dir, data_root, rejected)
    if not found:
        raise DataError(data_dir, "no images in <Site>/<Pose>/ folders")
    tables: dict[str, pd.DataFrame] = {}
    if (data_dir / LABELS_FILE).is_file():
        _check_labels(data_dir / LABELS_FILE, data_root, found, rejected)
    if (root / MANIFEST_FILE).is_file():
        tables["manifest"] = _manifest_table(root / MANIFEST_FILE, data_root, found,
                                             rejected)
    if (root / KEYPOINTS_FILE).is_file():
        tables["keypoints"] = _keypoints_table(root / KEYPOINTS_FILE, data_root, found,
                                               rejected)
    records = pd.DataFrame(list(found.values()))
    return ParseResult(records=records, rejected=ParseResult.reject(rejected), tables=tables)
