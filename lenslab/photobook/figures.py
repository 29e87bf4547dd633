"""Figures for the photobook report: reliability diagram and the example album (PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt
import pandas as pd
from PIL import Image

from lenslab.atomic import atomic_path


def _save(fig: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def reliability_diagram(vectors: dict[str, dict], path: Path) -> None:
    """Win rate against mean predicted probability per bin, one line per master vector."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
    for name, v in vectors.items():
        table = pd.DataFrame(v["reliability"])
        ax.plot(table["mean_p"], table["win_rate"], marker="o",
                label=f"{name} (ECE {v['ece']:.3f})")
    ax.set(xlabel="predicted P(first photo wins)", ylabel="observed win rate",
           xlim=(0, 1), ylim=(0, 1), title="Reliability on held-out test pairs")
    ax.legend(loc="upper left", fontsize=8)
    _save(fig, path)


def album_sheet(album: pd.DataFrame, paths: Sequence[Path], path: Path, columns: int = 6) -> None:
    """The offered photos in score order; chosen ones framed green, skipped ones greyed."""
    rows = -(-len(album) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.1 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (_, row), photo in zip(axes.ravel(), album.iterrows(), paths, strict=False):
        with Image.open(photo) as im:
            ax.imshow(im.convert("RGB"), alpha=1.0 if row["chosen"] else 0.35)
        status = "chosen" if row["chosen"] else (
            "duplicate" if row["reason"].startswith("near-duplicate") else "not chosen")
        ax.set_title(f"#{row['rank']} {status}\nscore {row['score']:.2f}", fontsize=8,
                     color="green" if row["chosen"] else "grey")
    _save(fig, path)
