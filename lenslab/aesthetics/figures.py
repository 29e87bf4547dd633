"""Figures of the aesthetics report (matplotlib, Agg): Δ Spearman, enhancements, saliency."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image


def _save(fig: plt.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def delta_figure(per_worker: pd.DataFrame, path: Path) -> None:
    """One dot per test worker: Δ Spearman over the generic model, per k and method."""
    groups = list(per_worker.groupby(["k", "method"], sort=True))
    fig, ax = plt.subplots(figsize=(1.2 * len(groups) + 2, 3.5))
    for i, (_, rows) in enumerate(groups):
        d = rows["delta"].to_numpy()
        ax.scatter(np.full(len(d), i) + np.linspace(-0.15, 0.15, len(d)), d, s=14, alpha=0.7)
        ax.hlines(np.median(d), i - 0.3, i + 0.3, color="black")
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(groups)), [f"k={k}\n{m}" for (k, m), _ in groups])
    ax.set_ylabel("Δ Spearman vs generic (per worker)")
    ax.set_title("Personalisation gain on held-out images (bar: median)")
    _save(fig, path)


def enhancement_figure(rows: pd.DataFrame, folder: Path, path: Path) -> None:
    """Before / pixel ascent / global edit for a few photos, with the personal scores."""
    n = max(1, len(rows))
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.6 * n), squeeze=False)
    for r, row in enumerate(rows.itertuples()):
        for c, (name, score) in enumerate((("before", row.score), ("pixel", row.pixel_score),
                                           ("edit", row.edit_score))):
            with Image.open(folder / row.worker / f"{row.stem}_{name}.png") as im:
                axes[r, c].imshow(np.asarray(im))
            axes[r, c].set_title(f"{name}: {score:.2f}", fontsize=8)
            axes[r, c].axis("off")
    _save(fig, path)


def saliency_figure(images: np.ndarray, maps: dict[str, np.ndarray], path: Path) -> None:
    """Rows: sample images; columns: the photo, then each model x method map."""
    names = list(maps)
    fig, axes = plt.subplots(len(images), len(names) + 1,
                             figsize=(1.8 * (len(names) + 1), 1.9 * len(images)), squeeze=False)
    for r, image in enumerate(images):
        axes[r, 0].imshow(image.transpose(1, 2, 0))
        axes[r, 0].set_title("photo", fontsize=7)
        for c, name in enumerate(names, start=1):
            axes[r, c].imshow(maps[name][r], cmap="hot", vmin=0, vmax=1)
            axes[r, c].set_title(name.replace("|", "\n"), fontsize=7)
        for ax in axes[r]:
            ax.axis("off")
    _save(fig, path)
