"""Personalised aesthetics on the data tree, without Dagster: the generic scorer on the train
workers' mean ratings, each test worker's personal models from k of their ratings, and the
personalised enhancement of their held-out photos."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from lenslab.aesthetics.splits import (
    AestheticsLayout,
    image_paths,
    mean_ratings,
    validation_images,
    write_json,
)
from lenslab.atomic import write_parquet
from lenslab.paths import DataLayout
from lenslab.seeding import derive_seed
from models.aesthetics.networks import (
    METHODS,
    AestheticNet,
    GenericSettings,
    PersonalSettings,
    Prefix,
    Scorer,
    edit_ascent,
    load_personal,
    personal_state,
    personalise,
    pixel_ascent,
    predict,
    spearman,
    train_generic,
)
from models.backbones import build_trunk
from models.checkpoints import load_state, save_object, save_state
from models.device import describe
from models.images import as_float, load_images


@dataclass(frozen=True)
class NetSettings:
    backbone: str
    image_size: int
    frozen_stages: int


@dataclass
class GenericFit:
    summary: dict
    cached_images: int
    dropped: dict[str, str]  # image id -> why it has no features
    dropped_ratings: int


def _features(data: DataLayout, paths: pd.Series, net: NetSettings, device: torch.device
              ) -> tuple[torch.Tensor, AestheticNet, float]:
    """The frozen prefix's features of every rated image (cached), its trunk's net, seconds."""
    trunk = build_trunk(net.backbone)
    prefix = Prefix(trunk, net.frozen_stages).to(device).eval()
    start = time.perf_counter()
    features = []
    with torch.inference_mode():
        for i in range(0, len(paths), 128):
            batch = load_images([data.root / p for p in paths.iloc[i:i + 128]], net.image_size)
            features.append(prefix(as_float(batch, device)).float().cpu())
    seconds = time.perf_counter() - start
    return torch.cat(features), AestheticNet(trunk, net.frozen_stages), seconds


def fit_generic(data: DataLayout, layout: AestheticsLayout, net: NetSettings,
                train: GenericSettings, *, val_fraction: float, split_seed: int,
                device: torch.device, log: Callable[[str], None] = print) -> GenericFit:
    """Cache the prefix features of every usable rated image; train the last stages and head on
    the train workers' mean ratings, the epoch picked on a validation share of their images."""
    ratings = pd.read_parquet(data.raw("flickr_aes") / "ratings.parquet")
    workers = pd.read_parquet(layout.workers)
    paths, dropped = image_paths(pd.read_parquet(data.catalog),
                                 sorted(ratings["image_id"].unique()),
                                 pd.read_parquet(data.quarantine))
    # a quarantined image's ratings go, the rest of the dataset stays
    dropped_ratings = int(ratings["image_id"].isin(dropped).sum())
    ratings = ratings[~ratings["image_id"].isin(dropped)]
    ids = list(paths.index)
    features, model, feature_seconds = _features(data, paths, net, device)
    save_object({"image_ids": ids, "features": features}, layout.features)
    index = {image_id: i for i, image_id in enumerate(ids)}
    targets = mean_ratings(ratings, workers)  # train workers' images only
    val = validation_images(list(targets.index), val_fraction, split_seed)
    fit_ids = [i for i in targets.index if i not in val]
    val_ids = sorted(val)

    def subset(image_ids: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return (features[[index[i] for i in image_ids]],
                torch.tensor(targets.loc[image_ids].to_numpy(), dtype=torch.float32))

    start = time.perf_counter()
    result = train_generic(model, subset(fit_ids), subset(val_ids), train, device, log=log)
    train_seconds = time.perf_counter() - start
    save_state(model, layout.model / "generic.pt")
    summary = {"best_epoch": result.best_epoch, "val_spearman": result.best_val_spearman,
               "ridge_val_spearman": result.history[0]["val_spearman"],
               "history": result.history, "seed": train.seed, "train_images": len(fit_ids),
               "val_images": len(val_ids), "feature_seconds": feature_seconds,
               "train_seconds": train_seconds, "device": describe(device),
               "architecture": {"backbone": net.backbone, "image_size": net.image_size,
                                "frozen_stages": net.frozen_stages}}
    write_json(layout.model / "training.json", summary)
    return GenericFit(summary, len(ids), dropped, dropped_ratings)


def dropped_by_reason(dropped: dict[str, str]) -> dict[str, int]:
    return dict(Counter(dropped.values()))


def trained_networks(layout: AestheticsLayout, net: NetSettings
                     ) -> tuple[Prefix, AestheticNet, torch.Tensor, dict[str, int]]:
    """(prefix, generic net, cached features, {image_id: row}) as `fit_generic` left them."""
    trunk = build_trunk(net.backbone)  # the prefix's ImageNet weights
    generic = load_state(AestheticNet(trunk, net.frozen_stages), layout.model / "generic.pt")
    cached = torch.load(layout.features, map_location="cpu", weights_only=True)
    index = {image_id: i for i, image_id in enumerate(cached["image_ids"])}
    return Prefix(trunk, net.frozen_stages), generic.eval(), cached["features"], index


def fit_personal(layout: AestheticsLayout, net: NetSettings, settings: PersonalSettings, *,
                 seed: int, device: torch.device, log: Callable[[str], None] = print
                 ) -> pd.DataFrame:
    """Per test worker, k and draw: every method from the same generic start, Spearman on the
    worker's held-out images; one file per user, k and method (first draw). The results table
    is written and returned."""
    _, generic, features, index = trained_networks(layout, net)
    draws = pd.read_parquet(layout.draws)
    rows = []
    for (worker, k, rep), draw in draws.groupby(["worker", "k", "repeat"], sort=True):
        shot, held = draw[draw["role"] == "shot"], draw[draw["role"] == "heldout"]
        x_shot = features[[index[i] for i in shot["image_id"]]]
        y_shot = torch.tensor(shot["score"].to_numpy(), dtype=torch.float32)
        x_held = features[[index[i] for i in held["image_id"]]]
        generic_rho = spearman(held["score"].to_numpy(), predict(generic, x_held, device))
        for method in METHODS:
            run_seed = derive_seed(seed, "aesthetics", "personal", worker, k, rep, method)
            start = time.perf_counter()
            model, steps = personalise(generic, method, x_shot, y_shot, settings,
                                       run_seed % 2**31, device)
            seconds = time.perf_counter() - start
            rho = spearman(held["score"].to_numpy(), predict(model, x_held, device))
            rows.append({"worker": worker, "k": int(k), "repeat": int(rep), "method": method,
                         "generic_rho": generic_rho, "personal_rho": rho,
                         "delta": rho - generic_rho, "steps": steps, "seconds": seconds,
                         "heldout": len(held), "seed": str(run_seed)})
            if rep == 0:  # one file per user, k and method
                save_object(personal_state(model, method),
                            layout.adapters / method / f"k{k}" / f"{worker}.pt")
        log(f"{worker} k={k} draw {rep}: generic ρ {generic_rho:.3f}, "
            + ", ".join(f"{r['method']} {r['delta']:+.3f}" for r in rows[-len(METHODS):]))
    results = pd.DataFrame(rows)
    write_parquet(layout.adapters / "results.parquet", results)
    return results


def personal_model_files(layout: AestheticsLayout, method: str) -> dict[str, Path]:
    """worker -> the file of their personal model with the most shots."""
    files = {}
    for folder in sorted(layout.adapters.glob(f"{method}/k*"), key=lambda p: int(p.name[1:])):
        files.update({f.stem: f for f in folder.glob("*.pt")})
    return files


@dataclass(frozen=True)
class EnhanceSettings:
    size: int
    photos_per_worker: int
    steps: int
    step_size: float
    epsilon: float
    edit_lr: float
    edit_bound: float
    method: str


def enhance_photos(data: DataLayout, layout: AestheticsLayout, net: NetSettings,
                   settings: EnhanceSettings, device: torch.device) -> pd.DataFrame:
    """Each test worker's held-out photos enhanced for them: signed pixel ascent and ascent over
    four global edits on their personal score; before/after PNGs and the scores, written."""
    from PIL import Image

    prefix, generic, _, _ = trained_networks(layout, net)
    draws = pd.read_parquet(layout.draws)
    catalog, quarantine = pd.read_parquet(data.catalog), pd.read_parquet(data.quarantine)
    generic_scorer = Scorer(prefix, generic, net.image_size).to(device).eval()
    s = settings
    rows = []
    for worker, path in sorted(personal_model_files(layout, s.method).items()):
        k = int(path.parent.name[1:])
        scorer = Scorer(prefix, load_personal(generic, s.method, path),
                        net.image_size).to(device).eval()
        held = draws[(draws["worker"] == worker) & (draws["k"] == k) & (draws["repeat"] == 0)
                     & (draws["role"] == "heldout")].head(s.photos_per_worker)
        paths, _ = image_paths(catalog, list(held["image_id"]), quarantine)
        images = load_images([data.root / p for p in paths], s.size).float().div(255).to(device)
        for image_id, image in zip(paths.index, images, strict=True):
            pixel = pixel_ascent(scorer, image, s.steps, s.step_size, s.epsilon)
            edited, values = edit_ascent(scorer, image, s.steps, s.edit_lr, s.edit_bound)
            with torch.no_grad():
                own = [float(scorer(x[None])) for x in (image, pixel, edited)]
                gen = [float(generic_scorer(x[None])) for x in (image, pixel, edited)]
            stem = image_id.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            out = layout.enhanced / worker
            out.mkdir(parents=True, exist_ok=True)
            for name, x in (("before", image), ("pixel", pixel), ("edit", edited)):
                array = (x.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy()
                Image.fromarray(array).save(out / f"{stem}_{name}.png")
            rows.append({"worker": worker, "k": k, "image_id": image_id, "stem": stem,
                         "score": own[0], "pixel_score": own[1], "edit_score": own[2],
                         "generic_score": gen[0], "generic_pixel_score": gen[1],
                         "generic_edit_score": gen[2],
                         **{f"edit_{n}": v for n, v in values.items()}})
    table = pd.DataFrame(rows)
    write_parquet(layout.enhanced / "enhancement.parquet", table)
    return table
