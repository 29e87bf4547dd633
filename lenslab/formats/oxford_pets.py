"""Oxford-IIIT Pet (Parkhi et al. 2012), as distributed in images.tar.gz + annotations.tar.gz.

Extracted tree (bare, or wrapped in torchvision's ``oxford-iiit-pet/``)::

    images/<Breed_name>_<n>.jpg          cats' breeds start upper-case, dogs' lower-case
    annotations/list.txt                 '#' header lines, then "Image CLASS-ID SPECIES BREED-ID"
    annotations/trainval.txt, test.txt   the paper's split, same columns, no header
    annotations/trimaps/<stem>.png       1 foreground, 2 background, 3 unsure border
    annotations/xmls/<stem>.xml          PASCAL VOC head box (most trainval images)

CLASS-ID is 1..37 in case-insensitive alphabetical breed order; SPECIES is 1 cat, 2 dog; BREED-ID
is the index within the species (cats 1..12, dogs 1..25; the dataset's README says the opposite).
Each row is checked against the stem's breed name, so a label that disagrees with the file name
is rejected rather than trusted. Known defects are handled: ``.mat`` files and AppleDouble ``._*``
files among the data (rejected as not images), images present but not listed (kept, unlabelled),
PNG/GIF/RGBA files named ``.jpg`` (kept: the catalog decodes by content).
"""

from __future__ import annotations

from pathlib import Path

import defusedxml.ElementTree as SafeET
import pandas as pd

from lenslab.errors import DataError
from lenslab.formats import reading
from lenslab.records import ParseResult

SOURCE = "oxford_pets"
WRAPPERS = ("oxford-iiit-pet",)
# the two archives as downloaded, or the folders they unpack to (torchvision keeps both)
DISTRIBUTION = reading.Distribution(files=("images.tar.gz", "annotations.tar.gz"),
                                    folders=("images", "annotations"), wrappers=WRAPPERS)
# CLASS-ID order (1..37): breed names sorted case-insensitively
BREEDS = (
    "Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle",
    "Bengal", "Birman", "Bombay", "boxer", "British_Shorthair", "chihuahua", "Egyptian_Mau",
    "english_cocker_spaniel", "english_setter", "german_shorthaired", "great_pyrenees",
    "havanese", "japanese_chin", "keeshond", "leonberger", "Maine_Coon", "miniature_pinscher",
    "newfoundland", "Persian", "pomeranian", "pug", "Ragdoll", "Russian_Blue", "saint_bernard",
    "samoyed", "scottish_terrier", "shiba_inu", "Siamese", "Sphynx",
    "staffordshire_bull_terrier", "wheaten_terrier", "yorkshire_terrier",
)
SPECIES = {1: "cat", 2: "dog"}
LIST_COLUMNS = ("Image", "CLASS-ID", "SPECIES", "BREED-ID")
RECORD_DTYPES = {
    "image_id": "str", "source": "str", "path": "str", "split": "str",
    "breed": "str", "class_id": "Int64", "species": "str", "breed_id": "Int64",
}


def species_code(breed: str) -> int:
    """1 for cats (upper-case initial), 2 for dogs."""
    return 1 if breed[0].isupper() else 2


def breed_labels(breed: str) -> tuple[int, int, int]:
    """(CLASS-ID, SPECIES, BREED-ID) of a breed name, as list.txt writes them."""
    species = species_code(breed)
    same_species = [b for b in BREEDS if species_code(b) == species]
    return BREEDS.index(breed) + 1, species, same_species.index(breed) + 1


def parse_list_row(fields: list[str]) -> dict | str:
    """One list.txt row -> labels, or the reason it cannot be used."""
    if len(fields) != len(LIST_COLUMNS):
        return f"expected {len(LIST_COLUMNS)} fields {' '.join(LIST_COLUMNS)}, got {len(fields)}"
    stem, *numbers = fields
    try:
        class_id, species, breed_id = (int(n) for n in numbers)
    except ValueError:
        return f"non-integer label in {' '.join(fields)!r}"
    breed = stem.rsplit("_", 1)[0]
    if breed not in BREEDS or breed_labels(breed) != (class_id, species, breed_id):
        return (f"unknown label: {stem} has CLASS-ID {class_id} SPECIES {species} "
                f"BREED-ID {breed_id}, which does not match its breed name")
    return {"stem": stem, "breed": breed, "class_id": class_id, "species": SPECIES[species],
            "breed_id": breed_id}


def _read_list(path: Path, data_root: Path) -> tuple[dict[str, tuple[int, dict]], list,
                                                      dict[str, str]]:
    """(labels by stem, rejected rows, the reason each refused stem's row was rejected)."""
    label = reading.relative_posix(path, data_root)
    labels: dict[str, tuple[int, dict]] = {}
    rejected: list[reading.Rejected] = []
    refused: dict[str, str] = {}
    for line, fields in reading.whitespace_rows(path):
        row = parse_list_row(fields)
        if isinstance(row, str):
            rejected.append((label, line, row))
            refused.setdefault(fields[0], row)
        elif row["stem"] in labels:
            rejected.append((label, line, f"duplicate image {row['stem']}"))
        else:
            labels[row["stem"]] = (line, row)
    return labels, rejected, refused


def _read_splits(annotations: Path, data_root: Path, listed: dict, refused: dict[str, str]
                 ) -> tuple[dict[str, str], dict[str, tuple[str, int, dict]],
                            list[reading.Rejected]]:
    """(split by stem, labels taken from a split file, rejected rows).

    The split files repeat list.txt's columns, so an image whose list.txt row was refused keeps
    its labels from its split row when that row is sound; a split row that fails the same way
    as its list.txt row is not reported twice (one error per cause).
    """
    splits: dict[str, str] = {}
    adopted: dict[str, tuple[str, int, dict]] = {}
    rejected: list[reading.Rejected] = []
    for name, split in (("trainval.txt", "train"), ("test.txt", "test")):
        path = reading.require_file(annotations / name, "split file")
        label = reading.relative_posix(path, data_root)
        for line, fields in reading.whitespace_rows(path):
            stem = fields[0]
            if stem in splits:
                rejected.append((label, line, f"{stem} is already in the {splits[stem]} split"))
                continue
            if stem not in listed and stem in refused:
                row = parse_list_row(fields)
                if isinstance(row, dict):
                    adopted[stem] = (label, line, row)
                else:
                    if row != refused[stem]:
                        rejected.append((label, line, row))
                    continue
            elif stem not in listed:
                rejected.append((label, line, f"{stem} is not in list.txt"))
                continue
            splits[stem] = split
    return splits, adopted, rejected


def _head_boxes(xmls: Path, ids: dict[str, str], data_root: Path) -> tuple[pd.DataFrame, list]:
    rows, rejected = [], []
    if xmls.is_dir():
        for path in sorted(xmls.glob("*.xml")):
            if path.name.startswith("._") or path.stem not in ids:
                continue
            try:
                root = SafeET.parse(path).getroot()
                for obj in root.iter("object"):
                    box = obj.find("bndbox")
                    rows.append({"image_id": ids[path.stem], "name": obj.findtext("name"),
                                 **{k: int(float(box.findtext(k))) for k in
                                    ("xmin", "ymin", "xmax", "ymax")}})
            except (SafeET.ParseError, AttributeError, TypeError, ValueError) as exc:
                rejected.append((reading.relative_posix(path, data_root), None,
                                 f"unreadable VOC head box: {exc}"))
    dtypes = {"image_id": "str", "name": "str", "xmin": "int64", "ymin": "int64",
              "xmax": "int64", "ymax": "int64"}
    return reading.frame(rows, dtypes), rejected


def parse(extracted: Path, data_root: Path) -> ParseResult:
    """Read the extracted Oxford-IIIT Pet tree into records (+ trimaps, head_boxes tables)."""
    root = reading.find_root(extracted, "annotations/list.txt", WRAPPERS)
    if root is None:
        raise DataError(extracted / "annotations" / "list.txt", "missing Oxford-IIIT Pet list")
    annotations, images_dir = root / "annotations", root / "images"
    if not images_dir.is_dir():
        raise DataError(images_dir, "missing Oxford-IIIT Pet images folder")
    list_path = annotations / "list.txt"
    listed, rejected, refused = _read_list(list_path, data_root)
    splits, adopted, split_rejected = _read_splits(annotations, data_root, listed, refused)
    rejected += split_rejected

    files, junk = reading.image_files(images_dir, data_root)
    rejected += junk
    by_stem: dict[str, Path] = {}
    for path in files:
        if path.stem in by_stem:
            rejected.append((reading.relative_posix(path, data_root), None,
                             f"second image file for {path.stem}"))
        else:
            by_stem[path.stem] = path

    def record(path: Path, labels: dict | None) -> dict:
        inner = path.relative_to(root).as_posix()
        row = {"image_id": reading.image_id(SOURCE, inner), "source": SOURCE,
               "path": reading.relative_posix(path, data_root),
               "split": splits.get(path.stem) if labels else None}
        if labels:
            row.update({k: labels[k] for k in ("breed", "class_id", "species", "breed_id")})
        return row

    rows = []
    list_label = reading.relative_posix(list_path, data_root)
    for stem, (line, labels) in listed.items():
        if stem in by_stem:
            rows.append(record(by_stem[stem], labels))
        else:
            rejected.append((list_label, line, f"image file missing: images/{stem}.jpg"))
    for stem, (label, line, labels) in adopted.items():
        if stem in by_stem:
            rows.append(record(by_stem[stem], labels))
        else:
            rejected.append((label, line, f"image file missing: images/{stem}.jpg"))
    rows += [record(path, None) for stem, path in by_stem.items()
             if stem not in listed and stem not in adopted]
    records = reading.frame(rows, RECORD_DTYPES)

    ids = dict(zip([Path(p).stem for p in records["path"]], records["image_id"], strict=True))
    trimaps_dir = annotations / "trimaps"
    trimap_rows = []
    if trimaps_dir.is_dir():
        present = {p.name for p in trimaps_dir.iterdir() if not p.name.startswith("._")}
        trimap_rows = [{"image_id": ids[stem],
                        "trimap": reading.relative_posix(trimaps_dir / f"{stem}.png", data_root)}
                       for stem in ids if f"{stem}.png" in present]
    boxes, box_rejected = _head_boxes(annotations / "xmls", ids, data_root)
    rejected += box_rejected
    for folder in (annotations, trimaps_dir, annotations / "xmls"):
        rejected += reading.appledouble_junk(folder, data_root)
    tables = {"trimaps": reading.frame(trimap_rows, {"image_id": "str", "trimap": "str"}),
              "head_boxes": boxes}
    return ParseResult(records=records, rejected=ParseResult.reject(rejected), tables=tables)
