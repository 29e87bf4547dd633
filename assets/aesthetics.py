"""Personalised aesthetics: worker split, generic model, per-user models, enhancement, saliency."""

import time

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from assets.metadata import path_value, table_preview
from lenslab.params import param
from orchestration.kit.freshness import REPORT_FRESHNESS
from orchestration.kit.gpu import GPU_ASSET
from orchestration.kit.resources import DataRoot, TorchDevice
from orchestration.kit.stages import Stage

GROUP = "aesthetics"
NET = ("aesthetics.backbone", "aesthetics.image_size", "aesthetics.frozen_stages")

SPLITS_STAGE = Stage(__name__, outs=("aesthetics/splits",),
                     params=("seed", "aesthetics.ks", "aesthetics.repeats",
                             "aesthetics.min_heldout"))
MODEL_STAGE = Stage(__name__, outs=("aesthetics/model",),
                    params=("seed", *NET, "aesthetics.val_fraction", "aesthetics.generic"))
PERSONAL_STAGE = Stage(__name__, outs=("aesthetics/personal",),
                       params=("seed", *NET, "aesthetics.personal"))
ENHANCE_STAGE = Stage(__name__, outs=("aesthetics/enhanced",),
                      params=(*NET, "aesthetics.enhance"))
SALIENCY_STAGE = Stage(__name__, outs=("aesthetics/saliency",),
                       params=("seed", *NET, "aesthetics.saliency"))
REPORT_STAGE = Stage(__name__, outs=("reports/aesthetics", "registry/aesthetics"),
                     params=("aesthetics.enhance", "aesthetics.personal"),
                     persist=("registry/aesthetics",))  # every version is kept


def _layout(data_root: DataRoot):
    from lenslab.aesthetics.splits import AestheticsLayout

    return AestheticsLayout(data_root.layout().root)


class NetConfig(dg.Config):
    backbone: str = Field(default=param("aesthetics.backbone"),
                          description="torchvision trunk (its weights must be in the cache).")
    image_size: int = Field(default=param("aesthetics.image_size"), description="Input side, px.")
    frozen_stages: int = Field(default=param("aesthetics.frozen_stages"),
                               description="Leading trunk stages shared and frozen (cached).")


def _networks(config: NetConfig, data_root: DataRoot):
    """(prefix, generic AestheticNet, cached features {image_id: row}) from aesthetic_model."""
    import torch

    from models.aesthetics.networks import AestheticNet, Prefix
    from models.backbones import build_trunk
    from models.checkpoints import load_state

    layout = _layout(data_root)
    trunk = build_trunk(config.backbone)  # the prefix's ImageNet weights
    generic = load_state(AestheticNet(trunk, config.frozen_stages), layout.model / "generic.pt")
    cached = torch.load(layout.features, map_location="cpu", weights_only=True)
    index = {image_id: i for i, image_id in enumerate(cached["image_ids"])}
    return Prefix(trunk, config.frozen_stages), generic.eval(), cached["features"], index


class RaterSplitsConfig(dg.Config):
    seed: int = Field(default=param("seed"), description="Root seed of the k-shot draws.")
    ks: list[int] = Field(default=param("aesthetics.ks"), description="Shots per test worker.")
    repeats: list[int] = Field(default=param("aesthetics.repeats"),
                               description="Draws per k (same order as ks).")
    min_heldout: int = Field(default=param("aesthetics.min_heldout"),
                             description="Held-out ratings a worker needs beyond the k shots.")


@dg.asset(
    group_name=GROUP, kinds={"python", "parquet"}, deps=["flickr_aes"],
    **SPLITS_STAGE.asset_kwargs(),
    description="Ren et al.'s FLICKR-AES worker split rebuilt by the rating-count rule, checked "
    "(disjoint images) and fingerprinted, and seeded k-shot draws per test worker.",
)
def rater_splits(context: dg.AssetExecutionContext, config: RaterSplitsConfig,
                 data_root: DataRoot) -> dg.MaterializeResult:
    from lenslab.aesthetics.splits import (
        check_against_truth,
        kshot_draws,
        rater_split,
        split_fingerprint,
        write_json,
    )
    from lenslab.atomic import write_parquet
    from lenslab.formats.flickr_aes import TEST_WORKER_RATINGS

    layout = _layout(data_root)
    raw = data_root.layout().raw("flickr_aes")
    ratings = pd.read_parquet(raw / "ratings.parquet")
    workers = rater_split(ratings)
    truth_file = data_root.layout().ground_truth("flickr_aes") / "worker_split.csv"
    if truth_file.is_file():  # synthetic data: the generator knows the intended split
        wrong = check_against_truth(workers, pd.read_csv(truth_file))
        if wrong:
            raise ValueError(f"rebuilt split disagrees with {truth_file} on {wrong[:5]}")
    draws, skipped = kshot_draws(ratings, workers, config.ks, config.repeats,
                                 config.min_heldout, config.seed)
    for message in skipped:
        context.log.warning(message)
    write_parquet(layout.workers, workers)
    write_parquet(layout.draws, draws)
    info = {"rule": f"{TEST_WORKER_RATINGS[0]}-{TEST_WORKER_RATINGS[1]} ratings = test",
            "fingerprint": split_fingerprint(workers),
            "train_workers": int((workers["split"] == "train").sum()),
            "test_workers": int((workers["split"] == "test").sum()),
            "ks": config.ks, "repeats": config.repeats, "skipped": skipped,
            "draw_seeds": draws.drop_duplicates(["worker", "k", "repeat"])
            [["worker", "k", "repeat", "seed"]].astype(str).to_dict(orient="records")}
    write_json(layout.split_info, info)
    return dg.MaterializeResult(metadata={
        "train_workers": info["train_workers"], "test_workers": info["test_workers"],
        "split_version": info["fingerprint"], "skipped": len(skipped),
        "draws": int(draws.groupby(["worker", "k", "repeat"]).ngroups) if len(draws) else 0,
        "path": path_value(layout.splits), "preview": table_preview(workers),
    })


class AestheticModelConfig(NetConfig):
    seed: int = Field(default=param("seed"))
    val_fraction: float = Field(default=param("aesthetics.val_fraction"),
                                description="Train workers' images held out to pick the epoch.")
    epochs: int = Field(default=param("aesthetics.generic.epochs"))
    lr: float = Field(default=param("aesthetics.generic.lr"))
    batch_size: int = Field(default=param("aesthetics.generic.batch_size"))
    weight_decay: float = Field(default=param("aesthetics.generic.weight_decay"))


@dg.asset(
    group_name=GROUP, kinds={"python", "pytorch"}, deps=[rater_splits, "image_catalog"],
    **MODEL_STAGE.asset_kwargs(),
    description="Generic aesthetic model on train workers' mean ratings: frozen MobileNetV2 "
    "prefix (features cached for every rated image), last stages + linear head fine-tuned, "
    "epoch picked on a validation split of train workers' images (never test workers).",
    **GPU_ASSET,
)
def aesthetic_model(context: dg.AssetExecutionContext, config: AestheticModelConfig,
                    data_root: DataRoot, device: TorchDevice) -> dg.MaterializeResult:
    import torch

    from lenslab.aesthetics.splits import image_paths, mean_ratings, validation_images, write_json
    from lenslab.seeding import derive_seed
    from models.aesthetics.networks import AestheticNet, GenericSettings, Prefix, train_generic
    from models.backbones import build_trunk
    from models.checkpoints import save_object, save_state
    from models.device import describe
    from models.images import as_float, load_images

    layout = _layout(data_root)
    root = data_root.layout().root
    ratings = pd.read_parquet(data_root.layout().raw("flickr_aes") / "ratings.parquet")
    workers = pd.read_parquet(layout.workers)
    ids = sorted(ratings["image_id"].unique())
    paths = image_paths(pd.read_parquet(data_root.layout().catalog), ids)
    torch_device = device.torch_device()
    trunk = build_trunk(config.backbone)
    prefix = Prefix(trunk, config.frozen_stages).to(torch_device).eval()
    start = time.perf_counter()
    features = []
    with torch.inference_mode():
        for i in range(0, len(ids), 128):
            batch = load_images([root / p for p in paths.iloc[i:i + 128]], config.image_size)
            features.append(prefix(as_float(batch, torch_device)).float().cpu())
    features = torch.cat(features)
    feature_seconds = time.perf_counter() - start
    layout.model.mkdir(parents=True, exist_ok=True)
    save_object({"image_ids": ids, "features": features}, layout.features)

    index = {image_id: i for i, image_id in enumerate(ids)}
    targets = mean_ratings(ratings, workers)  # train workers' images only
    val = validation_images(list(targets.index), config.val_fraction, config.seed)
    fit_ids = [i for i in targets.index if i not in val]
    val_ids = sorted(val)

    def subset(image_ids):
        return (features[[index[i] for i in image_ids]],
                torch.tensor(targets.loc[image_ids].to_numpy(), dtype=torch.float32))

    seed = derive_seed(config.seed, "aesthetics", "generic") % 2**31
    net = AestheticNet(trunk, config.frozen_stages)
    start = time.perf_counter()
    result = train_generic(net, subset(fit_ids), subset(val_ids),
                           GenericSettings(config.epochs, config.lr, config.batch_size,
                                           config.weight_decay, seed),
                           torch_device, log=context.log.info)
    train_seconds = time.perf_counter() - start
    save_state(net, layout.model / "generic.pt")
    summary = {"best_epoch": result.best_epoch, "val_spearman": result.best_val_spearman,
               "ridge_val_spearman": result.history[0]["val_spearman"],
               "history": result.history, "seed": seed, "train_images": len(fit_ids),
               "val_images": len(val_ids), "feature_seconds": feature_seconds,
               "train_seconds": train_seconds, "device": describe(torch_device),
               "architecture": {"backbone": config.backbone, "image_size": config.image_size,
                                "frozen_stages": config.frozen_stages}}
    write_json(layout.model / "training.json", summary)
    return dg.MaterializeResult(metadata={
        "val_spearman": round(result.best_val_spearman, 4),
        "ridge_head_val_spearman": summary["ridge_val_spearman"],
        "best_epoch": result.best_epoch, "train_images": len(fit_ids),
        "val_images": len(val_ids), "cached_images": len(ids),
        "feature_seconds": round(feature_seconds, 2), "train_seconds": round(train_seconds, 2),
        "device": summary["device"], "history": dg.MetadataValue.json(result.history),
        "path": path_value(layout.model),
    })


class PersonalConfig(NetConfig):
    seed: int = Field(default=param("seed"))
    steps: int = Field(default=param("aesthetics.personal.steps"),
                       description="Most full-batch steps per user (the held-aside shots pick).")
    holdout: float = Field(default=param("aesthetics.personal.holdout"),
                           description="Share of the k shots held aside to pick the step.")
    anchor: float = Field(default=param("aesthetics.personal.anchor"),
                          description="L2 pull of trained weights toward the generic model.")
    lr_head: float = Field(default=param("aesthetics.personal.lr.head"))
    lr_full: float = Field(default=param("aesthetics.personal.lr.full"))
    lr_adapters: float = Field(default=param("aesthetics.personal.lr.adapters"))
    lr_shots: int = Field(default=param("aesthetics.personal.lr_shots"),
                          description="Learning rates scale by min(1, k / lr_shots).")
    min_stop: int = Field(default=param("aesthetics.personal.min_stop"),
                          description="Held-aside shots needed to accept any change.")


@dg.asset(
    group_name=GROUP, kinds={"python", "pytorch", "parquet"},
    deps=[rater_splits, aesthetic_model], **PERSONAL_STAGE.asset_kwargs(),
    description="Per test worker, k and draw: head-only, full fine-tune and residual adapters "
    "from the same generic start, Spearman on the worker's held-out images. Per-user files "
    "(the trained parameters only, first draw) load on top of the shared model.",
    **GPU_ASSET,
)
def personal_adapters(context: dg.AssetExecutionContext, config: PersonalConfig,
                      data_root: DataRoot, device: TorchDevice) -> dg.MaterializeResult:
    import torch

    from lenslab.atomic import write_parquet
    from lenslab.seeding import derive_seed
    from models.aesthetics.networks import (
        METHODS,
        PersonalSettings,
        count_parameters,
        personal_state,
        personalise,
        predict,
        spearman,
        with_method,
    )
    from models.checkpoints import save_object

    layout = _layout(data_root)
    _, generic, features, index = _networks(config, data_root)
    draws = pd.read_parquet(layout.draws)
    torch_device = device.torch_device()
    settings = PersonalSettings(config.steps, config.holdout,
                                {"head": config.lr_head, "full": config.lr_full,
                                 "adapters": config.lr_adapters}, config.anchor,
                                config.lr_shots, config.min_stop)
    rows = []
    for (worker, k, rep), draw in draws.groupby(["worker", "k", "repeat"], sort=True):
        shot, held = draw[draw["role"] == "shot"], draw[draw["role"] == "heldout"]
        x_shot = features[[index[i] for i in shot["image_id"]]]
        y_shot = torch.tensor(shot["score"].to_numpy(), dtype=torch.float32)
        x_held = features[[index[i] for i in held["image_id"]]]
        generic_rho = spearman(held["score"].to_numpy(), predict(generic, x_held, torch_device))
        for method in METHODS:
            seed = derive_seed(config.seed, "aesthetics", "personal", worker, k, rep, method)
            start = time.perf_counter()
            net, steps = personalise(generic, method, x_shot, y_shot, settings, seed % 2**31,
                                     torch_device)
            seconds = time.perf_counter() - start
            rho = spearman(held["score"].to_numpy(), predict(net, x_held, torch_device))
            rows.append({"worker": worker, "k": int(k), "repeat": int(rep), "method": method,
                         "generic_rho": generic_rho, "personal_rho": rho,
                         "delta": rho - generic_rho, "steps": steps, "seconds": seconds,
                         "heldout": len(held), "seed": str(seed)})
            if rep == 0:  # one file per user, k and method
                path = layout.adapters / method / f"k{k}" / f"{worker}.pt"
                save_object(personal_state(net, method), path)
        context.log.info(f"{worker} k={k} draw {rep}: generic ρ {generic_rho:.3f}, "
                         + ", ".join(f"{r['method']} {r['delta']:+.3f}" for r in rows[-3:]))
    results = pd.DataFrame(rows)
    write_parquet(layout.adapters / "results.parquet", results)
    params = {m: count_parameters(with_method(generic, m), m) for m in METHODS}
    per_worker = results.groupby(["k", "method", "worker"])["delta"].mean()
    medians = per_worker.groupby(["k", "method"]).median()
    return dg.MaterializeResult(metadata={
        **{f"median_delta_k{k}_{m}": round(float(v), 4) for (k, m), v in medians.items()},
        **{f"params_{m}": n for m, n in params.items()},
        "adapter_share_of_full": round(params["adapters"] / params["full"], 4),
        "seconds_per_run": dg.MetadataValue.json(
            {m: round(float(v), 3) for m, v in results.groupby("method")["seconds"].median()
             .items()}),
        "runs": len(results), "path": path_value(layout.adapters),
    })


class EnhanceConfig(NetConfig):
    size: int = Field(default=param("aesthetics.enhance.size"), description="Edit side, px.")
    photos_per_worker: int = Field(default=param("aesthetics.enhance.photos_per_worker"))
    steps: int = Field(default=param("aesthetics.enhance.steps"))
    step_size: float = Field(default=param("aesthetics.enhance.step_size"))
    epsilon: float = Field(default=param("aesthetics.enhance.epsilon"),
                           description="Per-pixel bound of the pixel ascent ([0, 1] scale).")
    edit_lr: float = Field(default=param("aesthetics.enhance.edit_lr"))
    edit_bound: float = Field(default=param("aesthetics.enhance.edit_bound"))
    method: str = Field(default="adapters", description="Whose personal model enhances.")


def personal_model_files(layout, method: str) -> dict[str, "object"]:
    """worker -> the file of their personal model with the most shots."""
    files = {}
    for folder in sorted(layout.adapters.glob(f"{method}/k*"), key=lambda p: int(p.name[1:])):
        files.update({f.stem: f for f in folder.glob("*.pt")})
    return files


@dg.asset(
    group_name=GROUP, kinds={"python", "pytorch"}, deps=[rater_splits, personal_adapters],
    **ENHANCE_STAGE.asset_kwargs(),
    description="Personalised enhancement of each test worker's held-out photos: signed "
    "gradient ascent on the personal score (step size, per-pixel ε) and ascent over four global "
    "edits (exposure, contrast, saturation, temperature); before/after images and score gains.",
    **GPU_ASSET,
)
def enhanced_photos(context: dg.AssetExecutionContext, config: EnhanceConfig,
                    data_root: DataRoot, device: TorchDevice) -> dg.MaterializeResult:
    import torch
    from PIL import Image

    from lenslab.aesthetics.splits import image_paths
    from lenslab.atomic import write_parquet
    from models.aesthetics.networks import Scorer, edit_ascent, load_personal, pixel_ascent
    from models.images import load_images

    layout = _layout(data_root)
    root = data_root.layout().root
    prefix, generic, _, _ = _networks(config, data_root)
    draws = pd.read_parquet(layout.draws)
    catalog = pd.read_parquet(data_root.layout().catalog)
    torch_device = device.torch_device()
    generic_scorer = Scorer(prefix, generic, config.image_size).to(torch_device).eval()
    rows = []
    for worker, path in sorted(personal_model_files(layout, config.method).items()):
        k = int(path.parent.name[1:])
        net = load_personal(generic, config.method, path)
        scorer = Scorer(prefix, net, config.image_size).to(torch_device).eval()
        held = draws[(draws["worker"] == worker) & (draws["k"] == k) & (draws["repeat"] == 0)
                     & (draws["role"] == "heldout")].head(config.photos_per_worker)
        images = load_images([root / p for p in image_paths(catalog, list(held["image_id"]))],
                             config.size).float().div(255).to(torch_device)
        for image_id, image in zip(held["image_id"], images, strict=True):
            pixel = pixel_ascent(scorer, image, config.steps, config.step_size, config.epsilon)
            edited, values = edit_ascent(scorer, image, config.steps, config.edit_lr,
                                         config.edit_bound)
            with torch.no_grad():
                s = [float(scorer(x[None])) for x in (image, pixel, edited)]
                g = [float(generic_scorer(x[None])) for x in (image, pixel, edited)]
            stem = image_id.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            out = layout.enhanced / worker
            out.mkdir(parents=True, exist_ok=True)
            for name, x in (("before", image), ("pixel", pixel), ("edit", edited)):
                array = (x.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy()
                Image.fromarray(array).save(out / f"{stem}_{name}.png")
            rows.append({"worker": worker, "k": k, "image_id": image_id, "stem": stem,
                         "score": s[0], "pixel_score": s[1], "edit_score": s[2],
                         "generic_score": g[0], "generic_pixel_score": g[1],
                         "generic_edit_score": g[2], **{f"edit_{n}": v for n, v in
                                                        values.items()}})
    table = pd.DataFrame(rows)
    write_parquet(layout.enhanced / "enhancement.parquet", table)
    pixel_rose = float((table["pixel_score"] > table["score"]).mean()) if len(table) else 0.0
    edit_rose = float((table["edit_score"] > table["score"]).mean()) if len(table) else 0.0
    return dg.MaterializeResult(metadata={
        "photos": len(table), "pixel_score_rose": round(pixel_rose, 3),
        "edit_score_rose": round(edit_rose, 3),
        "median_pixel_gain": round(float((table["pixel_score"] - table["score"]).median()), 4),
        "median_edit_gain": round(float((table["edit_score"] - table["score"]).median()), 4),
        "path": path_value(layout.enhanced),
        "preview": table_preview(table[["worker", "score", "pixel_score", "edit_score",
                                        "edit_exposure", "edit_temperature"]].round(3)),
    })


class SaliencyConfig(NetConfig):
    seed: int = Field(default=param("seed"))
    samples: int = Field(default=param("aesthetics.saliency.samples"))
    smoothgrad_n: int = Field(default=param("aesthetics.saliency.smoothgrad_n"))
    smoothgrad_noise: float = Field(default=param("aesthetics.saliency.smoothgrad_noise"))
    workers: int = Field(default=param("aesthetics.saliency.workers"),
                         description="Personal models shown beside the generic one.")


@dg.asset(
    group_name=GROUP, kinds={"python", "pytorch", "matplotlib"},
    deps=[rater_splits, personal_adapters], **SALIENCY_STAGE.asset_kwargs(),
    description="Vanilla-gradient and SmoothGrad saliency of sample held-out photos for the "
    "generic model and the first test workers' adapter models (maps .npz + figure).",
    **GPU_ASSET,
)
def saliency_maps(config: SaliencyConfig, data_root: DataRoot,
                  device: TorchDevice) -> dg.MaterializeResult:
    from lenslab.aesthetics.figures import saliency_figure
    from lenslab.aesthetics.splits import image_paths
    from lenslab.seeding import derive_seed
    from models.aesthetics.networks import Scorer, load_personal, saliency
    from models.images import load_images

    layout = _layout(data_root)
    prefix, generic, _, _ = _networks(config, data_root)
    draws = pd.read_parquet(layout.draws)
    held = draws[(draws["role"] == "heldout") & (draws["repeat"] == 0)]
    picks = sorted(held["image_id"].unique())[:config.samples]
    images = load_images([data_root.layout().root / p for p in
                          image_paths(pd.read_parquet(data_root.layout().catalog), picks)],
                         config.image_size).float().div(255)
    torch_device = device.torch_device()
    models = {"generic": generic}
    for worker, path in sorted(personal_model_files(layout, "adapters").items())[:config.workers]:
        models[f"{worker[:8]} adapters"] = load_personal(generic, "adapters", path)
    seed = derive_seed(config.seed, "aesthetics", "smoothgrad") % 2**31
    maps = {}
    for name, net in models.items():
        scorer = Scorer(prefix, net, config.image_size).to(torch_device)
        x = images.to(torch_device)
        maps[f"{name}|vanilla"] = saliency(scorer, x)
        maps[f"{name}|smoothgrad"] = saliency(scorer, x, config.smoothgrad_n,
                                              config.smoothgrad_noise, seed)
    layout.saliency.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(layout.saliency / "maps.npz", images=images.numpy(),
                        **{k.replace("|", "__").replace(" ", "_"): v for k, v in maps.items()})
    figure = layout.saliency / "saliency.png"
    saliency_figure(images.numpy(), maps, figure)
    return dg.MaterializeResult(metadata={
        "images": len(picks), "models": len(models), "smoothgrad_samples": config.smoothgrad_n,
        "figure": path_value(figure),
    })


@dg.asset(
    group_name=GROUP, kinds={"python", "matplotlib"},
    deps=[rater_splits, aesthetic_model, personal_adapters, enhanced_photos, saliency_maps],
    **REPORT_STAGE.asset_kwargs(),
    freshness_policy=REPORT_FRESHNESS,
    description="Per k and method: Δ Spearman over the generic model (median, mean ± sd, share "
    "of workers improved), trainable parameters per user, plots, example enhancements, skips.",
)
def aesthetics_report(context: dg.AssetExecutionContext,
                      data_root: DataRoot) -> dg.MaterializeResult:
    import json

    from lenslab.aesthetics.figures import delta_figure, enhancement_figure
    from lenslab.aesthetics.splits import report_markdown, write_json
    from lenslab.atomic import write_text
    from models.aesthetics.networks import summarise_deltas

    layout = _layout(data_root)
    out = layout.report
    split = json.loads(layout.split_info.read_text())
    generic = json.loads((layout.model / "training.json").read_text())
    results = pd.read_parquet(layout.adapters / "results.parquet")
    enhanced = pd.read_parquet(layout.enhanced / "enhancement.parquet")
    per_worker = results.groupby(["k", "method", "worker"], as_index=False)[
        ["delta", "generic_rho", "personal_rho", "steps"]].mean()
    table = []
    for (k, method), rows in per_worker.groupby(["k", "method"], sort=True):
        table.append({"k": int(k), "method": method, **summarise_deltas(rows["delta"]),
                      "generic_rho": float(rows["generic_rho"].median()),
                      "personal_rho": float(rows["personal_rho"].median()),
                      "steps": float(rows["steps"].median())})
    # the parameter counts come from the stored per-user files themselves
    params = {}
    import torch

    for method in ("head", "full", "adapters"):
        files = sorted(layout.adapters.glob(f"{method}/k*/*.pt"))
        if files:
            state = torch.load(files[0], map_location="cpu", weights_only=True)
            params[method] = int(sum(t.numel() for t in state.values()))
    steps = param("aesthetics.enhance.steps")
    enhancement = {
        "photos": len(enhanced), "steps": steps, "epsilon": param("aesthetics.enhance.epsilon"),
        "pixel_rose": float((enhanced["pixel_score"] > enhanced["score"]).mean()),
        "edit_rose": float((enhanced["edit_score"] > enhanced["score"]).mean()),
        "pixel_gain_median": float((enhanced["pixel_score"] - enhanced["score"]).median()),
        "edit_gain_median": float((enhanced["edit_score"] - enhanced["score"]).median()),
        "pixel_generic_gain_median": float(
            (enhanced["generic_pixel_score"] - enhanced["generic_score"]).median()),
        "edit_generic_gain_median": float(
            (enhanced["generic_edit_score"] - enhanced["generic_score"]).median()),
        "edit_median": {c[5:]: float(enhanced[c].median()) for c in enhanced.columns
                        if c.startswith("edit_") and c != "edit_score"},
    }
    root = data_root.layout().root
    figures = {"Δ Spearman per worker": out / "delta_spearman.png",
               "example enhancements": out / "enhancements.png",
               "saliency (generic vs personal)": layout.saliency / "saliency.png"}
    delta_figure(per_worker, figures["Δ Spearman per worker"])
    enhancement_figure(enhanced.head(4), layout.enhanced, figures["example enhancements"])
    recipe = {"holdout": param("aesthetics.personal.holdout"),
              "min_stop": param("aesthetics.personal.min_stop")}
    metrics = {"split": split, "generic": generic, "results": table, "parameters": params,
               "recipe": recipe,
               "enhancement": enhancement, "skipped": split["skipped"],
               "seconds_per_run": {f"k={k} {m}": float(v) for (k, m), v in
                                   results.groupby(["k", "method"])["seconds"].median().items()}}
    md = report_markdown(metrics, {k: v.relative_to(root).as_posix() for k, v in figures.items()})
    write_json(out / "metrics.json", metrics)
    write_text(out / "report.md", md)
    context.log.info(md)
    entry = _register(context, data_root, metrics)
    return dg.MaterializeResult(metadata={
        "registry_version": entry.version, "promoted": entry.promoted,
        **{f"median_delta_k{r['k']}_{r['method']}": round(r["median"], 4) for r in table},
        "adapter_params": params.get("adapters", 0), "full_params": params.get("full", 0),
        "skipped": len(split["skipped"]), "report": dg.MetadataValue.md(md),
        "metrics_path": path_value(out / "metrics.json"),
    })


def _register(context: dg.AssetExecutionContext, data_root: DataRoot, metrics: dict):
    """The generic scorer as a registry entry, each test worker's adapters (their model with the
    most shots) as its extra states; promoted if the personalisation quality bar holds."""
    import torch

    from assets.registration import data_provenance, stage_params
    from lenslab.aesthetics.splits import quality_problems
    from models import registry
    from models.aesthetics.networks import AestheticNet, Prefix, Scorer
    from models.backbones import build_trunk
    from models.checkpoints import load_state

    layout = _layout(data_root)
    arch = metrics["generic"]["architecture"]
    trunk = build_trunk(arch["backbone"])  # the prefix keeps its ImageNet weights
    cut = arch["frozen_stages"]
    scorer = Scorer(Prefix(trunk, cut), load_state(AestheticNet(trunk, cut),
                                                   layout.model / "generic.pt"),
                    arch["image_size"])
    method = "adapters"  # the method the quality check judges
    users, states = {}, {}
    for i, (worker, path) in enumerate(sorted(personal_model_files(layout, method).items())):
        users[worker] = {"method": method, "k": int(path.parent.name[1:]),
                         "state": f"users/{i:04d}"}  # worker ids need not be file names
        states[users[worker]["state"]] = torch.load(path, map_location="cpu", weights_only=True)
    problems = quality_problems(metrics)
    for problem in problems:
        context.log.warning(f"aesthetics model not promoted: {problem}")
    k_top = max((r["k"] for r in metrics["results"]), default=None)
    top = {r["method"]: r for r in metrics["results"] if r["k"] == k_top}
    card = {
        "asset": "aesthetic_model", "personal_asset": "personal_adapters",
        "code_version": MODEL_STAGE.code_version(), "architecture": arch,
        "metrics": {
            "val_spearman": metrics["generic"]["val_spearman"],
            "baseline_ridge_head_val_spearman": metrics["generic"]["ridge_val_spearman"],
            **{f"k{k_top}_{m}_median_delta_spearman": r["median"] for m, r in top.items()},
            f"k{k_top}_generic_test_worker_spearman": (top[method]["generic_rho"]
                                                       if method in top else None),
            "test_workers": metrics["split"]["test_workers"], "quality_problems": problems},
        "params": {**stage_params(MODEL_STAGE), **stage_params(PERSONAL_STAGE)},
        "data": data_provenance(context, ("rater_splits", "aesthetic_model", "personal_adapters"),
                                ("data/aesthetics/splits", "data/aesthetics/model",
                                 "data/aesthetics/personal")),
        "backbone": {"name": arch["backbone"], "weights": "torchvision IMAGENET1K_V1",
                     "provenance": "torchvision's official ImageNet checkpoint (torch hub cache)"},
        "users": users,
        "enhance": param("aesthetics.enhance"),
    }
    return registry.register(data_root.layout().root, "aesthetics", scorer, card=card,
                             promote=not problems, extra_states=states)


@dg.asset_check(asset=aesthetics_report,
                description="At the largest k the adapters raise the median per-worker Spearman "
                "over the generic model, with at most 10% of a full fine-tune's parameters; at "
                "the smallest k no method lowers the median.")
def aesthetics_personalisation_helps(data_root: DataRoot) -> dg.AssetCheckResult:
    import json

    from lenslab.aesthetics.splits import quality_problems

    metrics = json.loads((_layout(data_root).report / "metrics.json").read_text())
    problems = quality_problems(metrics)
    return dg.AssetCheckResult(passed=not problems, description="; ".join(problems) or None)


aesthetics_assets = [rater_splits, aesthetic_model, personal_adapters, enhanced_photos,
                     saliency_maps, aesthetics_report]
aesthetics_checks = [aesthetics_personalisation_helps]
