"""Figures for the selfie report: feature maps (PCA, t-SNE), saliency and activations (PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from lenslab.atomic import atomic_path

COLOURS = {0: ("tab:red", "bad"), 1: ("tab:green", "good")}


def _save(fig: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def feature_maps(features: np.ndarray, labels: np.ndarray, seed: int, pca_path: Path,
                 tsne_path: Path) -> None:
    """2-D PCA and t-SNE (after PCA to 50-d, as the Hvass tutorial) coloured by label."""
    pca2 = PCA(n_components=2, random_state=seed).fit(features)
    xy = pca2.transform(features)
    _scatter(xy, labels, "PCA of the transfer values "
             f"({pca2.explained_variance_ratio_.sum():.0%} of variance)", pca_path)
    reduced = PCA(n_components=min(50, *features.shape), random_state=seed).fit_transform(
        features)
    perplexity = float(min(30, max(2, (len(features) - 1) / 3)))
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca",
              random_state=seed).fit_transform(reduced)
    _scatter(xy, labels, f"t-SNE of the transfer values (perplexity {perplexity:.0f})",
             tsne_path)


def _scatter(xy: np.ndarray, labels: np.ndarray, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for cls, (colour, name) in COLOURS.items():
        m = labels == cls
        ax.scatter(xy[m, 0], xy[m, 1], s=10, c=colour, alpha=0.7, label=f"{name} ({m.sum()})")
    ax.set_title(title, fontsize=10)
    ax.legend()
    _save(fig, path)


def saliency_grid(images: np.ndarray, maps: np.ndarray, titles: Sequence[str],
                  path: Path) -> None:
    """Each sample selfie above its gradient saliency map."""
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 4.6), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(images[i].transpose(1, 2, 0))
        axes[0, i].set_title(titles[i], fontsize=8)
        axes[1, i].imshow(maps[i], cmap="hot")
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("Gradient saliency |d logit(good) / d pixel| (fine-tuned model)", fontsize=9)
    _save(fig, path)


def activation_grid(images: np.ndarray, activations: dict[int, np.ndarray],
                    path: Path) -> None:
    """Rows: sample selfies; columns: the image, then mean activation after each trunk stage."""
    stages = sorted(activations)
    n = len(images)
    fig, axes = plt.subplots(n, 1 + len(stages), figsize=(2 * (1 + len(stages)), 2 * n),
                             squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(images[i].transpose(1, 2, 0))
        for j, s in enumerate(stages, start=1):
            axes[i, j].imshow(activations[s][i], cmap="viridis")
            if i == 0:
                side = activations[s].shape[-1]
                axes[i, j].set_title(f"stage {s} ({side}×{side})", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    _save(fig, path)
