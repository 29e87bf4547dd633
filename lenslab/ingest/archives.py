"""Safe, atomic, idempotent extraction of dataset archives (tar in any compression, zip).

Why not ``tar.extractall(dest)``: a downloaded archive is untrusted input. Every tar member goes
through ``tarfile.data_filter`` (PEP 706) plus a few checks of our own that do not depend on the
Python patch level (the filter's realpath checks had bypasses fixed in later 3.11/3.12 releases):

* no member is written through a symbolic link of the archive, and a hard link must point at a
  regular file extracted earlier from the same archive;
* after extraction every symbolic link must still resolve inside the destination.

A rejected member is skipped and reported with its reason; the good members are still extracted.
Absolute member names (``/etc/x``) follow the data filter: the leading ``/`` is stripped and the
member lands *inside* the destination. Zip members with ``..`` or absolute names, symbolic-link
entries and encrypted entries are skipped. macOS junk (``._*`` AppleDouble files, ``__MACOSX/``,
``.DS_Store``) is skipped and reported. Member-count and total-size caps are checked before
anything is written (a :class:`DataError` naming the archive).

The format comes from the bytes, never the suffix: the Oxford "images.tar.gz" may be a plain tar.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import posixpath
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lenslab import atomic
from lenslab.errors import DataError

MAX_MEMBERS = 500_000
MAX_TOTAL_BYTES = 16 * 1024**3  # 16 GiB uncompressed: well above every dataset lenslab reads
MARKER_DIR = ".lenslab-extracted"  # inside dest: one JSON marker per archive extracted there
# Zip-based file formats that are data, not archives to unpack.
ZIP_CONTAINERS = frozenset({".npz", ".xlsx", ".docx", ".pptx", ".ods", ".odt", ".epub"})

_COMPRESSED = {
    b"\x1f\x8b": ("tar.gz", gzip.open),
    b"BZh": ("tar.bz2", bz2.open),
    b"\xfd7zXZ\x00": ("tar.xz", lzma.open),
}
# What a damaged archive raises while being read (disk errors are left alone: they are not data).
_CORRUPT = (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error,
            lzma.LZMAError)
_TAR_MODES = {"tar": "r:", "tar.gz": "r:gz", "tar.bz2": "r:bz2", "tar.xz": "r:xz"}
_FILTER_REASONS = {
    tarfile.AbsolutePathError: "absolute path",
    tarfile.OutsideDestinationError: "path escapes the destination",
    tarfile.AbsoluteLinkError: "link to an absolute path",
    tarfile.LinkOutsideDestinationError: "link points outside the destination",
    tarfile.SpecialFileError: "special file (device, FIFO)",
}


@dataclass
class ExtractReport:
    """What one archive gave: members extracted, members skipped with the reason."""

    archive: str
    format: str
    extracted: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    reused: bool = False  # True: an earlier extraction of the unchanged archive was kept

    def skipped_by_reason(self) -> dict[str, int]:
        return dict(Counter(reason for _, reason in self.skipped))

    def to_dict(self) -> dict:
        return {**asdict(self), "skipped": [list(s) for s in self.skipped],
                "skipped_by_reason": self.skipped_by_reason()}


@dataclass
class UnpackReport:
    """What :func:`unpack_distribution` did with each file of a distribution folder."""

    archives: dict[str, ExtractReport] = field(default_factory=dict)  # by path in distributed/
    linked: list[str] = field(default_factory=list)  # plain files hard-linked (or copied)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # junk in distributed/ itself

    def to_dict(self) -> dict:
        return {"archives": {k: r.to_dict() for k, r in self.archives.items()},
                "linked": self.linked, "skipped": [list(s) for s in self.skipped]}


def junk_reason(name: str) -> str | None:
    """Why a member name is macOS junk (None when it is not)."""
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    if "__MACOSX" in parts:
        return "macOS resource fork folder (__MACOSX)"
    if parts and parts[-1].startswith("._"):
        return "macOS AppleDouble file (._*)"
    if parts and parts[-1] == ".DS_Store":
        return "macOS folder metadata (.DS_Store)"
    return None


def _is_tar_header(block: bytes) -> bool:
    if len(block) < 512:
        return False
    if block[257:262] == b"ustar":
        return True
    try:  # old v7 tars have no magic; a valid header checksum is strong evidence
        tarfile.TarInfo.frombuf(block[:512], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def archive_format(path: Path) -> str | None:
    """"tar", "tar.gz", "tar.bz2", "tar.xz" or "zip" from the file's bytes; None if not one.

    A compressed file that does not hold a tar (``labels.csv.gz``) is not an archive.
    """
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return None if Path(path).suffix.lower() in ZIP_CONTAINERS else "zip"
    for magic, (fmt, opener) in _COMPRESSED.items():
        if head.startswith(magic):
            try:
                with opener(path, "rb") as stream:
                    return fmt if _is_tar_header(stream.read(512)) else None
            except (OSError, EOFError, lzma.LZMAError):
                return None
    return "tar" if _is_tar_header(head) else None


def extract_archive(archive: Path, dest: Path, *, max_members: int = MAX_MEMBERS,
                    max_total_bytes: int = MAX_TOTAL_BYTES) -> ExtractReport:
    """Extract ``archive`` into ``dest`` safely, atomically and only when it changed.

    Members are first extracted into a temporary folder beside ``dest``; then each top-level entry
    replaces the one of the same name in ``dest``, and a marker recording the archive's size and
    mtime is written last. A rerun with an unchanged archive returns the recorded report
    (``reused=True``) without reading the archive. Two archives extracted into one ``dest`` must not
    share a top-level entry (a :class:`DataError`): one would silently replace the other.
    """
    archive, dest = Path(archive), Path(dest)
    fmt = archive_format(archive)
    if fmt is None:
        raise DataError(archive, "not a tar or zip archive")
    stat = archive.stat()
    marker = dest / MARKER_DIR / f"{archive.name}.json"
    previous = _read_marker(marker)
    if (previous and previous["size"] == stat.st_size and previous["mtime_ns"] == stat.st_mtime_ns
            and all((dest / top).exists() or (dest / top).is_symlink()
                    for top in previous["top_level"])):
        report = previous["report"]
        return ExtractReport(report["archive"], report["format"], report["extracted"],
                             [tuple(s) for s in report["skipped"]], reused=True)

    dest.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{dest.name}.{archive.name}."
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=prefix, suffix=".tmp"))
    try:
        report = ExtractReport(archive.name, fmt)
        try:
            if fmt == "zip":
                _extract_zip(archive, tmp, report, max_members, max_total_bytes)
            else:
                _extract_tar(archive, fmt, tmp, report, max_members, max_total_bytes)
        except _CORRUPT as exc:
            raise DataError(archive, f"corrupt archive: {exc}") from None
        top_level = sorted(os.listdir(tmp))
        _check_no_overlap(archive, dest, top_level)
        _move_entries(tmp, dest, top_level)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    atomic.write_text(marker, json.dumps({
        "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "top_level": top_level,
        "report": {"archive": report.archive, "format": report.format,
                   "extracted": report.extracted, "skipped": report.skipped},
    }))
    return report


def _read_marker(marker: Path) -> dict | None:
    try:
        return json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _check_caps(archive: Path, count: int, total: int, max_members: int,
                max_total_bytes: int) -> None:
    if count > max_members:
        raise DataError(archive, f"archive has more than {max_members:,} members (cap)")
    if total > max_total_bytes:
        raise DataError(archive, f"archive unpacks to more than {max_total_bytes:,} bytes (cap)")


def _extract_tar(archive: Path, fmt: str, tmp: Path, report: ExtractReport,
                 max_members: int, max_total_bytes: int) -> None:
    with tarfile.open(archive, _TAR_MODES[fmt]) as tar:
        # Pass 1: caps, and every symlink's name, before anything touches the disk.
        total, symlinks = 0, {}
        for count, member in enumerate(tar, start=1):
            total += member.size if member.isreg() else 0
            _check_caps(archive, count, total, max_members, max_total_bytes)
            if member.issym():
                symlinks[_clean(member.name)] = member.offset

        extracted_files: set[str] = set()

        def keep(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo | None:
            reason = _tar_member_problem(member, dest_path, symlinks, extracted_files)
            if reason:
                report.skipped.append((member.name, reason))
                return None
            if member.isreg() or member.islnk():
                extracted_files.add(_clean(member.name))
            report.extracted.append(member.name)
            return tarfile.data_filter(member, dest_path)

        tar.extractall(tmp, filter=keep)
    _drop_escaping_symlinks(tmp, report)


def _clean(name: str) -> str:
    """A member name as the data filter will place it: no leading '/', normalised."""
    return posixpath.normpath(name.lstrip("/")) if name.strip("/") else "."


def _tar_member_problem(member: tarfile.TarInfo, dest_path: str, symlinks: dict[str, int],
                        extracted_files: set[str]) -> str | None:
    junk = junk_reason(member.name)
    if junk:
        return junk
    try:
        tarfile.data_filter(member, dest_path)
    except tarfile.FilterError as exc:
        return _FILTER_REASONS.get(type(exc), f"rejected by the data filter: {exc}")
    name = _clean(member.name)
    if name == ".":  # "./" heads many tars: the destination itself
        return None if member.isdir() else "empty member name"
    if name == ".." or name.startswith("../"):
        return "path escapes the destination"
    if name.split("/")[0] == MARKER_DIR:
        return "reserved name"
    parents = [posixpath.join(*name.split("/")[:i]) for i in range(1, name.count("/") + 1)]
    if any(p in symlinks for p in parents) or symlinks.get(name, member.offset) != member.offset:
        return "path goes through a symbolic link"
    if member.islnk() and _clean(member.linkname) not in extracted_files:
        return "hard link to a member that was not extracted"
    return None


def _drop_escaping_symlinks(root: Path, report: ExtractReport) -> None:
    """Remove links whose target (through other links) ends outside ``root``."""
    real_root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                continue
            target = os.path.realpath(path)
            if os.path.commonpath([target, real_root]) != real_root:
                os.unlink(path)
                member = os.path.relpath(path, root).replace(os.sep, "/")
                report.extracted = [m for m in report.extracted if _clean(m) != member]
                report.skipped.append((member, "link points outside the destination"))


def _zip_member_problem(info: zipfile.ZipInfo) -> str | None:
    junk = junk_reason(info.filename)
    if junk:
        return junk
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in name.split("/"):
        return "path escapes the destination"
    if name.split("/")[0] == MARKER_DIR:
        return "reserved name"
    if (info.external_attr >> 16) & 0o170000 == 0o120000:
        return "symbolic link (not extracted from zip)"
    if info.flag_bits & 0x1:
        return "encrypted member"
    return None


def _extract_zip(archive: Path, tmp: Path, report: ExtractReport,
                 max_members: int, max_total_bytes: int) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        total = sum(i.file_size for i in infos if not i.is_dir())
        _check_caps(archive, len(infos), total, max_members, max_total_bytes)
        for info in infos:
            reason = _zip_member_problem(info)
            if reason:
                report.skipped.append((info.filename, reason))
                continue
            target = tmp.joinpath(*[p for p in info.filename.split("/") if p])
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                # zipfile stops at the declared file_size, so the size cap holds for real bytes.
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1024 * 1024)
            report.extracted.append(info.filename)


def _check_no_overlap(archive: Path, dest: Path, top_level: list[str]) -> None:
    mine = set(top_level)
    markers = dest / MARKER_DIR
    if not markers.is_dir():
        return
    for other in sorted(markers.glob("*.json")):
        if other.name == f"{archive.name}.json":
            continue
        shared = mine & set((_read_marker(other) or {}).get("top_level", []))
        if shared:
            raise DataError(archive, f"top-level entries {sorted(shared)} also come from "
                                     f"{other.stem}; extract the two into different folders")


def _move_entries(tmp: Path, dest: Path, top_level: list[str]) -> None:
    """Swap each extracted top-level entry into ``dest`` (one rename each)."""
    dest.mkdir(parents=True, exist_ok=True)
    trash = tmp / MARKER_DIR  # a name no archive member may take; removed with tmp
    trash.mkdir()
    for name in top_level:
        target = dest / name
        if target.exists() or target.is_symlink():
            os.replace(target, trash / name)
        os.replace(tmp / name, target)


def unpack_distribution(distributed: Path, extracted: Path, *, max_members: int = MAX_MEMBERS,
                        max_total_bytes: int = MAX_TOTAL_BYTES) -> UnpackReport:
    """Rebuild ``extracted/`` as ``distributed/`` with every archive unpacked.

    An archive (found by its bytes) at ``distributed/a/x.tar`` is extracted into ``extracted/a/``;
    every other file is hard-linked (copied where links are impossible) to the same relative path,
    so parsers read one tree whatever the dataset shipped. The tree is built whole in a temporary
    folder beside ``extracted/`` and swapped in, so what left ``distributed/`` leaves it too. An
    archive unchanged since the previous build is not read again: its entries are hard-linked from
    the previous tree (``reused=True``).
    """
    distributed, extracted = Path(distributed), Path(extracted)
    report = UnpackReport()
    with atomic.atomic_dir(extracted) as tmp:
        for dirpath, dirnames, filenames in os.walk(distributed):
            here = Path(dirpath)
            rel_dir = here.relative_to(distributed)
            for name in sorted(dirnames):
                rel = (rel_dir / name).as_posix()
                if junk_reason(rel) or (here / name).is_symlink():
                    report.skipped.append((rel, junk_reason(rel) or "symbolic link"))
                    dirnames.remove(name)
                else:
                    (tmp / rel).mkdir(parents=True, exist_ok=True)
            dirnames.sort()
            for name in sorted(filenames):
                src, rel = here / name, (rel_dir / name).as_posix()
                reason = junk_reason(rel) or ("symbolic link" if src.is_symlink() else None)
                if reason:
                    report.skipped.append((rel, reason))
                elif archive_format(src):
                    report.archives[rel] = _reuse_or_extract(
                        src, extracted / rel_dir, tmp / rel_dir, max_members=max_members,
                        max_total_bytes=max_total_bytes)
                else:
                    _link_or_copy(src, tmp / rel)
                    report.linked.append(rel)
    return report


def _reuse_or_extract(archive: Path, previous: Path, dest: Path, *, max_members: int,
                      max_total_bytes: int) -> ExtractReport:
    """Extract ``archive`` into ``dest``, or link its entries from the ``previous`` tree when that
    holds an extraction of the unchanged archive."""
    marker = previous / MARKER_DIR / f"{archive.name}.json"
    recorded = _read_marker(marker)
    stat = archive.stat()
    if not (recorded and recorded["size"] == stat.st_size
            and recorded["mtime_ns"] == stat.st_mtime_ns
            and all((previous / top).exists() or (previous / top).is_symlink()
                    for top in recorded["top_level"])):
        return extract_archive(archive, dest, max_members=max_members,
                               max_total_bytes=max_total_bytes)
    _check_no_overlap(archive, dest, recorded["top_level"])
    for top in recorded["top_level"]:
        _link_tree(previous / top, dest / top)
    _link_tree(marker, dest / MARKER_DIR / marker.name)
    saved = recorded["report"]
    return ExtractReport(saved["archive"], saved["format"], saved["extracted"],
                         [tuple(s) for s in saved["skipped"]], reused=True)


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link a file or a tree (symbolic links recreated as links, never followed)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    elif src.is_file():
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
    else:
        dst.mkdir(exist_ok=True)
        for child in sorted(src.iterdir()):
            _link_tree(child, dst / child.name)


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists() and os.path.samefile(src, dst):
        return
    if dst.is_dir() and not dst.is_symlink():
        raise DataError(dst, f"a folder is in the way of {src.name}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:  # another filesystem, or links not allowed: a copy is as good
            shutil.copy2(src, tmp)
