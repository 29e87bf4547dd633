"""Ingest one source: acquire it (synthetic, local or http), unpack it safely, parse its format.

Every source has the same three ways in, and they all end in the same place: the files as the
dataset distributes them under raw/<source>/distributed/, which are then unpacked and read by the
dataset's own parser. So the synthetic default exercises exactly the code that reads the real data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from lenslab import atomic
from lenslab.errors import DataError
from lenslab.paths import DataLayout

if TYPE_CHECKING:
    from lenslab.ingest.archives import UnpackReport

Mode = Literal["synthetic", "local", "http"]
MARKER_PREFIX = ".lenslab-"
MARKER = ".lenslab-acquired.json"
HTTP_STARTED = ".lenslab-http.json"  # an http acquisition began here (its files may resume)


@dataclass(frozen=True)
class SourceSpec:
    """How to acquire one source: the fields of params.yaml `sources.<name>`."""

    name: str
    mode: Mode = "synthetic"
    path: str | None = None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    manifest_url: str | None = None
    seed: int = 0
    scale: float = 1.0
    knobs: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IngestResult:
    source: str
    mode: str
    acquired: bool  # False when the distributed files were already there for this spec
    n_records: int
    n_rejected: int
    tables: dict[str, int]
    skipped_members: list[dict[str, str]]  # member, archive ("" for distributed/), reason
    records_path: Path
    summary: dict[str, Any]
    rejected_preview: pd.DataFrame


def _same_acquisition(distributed: Path, fingerprint: dict[str, Any]) -> bool:
    marker = distributed / MARKER
    if not marker.is_file():
        return False
    return json.loads(marker.read_text(encoding="utf-8")) == json.loads(json.dumps(fingerprint))


def _local_files(spec: SourceSpec) -> tuple[Path, dict[str, Path], list[str]]:
    """(source path, {relative path: file} to take, entries left out) of a local source.

    A file path is taken as it is (the user named it); in a folder only what the dataset's format
    names is taken (:func:`lenslab.formats.registry.distribution`).
    """
    from lenslab.formats.registry import distribution

    if not spec.path:
        raise DataError(f"sources.{spec.name}.path", "mode 'local' needs a path")
    src = Path(spec.path).expanduser()
    if not src.exists():
        raise DataError(src, f"local source for {spec.name} does not exist")
    if src.is_file():
        return src, {src.name: src}, []
    fmt = distribution(spec.name)
    taken, left_out = fmt.select(src)
    if not taken:
        named = [*fmt.files, *(f"{d}/" for d in fmt.folders), *(f"{w}/" for w in fmt.wrappers)]
        raise DataError(src, f"holds none of the files {spec.name} is distributed as "
                             f"({', '.join(named) or 'photographer folders'})")
    files: dict[str, Path] = {}
    for rel in taken:
        entry = src / rel
        items = [entry] if entry.is_file() else sorted(entry.rglob("*"))
        for item in items:
            if item.is_file() and not item.name.startswith(MARKER_PREFIX):
                files[item.relative_to(src).as_posix()] = item
    return src, files, left_out


def _listing_digest(files: dict[str, Path]) -> str:
    """Names, sizes and mtimes of the files a local source takes: a change means re-acquire."""
    digest = hashlib.sha256()
    for rel, path in sorted(files.items()):
        stat = path.stat()
        digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _copy_local(files: dict[str, Path], dest: Path, previous: Path) -> int:
    """Copy ``files`` into ``dest``; a copy already in ``previous`` (same size and mtime, which
    copy2 keeps) is hard-linked from there instead. Copies, never links to the user's files: a
    later in-place write in the data root must not reach them. Returns the bytes copied."""
    copied = 0
    for rel, src in files.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        old, stat = previous / rel, src.stat()
        try:
            old_stat = old.stat()
            # never the user's own inode: data roots from before copies hard-linked them
            ours = (old_stat.st_dev, old_stat.st_ino) != (stat.st_dev, stat.st_ino)
            if ours and (old_stat.st_size, old_stat.st_mtime_ns) == (stat.st_size,
                                                                      stat.st_mtime_ns):
                os.link(old, target)
                continue
        except OSError:
            pass
        shutil.copy2(src, target)
        copied += stat.st_size
    return copied


def acquire(spec: SourceSpec, layout: DataLayout, http_settings: Any = None) -> tuple[bool, dict]:
    """Put the source's files, as distributed, under raw/<source>/distributed/.

    Returns (acquired, summary); acquired is False when the same spec (and, for a local source,
    the same files) was acquired before. Synthetic and local sources are built in a temporary
    folder and swapped in whole, so a photo deleted from a local folder leaves the data root too;
    a local source takes only the files its format names, as copies. http sources download in
    place, file by file (each file atomic, partial files resumed), so an interrupted download keeps
    what it had; what another mode left there is removed first.
    """
    distributed = layout.distributed(spec.name)
    fingerprint = spec.fingerprint()
    local: tuple[Path, dict[str, Path], list[str]] | None = None
    if spec.mode == "local":
        local = _local_files(spec)
        fingerprint["local_files"] = _listing_digest(local[1])
    if _same_acquisition(distributed, fingerprint):
        return False, {"reused": True, **({"left_out": local[2]} if local else {})}
    (distributed / MARKER).unlink(missing_ok=True)
    summary: dict[str, Any]
    if spec.mode == "http":
        _clear_other_modes(distributed, spec)
        summary = _acquire_http(spec, distributed, http_settings)
        if not summary.get("scrape_status", {}).get("failed"):
            _write_marker(distributed, fingerprint)  # with failures left, the next run retries
        return True, summary
    with atomic.atomic_dir(distributed) as tmp:
        if spec.mode == "synthetic":
            summary = _generate(spec, tmp, layout)
        elif local is not None:
            src, files, left_out = local
            copied = _copy_local(files, tmp, distributed)
            summary = {"local_path": str(src), "files": len(files), "bytes_copied": copied,
                       "left_out": left_out}
        else:
            raise DataError(f"sources.{spec.name}.mode", f"unknown mode {spec.mode!r}")
        _write_marker(tmp, fingerprint)
    return True, summary


def _clear_other_modes(distributed: Path, spec: SourceSpec) -> None:
    """Before an http download: drop what a synthetic or local acquisition left (its files would
    be read as downloaded), keeping an earlier http attempt's files so they resume."""
    started = distributed / HTTP_STARTED
    if not started.is_file():
        _remove_dir(distributed)
    distributed.mkdir(parents=True, exist_ok=True)
    atomic.write_text(started, json.dumps({"mode": "http"}))


def _write_marker(folder: Path, fingerprint: dict[str, Any]) -> None:
    # written last, so an interrupted acquisition is never mistaken for a finished one
    atomic.write_text(folder / MARKER, json.dumps(fingerprint, sort_keys=True))


def _drop_ground_truth(spec: SourceSpec, layout: DataLayout) -> None:
    """Only a synthetic source has ground truth: another mode must not inherit the generator's."""
    if spec.mode != "synthetic":
        _remove_dir(layout.ground_truth(spec.name))


def _remove_dir(folder: Path) -> None:
    """Remove a folder at once for readers (one rename), then its contents."""
    if not folder.exists():
        return
    trash = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(folder, trash)
    shutil.rmtree(trash)


def _generate(spec: SourceSpec, dest: Path, layout: DataLayout) -> dict[str, Any]:
    from lenslab.synthetic.registry import GENERATORS

    ground_truth = layout.ground_truth(spec.name)
    with atomic.atomic_dir(ground_truth) as gt_tmp:
        return GENERATORS[spec.name](dest, gt_tmp, seed=spec.seed, scale=spec.scale, **spec.knobs)


def _acquire_http(spec: SourceSpec, dest: Path, settings: Any) -> dict[str, Any]:
    from lenslab.ingest.http import download_file

    if spec.manifest_url:
        return _scrape_manifest(spec, dest, settings)
    if not spec.files:
        raise DataError(f"sources.{spec.name}.files", "mode 'http' needs files with URLs")
    fetched = {}
    for name, entry in spec.files.items():
        result = download_file(
            entry["url"], dest / name, sha256=entry.get("sha256"), md5=entry.get("md5"),
            settings=settings, expect="archive" if _looks_like_archive(name) else None,
        )
        fetched[name] = {"sha256": result.sha256, "bytes": result.bytes, "url": result.final_url}
    return {"files": fetched}


def _looks_like_archive(name: str) -> bool:
    return name.endswith((".tar", ".tar.gz", ".tgz", ".zip", ".tar.bz2", ".tar.xz"))


def _scrape_manifest(spec: SourceSpec, dest: Path, settings: Any) -> dict[str, Any]:
    """Fetch every row of a URL manifest into the source's <Site>/<Pose>/ folder layout."""
    from lenslab.formats.landmark_photos import manifest_target_dir, read_manifest
    from lenslab.ingest.http import download_file
    from lenslab.ingest.scrape import scrape_manifest

    url = str(spec.manifest_url)
    manifest_file = dest / "manifest.csv"
    if url.startswith(("http://", "https://")):
        download_file(url, manifest_file, settings=settings, expect=None)
    else:
        shutil.copyfile(Path(url).expanduser(), manifest_file)
    status = scrape_manifest(
        read_manifest(manifest_file), dest, status_path=dest / "scrape_status.parquet",
        target_dir=manifest_target_dir, settings=settings,
    )
    return {"scrape_status": status["status"].value_counts().to_dict()}


def skipped_members(unpacked: UnpackReport) -> list[dict[str, str]]:
    """Every member that was not unpacked, with its archive and reason: those of each archive,
    then the entries of distributed/ itself (archive "")."""
    rows = [{"member": str(m), "archive": archive, "reason": str(r)}
            for archive, report in sorted(unpacked.archives.items()) for m, r in report.skipped]
    rows += [{"member": str(m), "archive": "", "reason": str(r)} for m, r in unpacked.skipped]
    return rows


def ingest_source(
    spec: SourceSpec, layout: DataLayout, http_settings: Any = None
) -> IngestResult:
    """Acquire, unpack and parse one source; write records, tables and a report under raw/."""
    from lenslab.formats.registry import PARSERS
    from lenslab.ingest.archives import unpack_distribution

    acquired, summary = acquire(spec, layout, http_settings)
    _drop_ground_truth(spec, layout)
    unpacked = unpack_distribution(layout.distributed(spec.name), layout.extracted(spec.name))
    parsed = PARSERS[spec.name](layout.extracted(spec.name), layout.root)
    records = parsed.records.sort_values("image_id").reset_index(drop=True)
    atomic.write_parquet(layout.records(spec.name), records)
    for name, table in parsed.tables.items():
        atomic.write_parquet(layout.raw(spec.name) / f"{name}.parquet", table)
    skipped = skipped_members(unpacked)
    report = {
        "source": spec.name,
        "mode": spec.mode,
        "records": len(records),
        "rejected": parsed.rejected.astype(object).where(parsed.rejected.notna(), None)
        .to_dict(orient="records"),
        "skipped_archive_members": skipped,
        "tables": {k: len(v) for k, v in parsed.tables.items()},
        "acquisition": summary,
    }
    atomic.write_text(layout.ingest_report(spec.name), json.dumps(report, indent=2, default=str))
    return IngestResult(
        source=spec.name, mode=spec.mode, acquired=acquired, n_records=len(records),
        n_rejected=len(parsed.rejected), tables=report["tables"], skipped_members=skipped,
        records_path=layout.records(spec.name), summary=summary,
        rejected_preview=parsed.rejected.head(20),
    )
