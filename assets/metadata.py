"""Small helpers that turn results into Dagster metadata people can read in the UI."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd


def table_preview(frame: pd.DataFrame, rows: int = 5, max_width: int = 60) -> dg.MetadataValue:
    """The first rows as a markdown table, long cells shortened so the UI stays readable."""
    head = frame.head(rows).copy()
    for col in head.columns:
        head[col] = head[col].map(lambda v: _short(v, max_width))
    return dg.MetadataValue.md(head.to_markdown(index=False) if len(head) else "_(empty)_")


def _short(value: Any, width: int) -> str:
    text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def path_value(path: Path) -> dg.MetadataValue:
    return dg.MetadataValue.path(str(path))


def counts_md(
    counts: dict[str, Any], header: tuple[str, str] = ("what", "count")
) -> dg.MetadataValue:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in counts.items()]
    return dg.MetadataValue.md("\n".join(lines))


def content_version(*frames: pd.DataFrame) -> dg.DataVersion:
    """A data version from the content of tables, so downstream assets are unsynced (and
    retrained) only when what they read really changed, not whenever the asset re-ran."""
    digest = hashlib.sha256()
    for frame in frames:
        digest.update("\0".join(map(str, frame.columns)).encode())
        hashed = pd.util.hash_pandas_object(frame.astype(str), index=False)
        digest.update(hashed.to_numpy().tobytes())
    return dg.DataVersion(digest.hexdigest()[:16])
