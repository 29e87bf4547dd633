"""Photographer editing style, plain logic: load catalogued photos, extract features, cluster.

No Dagster here: assets/style.py wires these functions to the data tree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from lenslab.paths import DataLayout
from lenslab.style.features import FEATURE_NAMES, SEED_FEATURE_NAMES, global_features, seed_features

# Images per CPU batch in extract (measured per image: 8-16 alike, 4 and 32+ slower)
_CPU_BATCH = 8


def features_dir(layout: DataLayout) -> Path:
    return layout.root / "features"


def features_path(layout: DataLayout) -> Path:
    return features_dir(layout) / "global_features.parquet"


def clusters_path(layout: DataLayout) -> Path:
    return features_dir(layout) / "photographer_clusters.parquet"


def clusters_plot_path(layout: DataLayout) -> Path:
    return features_dir(layout) / "photographer_clusters_pca.png"


def catalogued_images(catalog: pd.DataFrame, source: str) -> pd.DataFrame:
    """The source's catalog rows: only validated images are in the catalog (never quarantine)."""
    rows = catalog[catalog["source"] == source]
    if rows.empty:
        raise ValueError(f"no catalogued images of source {source!r}: materialise its ingestion "
                         "asset and image_catalog first (or set style.source)")
    return rows[["image_id", "sha256", "split", "normalised_path"]].reset_index(drop=True)


def load_image(path: Path, size: int) -> np.ndarray:
    """Decode a JPEG to a (size, size, 3) uint8 array.

    ``draft`` lets libjpeg decode at 1/2, 1/4 or 1/8 scale straight from the DCT when the file is
    at least twice ``size``: much cheaper than a full decode and then a resize. The whole frame is
    squashed to a square (no crop) so the corners stay in for the vignetting feature.
    """
    with Image.open(path) as image:
        image.draft("RGB", (size, size))
        rgb = image.convert("RGB")
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(rgb)


def _decoded(paths: Sequence[Path], size: int) -> torch.Tensor:
    """uint8 (N, 3, size, size) batch of the photos, channel planes contiguous (what the
    feature maths reads plane by plane)."""
    batch = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    for image, path in zip(batch, paths, strict=True):
        image[...] = load_image(path, size).transpose(2, 0, 1)
    return torch.from_numpy(batch)


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Extraction:
    features: np.ndarray       # (N, len(FEATURE_NAMES))
    seed: np.ndarray           # (N, 4): the seed's variant
    seconds: float

    @property
    def images_per_s(self) -> float:
        return len(self.features) / self.seconds if self.seconds > 0 else float("nan")


def extract(paths: Sequence[Path], *, size: int = 256, batch_size: int = 64,
            device: torch.device | str = "cpu", threads: int = 2,
            progress: Callable[[int], None] | None = None) -> Extraction:
    """Features of every image in ``paths`` (in order), batched through ``global_features``.

    ``threads`` workers each decode a batch and compute its features (uint8 codes: the
    features' table path), so decoding and compute overlap. On CPU a batch is at most
    _CPU_BATCH images and torch runs one thread per worker: the temporaries stay in cache, the
    workers never wait on each other mid-op (torch's intra-op threads meet at a barrier after
    every op, which is what collapses on a loaded machine), and the batches end together.
    """
    device = torch.device(device)
    cpu = device.type == "cpu"
    step = min(batch_size, _CPU_BATCH) if cpu else batch_size
    chunks = [paths[i:i + step] for i in range(0, len(paths), step)]

    def work(chunk: Sequence[Path]) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():  # per thread: inference mode is thread-local
            pixels = _decoded(chunk, size).to(device, non_blocking=True)
            return global_features(pixels).cpu(), seed_features(pixels).cpu()

    out, seed_out = [], []
    start = time.perf_counter()
    with (_torch_threads(1) if cpu else nullcontext(),
          ThreadPoolExecutor(max(1, threads)) as pool):
        for (features, seed), chunk in zip(pool.map(work, chunks), chunks, strict=True):
            out.append(features)
            seed_out.append(seed)
            if progress is not None:
                progress(len(chunk))
    seconds = time.perf_counter() - start
    width = len(FEATURE_NAMES)
    features = torch.cat(out).double().numpy() if out else np.zeros((0, width))
    seeds = torch.cat(seed_out).double().numpy() if seed_out else np.zeros((0, 4))
    return Extraction(features, seeds, seconds)


def features_table(images: pd.DataFrame, extraction: Extraction) -> pd.DataFrame:
    """image_id, sha256, split, one column per feature, then the seed's 4 (prefixed seed_)."""
    table = images[["image_id", "sha256", "split"]].reset_index(drop=True)
    values = pd.DataFrame(np.hstack([extraction.features, extraction.seed]),
                          columns=[*FEATURE_NAMES, *SEED_FEATURE_NAMES])
    return pd.concat([table, values], axis=1)


def source_of(image_ids: pd.Series) -> str:
    """The one source of a style table's images (image ids are ``<source>:<path>``)."""
    sources = set(image_ids.astype(str).str.split(":", n=1).str[0])
    if len(sources) != 1:
        raise ValueError(f"expected images of one source, got {sorted(sources)}")
    return sources.pop()


def stems(image_ids: pd.Series) -> pd.Series:
    """The file stem of each image id (``<source>:<path>``): what ground-truth CSVs key on."""
    return image_ids.map(lambda i: Path(str(i).split(":", 1)[-1]).stem)


def source_labels(layout: DataLayout, image_ids: pd.Series, column: str) -> pd.Series | None:
    """A label column the source's own records carry (photographer folders' ``photographer``
    and ``base``), per image id; None where the source has no such column."""
    records = layout.records(source_of(image_ids))
    if not records.is_file():
        return None
    table = pd.read_parquet(records)
    if column not in table.columns:
        return None
    by_id = dict(zip(table["image_id"], table[column], strict=True))
    return image_ids.map(by_id)


@dataclass(frozen=True)
class Photographers:
    """Who edited each image: ``labels`` index ``names``; ``origin`` says how it is known."""

    labels: np.ndarray
    names: list[str]
    origin: str  # "folders" (the dataset's layout) or "ground_truth" (a synthetic generator's)


def true_photographers(layout: DataLayout, image_ids: pd.Series) -> Photographers | None:
    """Known photographer per image, or None where nobody knows (real Oxford pets).

    Photographer folders name them; the synthetic Oxford pets' ground truth numbers them.
    """
    folders = source_labels(layout, image_ids, "photographer")
    if folders is not None:
        if folders.isna().any():
            missing = image_ids[folders.isna()].iloc[0]
            raise ValueError(f"{missing} is catalogued but not in its source's records")
        names = sorted(folders.unique())
        return Photographers(folders.map({n: i for i, n in enumerate(names)}).to_numpy(int),
                             names, "folders")
    truth = layout.ground_truth(source_of(image_ids)) / "photographers.csv"
    if not truth.is_file():
        return None
    table = pd.read_csv(truth, dtype={"image": str})
    by_stem = dict(zip(table["image"], table["photographer"], strict=True))
    labels = stems(image_ids).map(by_stem)
    if labels.isna().any():  # images the generator did not edit (should not happen): no truth
        return None
    labels = labels.astype(int).to_numpy()
    return Photographers(labels, [str(i) for i in range(int(labels.max()) + 1)], "ground_truth")


@dataclass(frozen=True)
class Clustering:
    cluster: np.ndarray        # on standardised global features
    seed_cluster: np.ndarray   # the seed's variant: 4 raw columns, unscaled
    embedding_2d: np.ndarray   # PCA of the standardised features, for the plot
    explained: tuple[float, float]
    scores: dict[str, float]   # ARI/NMI of both variants, where the truth is known


def cluster(features: np.ndarray, seed_columns: np.ndarray, k: int, random_state: int,
            truth: np.ndarray | None = None, n_init: int = 10) -> Clustering:
    """KMeans on standardised features beside the seed's unscaled 4-column KMeans."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    from sklearn.preprocessing import StandardScaler

    k = min(k, len(features))
    scaled = StandardScaler().fit_transform(features)
    ours = KMeans(k, n_init=n_init, random_state=random_state).fit_predict(scaled)
    theirs = KMeans(k, n_init=n_init, random_state=random_state).fit_predict(seed_columns)
    pca = PCA(2, random_state=random_state).fit(scaled)
    scores: dict[str, float] = {}
    if truth is not None:
        for name, labels in (("standardised", ours), ("seed", theirs)):
            scores[f"ari_{name}"] = float(adjusted_rand_score(truth, labels))
            scores[f"nmi_{name}"] = float(normalized_mutual_info_score(truth, labels))
    ratio = pca.explained_variance_ratio_
    return Clustering(ours, theirs, pca.transform(scaled), (float(ratio[0]), float(ratio[1])),
                      scores)


def plot_clusters(result: Clustering, path: Path, title: str) -> None:
    """2-D PCA scatter of the images, coloured by standardised-feature cluster."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5), dpi=100)
    ax.scatter(result.embedding_2d[:, 0], result.embedding_2d[:, 1], c=result.cluster,
               cmap="tab20", s=14, linewidths=0)
    ax.set_xlabel(f"PC1 ({result.explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({result.explained[1]:.0%} of variance)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
