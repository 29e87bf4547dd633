"""Ingestion: one asset per source, each reading the dataset in its real distributed format."""


import contextlib
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.metadata import content_version, counts_md, path_value, table_preview
from lenslab.params import param
from lenslab.paths import SOURCES
from orchestration.kit.http import HttpClient
from orchestration.kit.resources import DataRoot
from orchestration.kit.stages import Stage

DESCRIPTIONS = {
    "oxford_pets": "Oxford-IIIT Pet (images.tar.gz + annotations.tar.gz); synthetic: "
    "photographers' editing presets applied to varied pet photos.",
    "selfies": "UCF Selfie Data Set (images/ + selfie_dataset.txt with 36 attributes); synthetic: "
    "quality factors drive the popularity score.",
    "landmark_photos": "Instagram-style landmark photos in <Site>/<Pose>/ folders with a URL "
    "manifest and COCO-17 keypoints; _zz = the site without a person.",
    "flickr_aes": "FLICKR-AES ratings (worker, imagePair, score) and images; synthetic: raters "
    "with known taste vectors.",
    "photo_preferences": "Photos in quality tiers (00 best) with pairwise preferences, for the "
    "photobook rater.",
    "photographer_folders": "Photos in one folder per photographer (<root>/<photographer>/*.jpg, "
    "MIT-Adobe FiveK's expert renditions once exported); synthetic: 5 experts editing the same "
    "scenes.",
}



class _ToDagster(logging.Handler):
    """Hands lenslab's log records to the run's Dagster log."""

    def __init__(self, context: dg.AssetExecutionContext) -> None:
        super().__init__(logging.INFO)
        self.context = context

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.context.log.log(record.levelno, self.format(record))
        except Exception:  # a log line must never fail the download it reports
            self.handleError(record)


@contextlib.contextmanager
def _logs_to(context: dg.AssetExecutionContext) -> Iterator[None]:
    """Download progress (lenslab.ingest's Python logging) in the run's log while ingesting,
    whatever the instance's python_logs setting."""
    logger = logging.getLogger("lenslab.ingest")
    handler, level = _ToDagster(context), logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


MAX_SKIPPED_ROWS = 500  # real Oxford skips ~7k macOS ._* members: the report lists them all


def _is_junk(row: dict[str, str]) -> bool:
    return row["reason"].startswith("macOS")


def _skipped_table(rows: list[dict[str, str]]) -> dg.MetadataValue:
    """Every skipped member with its archive and reason, hostile ones first; past
    MAX_SKIPPED_ROWS the rest are counted and left to ingest_report.json."""
    if not rows:
        return dg.MetadataValue.md("_(none)_")
    ordered = sorted(rows, key=_is_junk)  # stable: archive order kept within each kind
    frame = pd.DataFrame(ordered[:MAX_SKIPPED_ROWS], columns=["member", "archive", "reason"])
    text = frame.to_markdown(index=False)
    if len(ordered) > MAX_SKIPPED_ROWS:
        text += f"\n\n…and {len(ordered) - MAX_SKIPPED_ROWS} more in ingest_report.json"
    return dg.MetadataValue.md(text)


def _skipped_log_lines(rows: list[dict[str, str]]) -> list[str]:
    """One warning per hostile or odd member; macOS junk counted per archive and reason."""
    lines = [f"skipped {r['member']} in {r['archive'] or 'distributed/'}: {r['reason']}"
             for r in rows if not _is_junk(r)]
    junk = Counter((r["archive"] or "distributed/", r["reason"]) for r in rows if _is_junk(r))
    lines += [f"skipped {n} member(s) of {archive}: {reason}"
              for (archive, reason), n in sorted(junk.items())]
    return lines


def source_stage(source: str) -> Stage:
    return Stage(__name__, outs=(f"raw/{source}",),
                 params=("seed", "synthetic.scale", f"sources.{source}", "http"))


class RemoteFile(dg.Config):
    """One file of an http source: where it is and the hash it must have."""

    url: str = Field(description="Where to download the file from.")
    sha256: str | None = Field(default=None, description="Pinned SHA-256 (recommended).")
    md5: str | None = Field(default=None, description="Optional MD5 cross-check.")


def _config_class(source: str) -> type[dg.Config]:
    """A Config whose defaults are this source's params.yaml entry."""
    defaults = param(f"sources.{source}")

    class SourceConfig(dg.Config):
        mode: Literal["synthetic", "local", "http"] = Field(
            default=defaults["mode"],
            description="synthetic (embedded default), local (a path on disk) or http (download)",
        )
        path: str | None = Field(default=defaults.get("path"), description="local: file or folder")
        manifest_url: str | None = Field(
            default=defaults.get("manifest_url"), description="http: a URL manifest (CSV)"
        )
        files: dict[str, RemoteFile] = Field(
            default={k: dict(v) for k, v in (defaults.get("files") or {}).items()},
            description="http: file name -> URL and pinned hash",
        )
        seed: int = Field(default=param("seed"), description="synthetic: root seed")
        scale: float = Field(default=param("synthetic.scale"), description="synthetic: size factor")

    name = "".join(p.title() for p in source.split("_")) + "Config"
    SourceConfig.__name__ = SourceConfig.__qualname__ = name
    return SourceConfig


def _materialisation(context: dg.AssetExecutionContext, source: str, mode: str, layout,
                     result) -> dg.MaterializeResult:
    """Log what the ingestion kept, rejected and skipped; the materialisation's metadata."""
    context.log.info(
        f"{source}: {result.n_records} images listed, {result.n_rejected} rows rejected, "
        f"{len(result.skipped_members)} archive members skipped "
        f"({'acquired' if result.acquired else 'reused'} {mode} data)"
    )
    for line in _skipped_log_lines(result.skipped_members):
        context.log.warning(line)
    for row in result.rejected_preview.itertuples():
        where = row.file if pd.isna(row.line) else f"{row.file}:{row.line}"
        context.log.warning(f"rejected {where}: {row.reason}")
    records = pd.read_parquet(result.records_path)
    table_files = [layout.raw(source) / f"{t}.parquet" for t in sorted(result.tables)]
    tables = [pd.read_parquet(f) for f in table_files if f.is_file()]
    return dg.MaterializeResult(
        data_version=content_version(records, *tables),
        metadata={
            "mode": mode,
            "records": result.n_records,
            "rejected_rows": result.n_rejected,
            "skipped_archive_members": len(result.skipped_members),
            "skipped_members": _skipped_table(result.skipped_members),
            "skipped_by_reason": counts_md(
                Counter(r["reason"] for r in result.skipped_members), ("reason", "members")),
            "tables": counts_md(result.tables, ("table", "rows")),
            "records_path": path_value(result.records_path),
            "report_path": path_value(layout.ingest_report(source)),
            "preview": table_preview(records),
            "acquired": result.acquired,
        }
    )


def build_source_asset(source: str) -> dg.AssetsDefinition:
    config_class = _config_class(source)
    stage = source_stage(source)
    knobs = {k: v for k, v in param(f"sources.{source}").items()
             if k not in ("mode", "path", "files", "manifest_url")}

    @dg.asset(
        name=source,
        group_name="ingestion",
        kinds={"python", "parquet"},
        description=DESCRIPTIONS[source],
        **stage.asset_kwargs(),
    )
    def _ingest(
        context: dg.AssetExecutionContext,
        config: config_class,  # type: ignore[valid-type]
        data_root: DataRoot,
        http: HttpClient,
    ) -> dg.MaterializeResult:
        from lenslab.ingest.source import SourceSpec, ingest_source

        layout = data_root.layout()
        spec = SourceSpec(
            name=source, mode=config.mode, path=config.path,
            # defaults arrive as dicts, launchpad values as RemoteFile: validate both alike
            files={k: RemoteFile.model_validate(v).model_dump() for k, v in config.files.items()},
            manifest_url=config.manifest_url,
            seed=config.seed, scale=config.scale,
            knobs=knobs if config.mode == "synthetic" else {},
        )
        with _logs_to(context):
            result = ingest_source(spec, layout, http.settings())
        return _materialisation(context, source, config.mode, layout, result)

    return _ingest


ingestion_assets = [build_source_asset(source) for source in SOURCES]
