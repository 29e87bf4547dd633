"""Local sources on real data: only the dataset's own files are taken, the user's files are never
written, and the unpacked tree and ground truth always match the current mode and inputs."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from lenslab.ingest.archives import unpack_distribution
from lenslab.ingest.source import SourceSpec, ingest_source
from lenslab.paths import DataLayout

SOURCE = "photo_preferences"


def _jpeg(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((16, 16, 3), shade, dtype=np.uint8)
    Image.fromarray(pixels).save(path, "JPEG")


def _preferences(folder: Path) -> Path:
    """A photo-preference folder in its distributed layout: two tiers and one pair."""
    _jpeg(folder / "photos" / "00" / "a.jpg", 200)
    _jpeg(folder / "photos" / "01" / "b.jpg", 60)
    _jpeg(folder / "photos" / "01" / "c.jpg", 90)
    (folder / "pairs.csv").write_text("left,right,winner\n00/a.jpg,01/b.jpg,left\n")
    return folder


def _local(path: Path) -> SourceSpec:
    return SourceSpec(name=SOURCE, mode="local", path=str(path))


def _image_ids(layout: DataLayout) -> set[str]:
    return set(pd.read_parquet(layout.records(SOURCE))["image_id"])


def test_switching_from_synthetic_to_local_leaves_no_synthetic_images_or_ground_truth(tmp_path):
    layout = DataLayout(tmp_path / "data")
    ingest_source(SourceSpec(name=SOURCE, mode="synthetic", seed=3, scale=0.1), layout)
    assert (layout.ground_truth(SOURCE) / "quality.csv").is_file()

    ingest_source(_local(_preferences(tmp_path / "mine")), layout)
    assert _image_ids(layout) == {f"{SOURCE}:photos/00/a.jpg", f"{SOURCE}:photos/01/b.jpg",
                                  f"{SOURCE}:photos/01/c.jpg"}
    extracted = sorted(p.relative_to(layout.extracted(SOURCE)).as_posix()
                       for p in layout.extracted(SOURCE).rglob("*.jpg"))
    assert extracted == ["photos/00/a.jpg", "photos/01/b.jpg", "photos/01/c.jpg"]
    assert not layout.ground_truth(SOURCE).exists()


def test_photos_deleted_from_a_local_folder_leave_the_data_root(tmp_path):
    layout = DataLayout(tmp_path / "data")
    mine = _preferences(tmp_path / "mine")
    ingest_source(_local(mine), layout)
    (mine / "photos" / "01" / "c.jpg").unlink()
    ingest_source(_local(mine), layout)
    assert f"{SOURCE}:photos/01/c.jpg" not in _image_ids(layout)
    assert not (layout.extracted(SOURCE) / "photos" / "01" / "c.jpg").exists()
    assert not (layout.distributed(SOURCE) / "photos" / "01" / "c.jpg").exists()


def _tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_unpack_distribution_drops_what_left_the_distribution(tmp_path):
    distributed, extracted = tmp_path / "distributed", tmp_path / "extracted"
    (distributed / "sub").mkdir(parents=True)
    (distributed / "notes.txt").write_text("old")
    _tar(distributed / "sub" / "one.tar", {"one/a.txt": b"a"})
    _tar(distributed / "two.tar", {"two/b.txt": b"b"})
    unpack_distribution(distributed, extracted)
    assert (extracted / "sub" / "one" / "a.txt").is_file()

    (distributed / "notes.txt").unlink()
    (distributed / "two.tar").unlink()
    report = unpack_distribution(distributed, extracted)
    assert not (extracted / "notes.txt").exists()
    assert not (extracted / "two").exists()
    assert (extracted / "sub" / "one" / "a.txt").read_bytes() == b"a"
    assert report.archives["sub/one.tar"].reused  # unchanged archives are not unpacked again


def test_local_mode_takes_only_the_files_the_format_names(tmp_path):
    mine = _preferences(tmp_path / "mine")
    (mine / "shopping list.txt").write_text("milk")
    _jpeg(mine / "holiday" / "beach.jpg", 120)
    _tar(mine / "backup.tar", {"photos/05/z.jpg": b"not even a photo"})
    layout = DataLayout(tmp_path / "data")
    result = ingest_source(_local(mine), layout)
    taken = sorted(p.name for p in layout.distributed(SOURCE).iterdir()
                   if not p.name.startswith("."))
    assert taken == ["pairs.csv", "photos"]
    assert not (layout.extracted(SOURCE) / "photos" / "05").exists()
    assert _image_ids(layout) == {f"{SOURCE}:photos/00/a.jpg", f"{SOURCE}:photos/01/b.jpg",
                                  f"{SOURCE}:photos/01/c.jpg"}
    left_out = json.loads(layout.ingest_report(SOURCE).read_text())["acquisition"]["left_out"]
    assert sorted(left_out) == ["backup.tar", "holiday", "shopping list.txt"]
    assert result.summary["left_out"] == left_out


def test_writes_in_the_data_root_never_reach_the_users_files(tmp_path):
    mine = _preferences(tmp_path / "mine")
    original = (mine / "photos" / "00" / "a.jpg").read_bytes()
    layout = DataLayout(tmp_path / "data")
    ingest_source(_local(mine), layout)
    for tree in (layout.distributed(SOURCE), layout.extracted(SOURCE)):
        with open(tree / "photos" / "00" / "a.jpg", "r+b") as fh:  # an in-place edit
            fh.write(b"overwritten")
    assert (mine / "photos" / "00" / "a.jpg").read_bytes() == original


def _hostile_selfies(folder: Path, tmp_path: Path) -> Path:
    """The synthetic Selfie archive with hostile members and macOS junk added, as a local folder."""
    from lenslab.synthetic.registry import GENERATORS

    GENERATORS["selfies"](tmp_path / "gen", tmp_path / "gen-truth", seed=3, scale=0.1)
    folder.mkdir()
    with tarfile.open(tmp_path / "gen" / "Selfie-dataset.tar.gz") as src, \
            tarfile.open(folder / "Selfie-dataset.tar.gz", "w:gz") as out:
        for info in src:
            out.addfile(info, src.extractfile(info) if info.isreg() else None)
        for name, data in (("../evil.txt", b"escape"),
                           ("Selfie-dataset/images/._0001.jpg", b"appledouble")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("Selfie-dataset/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        out.addfile(link)
    return folder


def test_skipped_archive_members_are_in_the_ingest_report_with_their_reasons(tmp_path):
    mine = _hostile_selfies(tmp_path / "mine", tmp_path)
    layout = DataLayout(tmp_path / "data")
    result = ingest_source(SourceSpec(name="selfies", mode="local", path=str(mine)), layout)
    report = json.loads(layout.ingest_report("selfies").read_text())
    skipped = {row["member"]: row for row in report["skipped_archive_members"]}
    assert set(skipped) == {"../evil.txt", "Selfie-dataset/images/._0001.jpg",
                            "Selfie-dataset/passwd"}, skipped
    assert skipped["../evil.txt"]["reason"] == "path escapes the destination"
    assert "AppleDouble" in skipped["Selfie-dataset/images/._0001.jpg"]["reason"]
    assert "absolute" in skipped["Selfie-dataset/passwd"]["reason"]
    assert {row["archive"] for row in skipped.values()} == {"Selfie-dataset.tar.gz"}
    assert len(result.skipped_members) == 3


def test_a_data_root_that_hard_linked_the_users_files_gets_copies(tmp_path):
    import os

    mine = _preferences(tmp_path / "mine")
    layout = DataLayout(tmp_path / "data")
    ingest_source(_local(mine), layout)
    old = layout.distributed(SOURCE) / "photos" / "00" / "a.jpg"
    old.unlink()
    os.link(mine / "photos" / "00" / "a.jpg", old)  # what local mode used to do
    (mine / "photos" / "01" / "c.jpg").unlink()  # any change re-acquires
    ingest_source(_local(mine), layout)
    assert not os.path.samefile(old, mine / "photos" / "00" / "a.jpg")
