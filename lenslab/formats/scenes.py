"""Which photos show the same scene, as the user says in a ``scenes.csv`` beside the photos.

Crops, edits and bursts of one photograph are not independent samples: a split that puts one in
training and another in test measures memory, not generalisation. Sources whose file names do
not say it (photographer folders with their own names per editor, photo-preference tiers) take
an optional ``scenes.csv``::

    file,scene
    expert_A/a0001.jpg,beach        a photo's path, relative to where the format says
    */IMG_10*.jpg,harbour           or a glob pattern over those paths (``*`` crosses folders)

The first row that names or matches a photo gives its scene; a photo no row names keeps the
format's default (its own scene). Rows with an empty field, and rows that match no photo, are
rejected with their line.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

from lenslab.formats import reading

SCENES_FILE = "scenes.csv"
COLUMNS = ("file", "scene")
_GLOB = set("*?[")


@dataclass
class SceneRules:
    """The rows of a scenes.csv, applied to photo paths with :meth:`scene_of`."""

    label: str = ""
    rows: list[tuple[int, str, str]] = field(default_factory=list)  # (line, file, scene)
    used: set[int] = field(default_factory=set)

    def scene_of(self, path: str) -> str | None:
        """The scene of a photo (its POSIX path relative to the rules' folder), or None."""
        for line, pattern, scene in self.rows:
            hit = (fnmatch.fnmatchcase(path, pattern) if _GLOB & set(pattern)
                   else path == pattern)
            if hit:
                self.used.add(line)
                return scene
        return None

    def unused(self) -> list[reading.Rejected]:
        """Rows that named no photo (call after every photo's :meth:`scene_of`)."""
        return [(self.label, line, f"{pattern!r} names no photo")
                for line, pattern, _ in self.rows if line not in self.used]


def read_scenes(folder: Path, data_root: Path) -> tuple[SceneRules, list[reading.Rejected]]:
    """``folder/scenes.csv`` as rules (none when the file is absent) and its rejected rows."""
    path = folder / SCENES_FILE
    if not path.is_file():
        return SceneRules(), []
    label = reading.relative_posix(path, data_root)
    rows, rejected = reading.csv_rows(path, COLUMNS, data_root)
    rules = SceneRules(label=label)
    for line, row in rows:
        file, scene = row["file"].replace("\\", "/").removeprefix("./"), row["scene"]
        if not file or not scene:
            rejected.append((label, line, "empty file or scene"))
        else:
            rules.rows.append((line, file, scene))
    return rules, rejected
