"""Small readers the dataset parsers share: locating a dataset root, text rows with line numbers,
image folders that hold junk, and paths relative to the data root.

Rejected rows are ``(file, line, reason)`` tuples (see lenslab.records.ParseResult.reject); the
file is given relative to the data root, like record paths.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pandas as pd

from lenslab.errors import DataError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"})

Rejected = tuple[str, int | None, str]


@dataclass(frozen=True)
class Distribution:
    """The top-level files and folders a dataset is distributed as, by name.

    A local source takes only these from the user's folder (see :meth:`select`); everything else
    there (other projects, notes, unrelated archives) is left where it is and reported.
    ``wrappers`` are folders the dataset may arrive inside (the same names are looked for in
    them); ``any_folder`` takes every visible folder when none of ``folders`` is there (a layout
    whose folder names are labels: photographers, or a bare ``<Site>/<Pose>/`` tree).
    """

    files: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()
    wrappers: tuple[str, ...] = ()
    any_folder: bool = False

    def select(self, folder: Path) -> tuple[list[str], list[str]]:
        """(taken, left out): top-level entries of ``folder`` as POSIX paths relative to it.

        Hidden entries (``.DS_Store``, ``.git``) are neither taken nor reported.
        """
        taken: list[str] = []
        left: list[str] = []
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
        named_folder = any(p.is_dir() and p.name in self.folders for p in entries)
        for entry in entries:
            if entry.is_dir() and entry.name in self.wrappers:
                inner_taken, inner_left = self.select(entry)
                taken += [f"{entry.name}/{t}" for t in inner_taken]
                left += [f"{entry.name}/{t}" for t in inner_left]
                continue
            if entry.is_dir():
                take = entry.name in self.folders or (self.any_folder and not named_folder)
            else:
                take = entry.is_file() and entry.name in self.files
            (taken if take else left).append(entry.name)
        return taken, left


def relative_posix(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with POSIX separators (records are portable)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return Path(os.path.relpath(path, root)).as_posix()


def frame(rows: list[dict], dtypes: dict[str, str]) -> pd.DataFrame:
    """A table with exactly these columns and dtypes, also when there are no rows."""
    return pd.DataFrame(rows, columns=list(dtypes)).astype(dtypes)


def image_id(source: str, inner_path: str) -> str:
    """The catalog-wide id: ``<source>:<path inside the dataset>``."""
    return f"{source}:{inner_path}"


def find_root(extracted: Path, marker: str, wrappers: Sequence[str] = ()) -> Path | None:
    """The folder holding ``marker``: the extracted tree itself or one of its wrapping folders.

    Real datasets arrive both bare and wrapped (torchvision's ``oxford-iiit-pet/``, the zip's
    ``FLICKR-AES-001/``), so parsers accept either.
    """
    for candidate in (extracted, *(extracted / w for w in wrappers)):
        if (candidate / marker).exists():
            return candidate
    return None


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(path, f"missing {what}")
    return path


def _open_text(path: Path) -> IO[str]:
    # utf-8-sig drops a BOM; undecodable bytes become U+FFFD so one bad byte rejects one row
    return open(path, encoding="utf-8-sig", errors="replace", newline="")


def whitespace_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, whitespace-split fields) of each non-blank line not starting with ``#``."""
    with _open_text(path) as fh:
        for number, line in enumerate(fh, start=1):
            text = line.strip()
            if text and not text.startswith("#"):
                yield number, text.split()


def csv_rows(
    path: Path, required: Sequence[str], data_root: Path, *, skipinitialspace: bool = False
) -> tuple[list[tuple[int, dict[str, str]]], list[Rejected]]:
    """Rows of a CSV as (line number, {column: stripped value}), and the rows with a wrong
    field count as rejected. Column names are stripped (FLICKR-AES writes ``worker, imagePair``).

    Raises DataError naming the file when it is missing, empty or lacks a required column.
    """
    require_file(path, "CSV file")
    label = relative_posix(path, data_root)
    rows: list[tuple[int, dict[str, str]]] = []
    rejected: list[Rejected] = []
    with _open_text(path) as fh:
        reader = csv.reader(fh, skipinitialspace=skipinitialspace)
        header = next(reader, None)
        if header is None:
            raise DataError(path, "empty file, expected a header row")
        columns = [c.strip() for c in header]
        missing = [c for c in required if c not in columns]
        if missing:
            raise DataError(path, f"missing column(s) {missing}; header is {columns}")
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                rejected.append((label, reader.line_num,
                                 f"expected {len(columns)} fields, got {len(row)}"))
                continue
            rows.append((reader.line_num, {c: v.strip() for c, v in zip(columns, row,
                                                                          strict=True)}))
    return rows, rejected


def appledouble_junk(folder: Path, data_root: Path) -> list[Rejected]:
    """One summary row for the macOS ``._*`` files in an annotation folder (Oxford has ~7k)."""
    if not folder.is_dir():
        return []
    count = sum(1 for p in folder.iterdir() if p.name.startswith("._"))
    if not count:
        return []
    return [(relative_posix(folder, data_root), None,
             f"{count} macOS AppleDouble ._* file(s) skipped")]


def image_files(
    folder: Path, data_root: Path, *, recursive: bool = False
) -> tuple[list[Path], list[Rejected]]:
    """Image files under ``folder`` (sorted), and the junk beside them as rejected rows:
    macOS AppleDouble ``._*`` files, hidden files and non-image suffixes (Oxford's ``.mat``)."""
    found: list[Path] = []
    rejected: list[Rejected] = []
    entries = folder.rglob("*") if recursive else folder.iterdir()
    for path in sorted(entries):
        if not path.is_file():
            continue
        label = relative_posix(path, data_root)
        if path.name.startswith("._"):
            rejected.append((label, None, "macOS AppleDouble metadata file, not an image"))
        elif path.name.startswith("."):
            rejected.append((label, None, "hidden file, not an image"))
        elif path.suffix.lower() not in IMAGE_SUFFIXES:
            rejected.append((label, None, f"not an image file (suffix {path.suffix or 'none'})"))
        else:
            found.append(path)
    return found, rejected
