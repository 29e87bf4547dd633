"""`lenslab models`: what the registry holds."""

from __future__ import annotations

from pathlib import Path

import click

from lenslab.cli.common import data_root_option, emit, format_option


@click.command()
@data_root_option
@format_option
def models(data_root: Path, fmt: str) -> None:
    """What is trained: every registry entry, its held-out metrics and its data version.

    \b
    Example:
      lenslab models --format jsonl
    """
    from models.registry import entries

    rows = []
    for card in entries(data_root):
        metrics = {k: v for k, v in card.get("metrics", {}).items()
                   if isinstance(v, int | float)}
        rows.append({"family": card["family"], "version": card["version"],
                     "promoted": card["promoted"], "trained": card["created"][:19],
                     "metrics": ", ".join(f"{k}={v:.3g}" for k, v in metrics.items()),
                     "data": "; ".join(f"{k}={v}" for k, v in card.get("data", {}).items())})
    emit(rows, fmt)
