"""Photos in one folder per photographer: ``<root>/<photographer>/<photo>``.

This is the layout MIT-Adobe FiveK's expert renditions take once exported (``expert_A/a0001.jpg``
... ``expert_E/a0001.jpg``), and the one any collection of real editors' photos takes most easily.
The folder names are the labels: every image under a photographer folder is a record with

    photographer  the folder's name
    base          the file's stem: FiveK's five experts each retouched the same 5,000 raws and an
                  export keeps the raw's name, so one stem across folders is one scene under
                  several photographers' edits (identification is then tested on scenes that no
                  training photo shows); a ``scenes.csv`` beside the photographer folders
                  (``file,scene``, paths such as ``expert_A/a0001.jpg`` or glob patterns, see
                  lenslab.formats.scenes) names the scene where file names do not

Image ids are ``photographer_folders:<photographer>/<path inside it>``. Photos may sit in
sub-folders of a photographer folder (an export by month, say); they still belong to it.

The root is the extracted tree itself, or the one folder it wraps (a zip of the export folder).
Rejected with a reason, the rest kept: images outside any photographer folder, non-image files
(``Thumbs.db``, sidecar ``.xmp``), hidden files. The dataset defines no split: the catalog and the
style system make their own, seeded.
"""

from __future__ import annotations

from pathlib import Path

from lenslab.errors import DataError
from lenslab.formats import reading
from lenslab.formats.scenes import SCENES_FILE, read_scenes
from lenslab.records import ParseResult

SOURCE = "photographer_folders"
# every folder is a photographer (and scenes.csv); a zip of the export is taken when the path
# names it
DISTRIBUTION = reading.Distribution(files=(SCENES_FILE,), any_folder=True)
RECORD_DTYPES = {"image_id": "str", "source": "str", "path": "str", "split": "str",
                 "photographer": "str", "base": "str"}


def _visible(folder: Path) -> list[Path]:
    # ingestion's own markers (.lenslab-*) and other hidden entries are not the dataset's content
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def find_root(extracted: Path) -> Path:
    """The folder whose sub-folders are the photographers: descend through wrapper folders (one
    folder, no files, that itself holds folders)."""
    root = extracted
    while True:
        entries = _visible(root)
        folders = [p for p in entries if p.is_dir()]
        if len(entries) != 1 or not folders or not any(p.is_dir() for p in _visible(folders[0])):
            return root
        root = folders[0]


def parse(extracted: Path, data_root: Path) -> ParseResult:
    """Read ``<root>/<photographer>/<photo>`` under ``extracted`` into labelled records."""
    extracted, data_root = Path(extracted), Path(data_root)
    if not extracted.is_dir():
        raise DataError(extracted, "missing photographer folders")
    root = find_root(extracted)
    scenes, rejected = read_scenes(root, data_root)
    rows: list[dict] = []
    for entry in _visible(root):
        if entry.is_file() and entry.name == SCENES_FILE:
            continue
        if entry.is_file():
            label = reading.relative_posix(entry, data_root)
            rejected.append((label, None, "not inside a photographer folder "
                             "(the layout is <root>/<photographer>/<photo>)"))
            continue
        files, junk = reading.image_files(entry, data_root, recursive=True)
        rejected += junk
        if not files:
            rejected.append((reading.relative_posix(entry, data_root), None,
                             "photographer folder without photos"))
        for path in files:
            inner = path.relative_to(root).as_posix()
            rows.append({
                "image_id": reading.image_id(SOURCE, inner), "source": SOURCE,
                "path": reading.relative_posix(path, data_root), "split": None,
                "photographer": entry.name, "base": scenes.scene_of(inner) or path.stem,
            })
    rejected += scenes.unused()
    if not rows:
        raise DataError(root, "no photos in <photographer>/ folders")
    return ParseResult(records=reading.frame(rows, RECORD_DTYPES),
                       rejected=ParseResult.reject(rejected))
