"""Training the style models on the data tree, without Dagster: the autoencoder, then the
photographer identifier (its embedding classifier beside a logistic-regression baseline).

Each ``fit_*`` reads its inputs from the layout, trains, writes its outputs under the layout and
returns what the caller reports; the assets in assets/style.py only call these.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lenslab import atomic
from lenslab.paths import DataLayout
from lenslab.scaling import Standardiser
from lenslab.style import evaluation as style_models
from lenslab.style import extraction as style
from lenslab.style.features import FEATURE_NAMES
from models.checkpoints import save_object
from models.style import autoencoder as ae
from models.style import photographer as ph

SPLITS = ("train", "val", "test", "heldout_base")


def autoencoder_dir(layout: DataLayout) -> Path:
    return style_models.model_dir(layout, "style_autoencoder")


def photographer_dir(layout: DataLayout) -> Path:
    return style_models.model_dir(layout, "photographer")


@dataclass
class AutoencoderFit:
    images: int
    train_images: int
    result: ae.TrainResult
    embeddings: Path
    tensorboard: Path


def fit_autoencoder(layout: DataLayout, settings: ae.TrainConfig, *, heldout_base_fraction: float,
                    split_seed: int, resume: bool, device: torch.device,
                    log: Callable[[str], None] = print) -> AutoencoderFit:
    """Train the autoencoder on the style split's training photos and embed every photo.

    The autoencoder never sees the photos held out for identification (test, held-out bases).
    """
    ids = pd.read_parquet(style.features_path(layout), columns=["image_id"])["image_id"]
    images = style.catalogued_images(pd.read_parquet(layout.catalog), style.source_of(ids))
    parts = style_models.style_split(layout, images["image_id"], heldout_base_fraction,
                                     split_seed)
    pixels = style_models.load_images(layout.root, list(images["normalised_path"]),
                                      settings.size)
    out = autoencoder_dir(layout)
    checkpoint, tb = out / "checkpoint.pt", out / "tb"
    if not resume:  # a fresh run starts clean: no stale checkpoint or event files
        checkpoint.unlink(missing_ok=True)
        shutil.rmtree(tb, ignore_errors=True)
    result = ae.train(pixels[torch.from_numpy(parts == "train")],
                      pixels[torch.from_numpy(parts == "val")], settings, checkpoint=checkpoint,
                      log_dir=tb, device=device, log=log)
    z = ae.embed(result.model, pixels).numpy()
    table = pd.DataFrame(z, columns=[f"z{i}" for i in range(z.shape[1])])
    table.insert(0, "image_id", images["image_id"])
    table.insert(1, "split", parts)
    atomic.write_parquet(out / "embeddings.parquet", table)
    return AutoencoderFit(len(table), int((parts == "train").sum()), result,
                          out / "embeddings.parquet", tb)


@dataclass
class PhotographerFit:
    model: ph.PhotographerModel
    settings: ph.TrainConfig
    names: list[str]
    metrics: dict
    scales: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _labels(layout: DataLayout, table: pd.DataFrame) -> tuple[np.ndarray, list[str], str, str]:
    """The photographers where the data know them, else (real Oxford pets) the KMeans clusters,
    as in the seed: labels, names, what they are and where they come from."""
    known = style.true_photographers(layout, table["image_id"])
    if known is not None:
        return known.labels, known.names, "true_photographers", known.origin
    clusters = pd.read_parquet(style.clusters_path(layout))
    truth = table[["image_id"]].merge(clusters, on="image_id")["cluster"].to_numpy()
    return truth, [str(i) for i in range(int(truth.max()) + 1)], "kmeans_clusters", \
        "photographer_clusters"


def fit_photographer(layout: DataLayout, settings: ph.TrainConfig, *, ae_embedding: bool,
                     device: torch.device, resamples: int, interval_seed: int
                     ) -> PhotographerFit:
    """Train the photographer embeddings on the style split's training photos; score them and
    the logistic-regression baseline on validation, held-out edits and held-out bases."""
    feats = pd.read_parquet(style.features_path(layout))
    emb = pd.read_parquet(autoencoder_dir(layout) / "embeddings.parquet")
    table = feats.merge(emb, on="image_id", suffixes=("", "_ae"))  # split_ae: the style split
    parts = table["split_ae"].to_numpy()
    truth, names, label_kind, label_origin = _labels(layout, table)
    if len(names) < 2:
        raise ValueError(f"{len(names)} photographer among {len(table)} photos: "
                         "identification needs at least two")
    train_rows = parts == "train"
    f_raw = table[list(FEATURE_NAMES)].to_numpy(float)
    z_raw = table[[c for c in emb.columns if c.startswith("z")]].to_numpy(float)
    f_scaler = Standardiser.fit(f_raw, train_rows)
    z_scaler = Standardiser.fit(z_raw, train_rows)
    f, z = f_scaler(f_raw), z_scaler(z_raw)
    f_scale, z_scale = (f_scaler.mean, f_scaler.std), (z_scaler.mean, z_scaler.std)
    x = torch.tensor(np.hstack([z, f]) if ae_embedding else f, dtype=torch.float32)
    ft = torch.tensor(f, dtype=torch.float32)
    y = torch.tensor(truth, dtype=torch.long)
    idx = {s: torch.from_numpy(np.flatnonzero(parts == s)) for s in SPLITS}
    result = ph.train(x, ft, y, idx["train"], idx["val"], len(names), settings, device)
    with torch.no_grad():
        scores = {"embedding_classifier": result.model.logits(x),
                  "predicted_style_match": result.model.style_scores(ft),
                  "baseline_logreg_features": torch.from_numpy(style_models.baseline_scores(
                      f, truth, train_rows, settings.seed)).float()}
    units, unit = style_models.resampling_units(layout, table["image_id"])
    ident, versus = style_models.identification(
        scores, y.numpy(), {p: idx[p].numpy() for p in ("val", "test", "heldout_base")}, units,
        unit, baseline="baseline_logreg_features", resamples=resamples, seed=interval_seed)
    out = photographer_dir(layout)
    vectors = result.model.photographers.weight.detach().numpy()
    emb_table = pd.DataFrame(vectors, columns=[f"e{i}" for i in range(vectors.shape[1])])
    emb_table.insert(0, "photographer", names)
    atomic.write_parquet(ph.embeddings_path(layout.root), emb_table)
    best = scores["embedding_classifier"].argmax(1).numpy()
    atomic.write_parquet(out / "identification.parquet", pd.DataFrame({
        "image_id": table["image_id"], "split": parts, "photographer": truth,
        "predicted": best, "photographer_name": np.asarray(names)[truth],
        "predicted_name": np.asarray(names)[best]}))
    save_object({"model": result.model.state_dict(), "best_epoch": result.best_epoch},
                out / "model.pt")
    n = len(names)
    metrics = {"source": style.source_of(table["image_id"]), "labels": label_kind,
               "label_origin": label_origin, "photographer_names": names,
               "photographers": n, "chance_top1": 1 / n, "chance_top5": min(5, n) / n,
               "best_epoch": result.best_epoch, "torch_seed": settings.seed,
               "identification": ident, "versus_baseline": versus,
               "split_sizes": {k: len(v) for k, v in idx.items()}}
    atomic.write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    if not ae_embedding:  # the identifier carries no autoencoder scaling
        z_scale = (np.zeros(0), np.ones(0))
    return PhotographerFit(result.model, settings, names, metrics, (z_scale, f_scale))


def build_identifier(layout: DataLayout, fit: PhotographerFit, *, ae_embedding: bool,
                     feature_size: int) -> tuple[ph.PhotographerIdentifier, dict]:
    """The servable identifier (autoencoder + standardisation + photographer model) and the
    architecture its registry card records."""
    state = torch.load(autoencoder_dir(layout) / "checkpoint.pt", map_location="cpu",
                       weights_only=True)["model"]
    arch_ae = ae.architecture_of(state)
    arch = {"photographers": fit.names, "n_features": len(FEATURE_NAMES),
            "feature_size": feature_size, "ae_size": arch_ae["size"],
            "ae_embedding_dim": arch_ae["embedding_dim"] if ae_embedding else 0,
            "ae_width": arch_ae["width"], "dim": fit.settings.dim, "hidden": fit.settings.hidden}
    identifier = ph.build_from_card({"architecture": arch})
    if identifier.autoencoder is not None:
        identifier.autoencoder.load_state_dict(state)
    identifier.model.load_state_dict(fit.model.state_dict())
    (z_mean, z_std), (f_mean, f_std) = fit.scales
    identifier.set_scaling(*(torch.as_tensor(v, dtype=torch.float32)
                             for v in (z_mean, z_std, f_mean, f_std)))
    return identifier, arch
