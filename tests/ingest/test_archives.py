"""Safe archive extraction: hostile members are skipped with a reason, good ones extracted."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from lenslab.errors import DataError
from lenslab.ingest.archives import (
    archive_format,
    extract_archive,
    unpack_distribution,
)


def member(name: str, data: bytes = b"", **attrs) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def symlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, type=tarfile.SYMTYPE, linkname=target)


def hardlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, type=tarfile.LNKTYPE, linkname=target)


@pytest.fixture
def hostile_tar(tmp_path: Path) -> Path:
    members = [
        member("images/", type=tarfile.DIRTYPE, mode=0o755),
        member("images/a.jpg", b"jpeg-a"),
        member("images/._a.jpg", b"appledouble"),
        member("__MACOSX/images/._a.jpg", b"resource fork"),
        member("../evil.txt", b"escape"),
        member("/abs.txt", b"absolute"),
        symlink("images/alias.jpg", "a.jpg"),  # inside: kept
        symlink("passwd", "/etc/passwd"),
        symlink("up", "../../outside"),
        hardlink("images/hard.jpg", "images/a.jpg"),  # inside: kept
        hardlink("stolen", "../../outside/secret"),
        member("dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3),
        symlink("lib", "images"),
        member("lib/through.txt", b"written through a link"),
    ]
    path = tmp_path / "hostile.tar.gz"  # a plain tar, whatever the suffix says
    path.write_bytes(tar_bytes(members))
    return path


def test_hostile_tar_members_are_skipped_with_reasons(tmp_path: Path, hostile_tar: Path) -> None:
    dest = tmp_path / "out" / "extracted"
    report = extract_archive(hostile_tar, dest)
    assert report.format == "tar"
    assert (dest / "images" / "a.jpg").read_bytes() == b"jpeg-a"
    assert (dest / "images" / "alias.jpg").read_bytes() == b"jpeg-a"
    assert (dest / "images" / "hard.jpg").read_bytes() == b"jpeg-a"
    assert (dest / "abs.txt").read_bytes() == b"absolute"  # data filter: lands inside dest
    assert not (tmp_path / "out" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    skipped = dict(report.skipped)
    assert skipped == {
        "images/._a.jpg": "macOS AppleDouble file (._*)",
        "__MACOSX/images/._a.jpg": "macOS resource fork folder (__MACOSX)",
        "../evil.txt": "path escapes the destination",
        "passwd": "link to an absolute path",
        "up": "link points outside the destination",
        "stolen": "link points outside the destination",
        "dev": "special file (device, FIFO)",
        "lib/through.txt": "path goes through a symbolic link",
    }
    for name in ("passwd", "up", "stolen", "dev", "__MACOSX", "evil.txt"):
        assert not os.path.lexists(dest / name)
    assert not (dest / "images" / "through.txt").exists()
    assert "images/a.jpg" in report.extracted and "/abs.txt" in report.extracted
    # nothing is left beside dest but dest itself
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["extracted"]


def test_symlink_chain_that_escapes_after_extraction_is_removed(tmp_path: Path) -> None:
    # "l2" looks inside when it is checked (l1 does not exist yet); once l1 -> "." exists,
    # l2 resolves two levels above the destination.
    archive = tmp_path / "chain.tar"
    archive.write_bytes(tar_bytes([symlink("l2", "l1/l1/../.."), symlink("l1", "."),
                                   member("ok.txt", b"fine")]))
    dest = tmp_path / "a" / "b" / "dest"
    report = extract_archive(archive, dest)
    assert not os.path.lexists(dest / "l2")
    assert ("l2", "link points outside the destination") in report.skipped
    assert (dest / "ok.txt").read_bytes() == b"fine"


@pytest.mark.parametrize(("compress", "fmt"), [
    (lambda b: b, "tar"),
    (lambda b: gzip.compress(b, mtime=0), "tar.gz"),
    (lambda b: __import__("bz2").compress(b), "tar.bz2"),
    (lambda b: __import__("lzma").compress(b), "tar.xz"),
])
def test_format_comes_from_magic_bytes_not_suffix(tmp_path: Path, compress, fmt: str) -> None:
    archive = tmp_path / "data.zip"  # every suffix lies here
    archive.write_bytes(compress(tar_bytes([member("x/y.txt", b"hello")])))
    assert archive_format(archive) == fmt
    report = extract_archive(archive, tmp_path / "out")
    assert report.format == fmt
    assert (tmp_path / "out" / "x" / "y.txt").read_bytes() == b"hello"


def test_non_archives_are_recognised(tmp_path: Path) -> None:
    csv_gz = tmp_path / "labels.tar.gz"
    csv_gz.write_bytes(gzip.compress(b"a,b\n1,2\n"))
    text = tmp_path / "notes.tar"
    text.write_text("not a tar at all\n" * 100)
    assert archive_format(csv_gz) is None and archive_format(text) is None
    with pytest.raises(DataError, match="not a tar or zip archive"):
        extract_archive(text, tmp_path / "out")


def zip_bytes(entries: list[tuple[str, bytes, int | None]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data, unix_mode in entries:
            info = zipfile.ZipInfo(name)
            if unix_mode is not None:
                info.create_system = 3
                info.external_attr = unix_mode << 16
            zf.writestr(info, data)
    return buffer.getvalue()


def test_zip_with_escapes_links_and_junk(tmp_path: Path) -> None:
    archive = tmp_path / "photos.bin"
    archive.write_bytes(zip_bytes([
        ("photos/a.jpg", b"jpeg", None),
        ("../evil.txt", b"escape", None),
        ("photos/../../evil2.txt", b"escape", None),
        ("/abs.txt", b"absolute", None),
        ("photos/link", b"/etc/passwd", 0o120777),
        ("__MACOSX/photos/._a.jpg", b"junk", None),
    ]))
    assert archive_format(archive) == "zip"
    dest = tmp_path / "out"
    report = extract_archive(archive, dest)
    assert (dest / "photos" / "a.jpg").read_bytes() == b"jpeg"
    assert dict(report.skipped) == {
        "../evil.txt": "path escapes the destination",
        "photos/../../evil2.txt": "path escapes the destination",
        "/abs.txt": "absolute path",
        "photos/link": "symbolic link (not extracted from zip)",
        "__MACOSX/photos/._a.jpg": "macOS resource fork folder (__MACOSX)",
    }
    assert report.extracted == ["photos/a.jpg"]
    assert not (tmp_path / "evil.txt").exists() and not (dest / "abs.txt").exists()


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_caps_refuse_the_archive_before_writing_anything(tmp_path: Path, kind: str) -> None:
    files = [(f"f{i}.txt", b"x" * 1000) for i in range(3)]
    archive = tmp_path / f"many.{kind}"
    if kind == "tar":
        archive.write_bytes(tar_bytes([member(n, d) for n, d in files]))
    else:
        archive.write_bytes(zip_bytes([(n, d, None) for n, d in files]))
    dest = tmp_path / "out"
    with pytest.raises(DataError, match=r"more than 2 members") as caught:
        extract_archive(archive, dest, max_members=2)
    assert caught.value.where == str(archive)
    with pytest.raises(DataError, match=r"more than 2,500 bytes"):
        extract_archive(archive, dest, max_total_bytes=2500)
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [archive.name]  # no temp dirs left
    assert len(extract_archive(archive, dest, max_members=3, max_total_bytes=3000).extracted) == 3


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_damaged_archive_is_a_data_error_and_leaves_dest_alone(tmp_path: Path,
                                                               kind: str) -> None:
    files = [(f"f{i}.txt", os.urandom(20_000)) for i in range(3)]
    if kind == "zip":
        payload = zip_bytes([(n, d, None) for n, d in files])
    else:
        payload = gzip.compress(tar_bytes([member(n, d) for n, d in files]))
    archive = tmp_path / f"cut.{kind}"
    archive.write_bytes(payload[: len(payload) * 2 // 3])
    with pytest.raises(DataError, match="corrupt archive") as caught:
        extract_archive(archive, tmp_path / "out")
    assert caught.value.where == str(archive)
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [archive.name]


def test_extraction_is_idempotent_and_redone_when_the_archive_changes(tmp_path: Path) -> None:
    archive = tmp_path / "images.tar.gz"
    archive.write_bytes(gzip.compress(tar_bytes([member("images/a.jpg", b"v1"),
                                                 member("images/old.jpg", b"gone later")])))
    dest = tmp_path / "out"
    first = extract_archive(archive, dest)
    stamp = (dest / "images" / "a.jpg").stat().st_mtime_ns
    again = extract_archive(archive, dest)
    assert again.reused and not first.reused
    assert (again.extracted, again.skipped) == (first.extracted, first.skipped)
    assert (dest / "images" / "a.jpg").stat().st_mtime_ns == stamp

    archive.write_bytes(gzip.compress(tar_bytes([member("images/a.jpg", b"v2")])))
    os.utime(archive, ns=(stamp + 10**9, stamp + 10**9))
    third = extract_archive(archive, dest)
    assert not third.reused
    assert (dest / "images" / "a.jpg").read_bytes() == b"v2"
    assert not (dest / "images" / "old.jpg").exists()  # the top-level folder was replaced


def test_archives_sharing_a_top_level_folder_conflict(tmp_path: Path) -> None:
    for name in ("one.tar", "two.tar"):
        (tmp_path / name).write_bytes(tar_bytes([member(f"images/{name}.jpg", b"x")]))
    extract_archive(tmp_path / "one.tar", tmp_path / "out")
    with pytest.raises(DataError, match=r"\['images'\] also come from one.tar"):
        extract_archive(tmp_path / "two.tar", tmp_path / "out")
    assert (tmp_path / "out" / "images" / "one.tar.jpg").exists()


def test_unpack_distribution_mirrors_files_and_unpacks_archives(tmp_path: Path) -> None:
    distributed, extracted = tmp_path / "distributed", tmp_path / "extracted"
    (distributed / "meta").mkdir(parents=True)
    (distributed / "images.tar.gz").write_bytes(  # plain tar, as the Oxford host may serve it
        tar_bytes([member("images/Abyssinian_1.jpg", b"cat")]))
    (distributed / "annotations.tar.gz").write_bytes(gzip.compress(tar_bytes([
        member("annotations/list.txt", b"# list\n"),
        member("annotations/trimaps/._Abyssinian_1.png", b"junk")])))
    (distributed / "scores.csv").write_text("id,score\n1,3\n")
    (distributed / "labels.csv.gz").write_bytes(gzip.compress(b"id\n1\n"))
    (distributed / "meta" / "README").write_text("readme")
    (distributed / "._scores.csv").write_bytes(b"junk")
    (distributed / "inner.zip").write_bytes(zip_bytes([("inner/x.txt", b"zipped", None)]))
    (distributed / "empty").mkdir()

    report = unpack_distribution(distributed, extracted)
    assert (extracted / "images" / "Abyssinian_1.jpg").read_bytes() == b"cat"
    assert (extracted / "annotations" / "list.txt").exists()
    assert not (extracted / "annotations" / "trimaps" / "._Abyssinian_1.png").exists()
    assert (extracted / "inner" / "x.txt").read_bytes() == b"zipped"
    assert (extracted / "empty").is_dir()
    for rel in ("scores.csv", "labels.csv.gz", "meta/README"):
        assert os.path.samefile(distributed / rel, extracted / rel)  # hard link, not a copy
    assert sorted(report.linked) == ["labels.csv.gz", "meta/README", "scores.csv"]
    assert sorted(report.archives) == ["annotations.tar.gz", "images.tar.gz", "inner.zip"]
    assert report.archives["images.tar.gz"].format == "tar"
    assert report.archives["annotations.tar.gz"].skipped == [
        ("annotations/trimaps/._Abyssinian_1.png", "macOS AppleDouble file (._*)")]
    assert report.skipped == [("._scores.csv", "macOS AppleDouble file (._*)")]
    assert report.to_dict()["archives"]["annotations.tar.gz"]["skipped_by_reason"] == {
        "macOS AppleDouble file (._*)": 1}

    again = unpack_distribution(distributed, extracted)
    assert all(r.reused for r in again.archives.values())
    assert again.linked == report.linked
