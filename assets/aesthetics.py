"""Personalised aesthetics: worker split, generic model, per-user models, enhancement, saliency."""


import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from assets.metadata import path_value, table_preview
from assets.registration import register_model
from lenslab.aesthetics.splits import AestheticsLayout
from models.registry import registry_folder
from orchestration.kit.config import config_params, param_field, settings_from
from orchestration.kit.freshness import REPORT_FRESHNESS
from orchestration.kit.gpu import GPU_ASSET
from orchestration.kit.resources import DataRoot, TorchDevice
from orchestration.kit.stages import Stage

GROUP = "aesthetics"
NET = ("aesthetics.backbone", "aesthetics.image_size", "aesthetics.frozen_stages")



def _layout(data_root: DataRoot):
    return AestheticsLayout(data_root.layout().root)


class NetConfig(dg.Config):
    backbone: str = param_field("aesthetics.backbone",
                                "torchvision trunk (its weights must be in the cache).")
    image_size: int = param_field("aesthetics.image_size", "Input side, px.")
    frozen_stages: int = param_field("aesthetics.frozen_stages",
                                     "Leading trunk stages shared and frozen (cached).")


def _net(config: NetConfig):
    from models.aesthetics.fit import NetSettings

    return settings_from(config, NetSettings)


class RaterSplitsConfig(dg.Config):
    seed: int = param_field("seed", "Root seed of the k-shot draws.")
    ks: list[int] = param_field("aesthetics.ks", "Shots per test worker.")
    repeats: list[int] = param_field("aesthetics.repeats",
                                     "Draws per k (same order as ks).")
    min_heldout: int = param_field("aesthetics.min_heldout",
                                   "Held-out ratings a worker needs beyond the k shots.")


SPLITS_STAGE = Stage(__name__, outs=(AestheticsLayout.SPLITS,),
                     params=config_params(RaterSplitsConfig))


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
    seed: int = param_field("seed")
    val_fraction: float = param_field("aesthetics.val_fraction",
                                      "Train workers' images held out to pick the epoch.")
    epochs: int = param_field("aesthetics.generic.epochs")
    lr: float = param_field("aesthetics.generic.lr")
    batch_size: int = param_field("aesthetics.generic.batch_size")
    weight_decay: float = param_field("aesthetics.generic.weight_decay")


MODEL_STAGE = Stage(__name__, outs=(AestheticsLayout.MODEL,),
                    params=config_params(AestheticModelConfig))


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
    from lenslab.seeding import derive_seed
    from models.aesthetics.fit import dropped_by_reason, fit_generic
    from models.aesthetics.networks import GenericSettings

    layout = _layout(data_root)
    seed = derive_seed(config.seed, "aesthetics", "generic") % 2**31
    fit = fit_generic(data_root.layout(), layout, _net(config),
                      settings_from(config, GenericSettings, seed=seed),
                      val_fraction=config.val_fraction, split_seed=config.seed,
                      device=device.torch_device(), log=context.log.info)
    reasons = dropped_by_reason(fit.dropped)
    if fit.dropped:
        context.log.warning(f"dropped {len(fit.dropped)} rated image(s) and their "
                            f"{fit.dropped_ratings} rating(s): {reasons}, e.g. "
                            f"{next(iter(fit.dropped))}")
    summary = fit.summary
    return dg.MaterializeResult(metadata={
        "val_spearman": round(summary["val_spearman"], 4),
        "ridge_head_val_spearman": summary["ridge_val_spearman"],
        "best_epoch": summary["best_epoch"], "train_images": summary["train_images"],
        "val_images": summary["val_images"], "cached_images": fit.cached_images,
        "dropped_images": len(fit.dropped), "dropped_ratings": fit.dropped_ratings,
        "dropped_by_reason": dg.MetadataValue.json(reasons),
        "feature_seconds": round(summary["feature_seconds"], 2),
        "train_seconds": round(summary["train_seconds"], 2),
        "device": summary["device"], "history": dg.MetadataValue.json(summary["history"]),
        "path": path_value(layout.model),
    })


class PersonalConfig(NetConfig):
    seed: int = param_field("seed")
    steps: int = param_field("aesthetics.personal.steps",
                             "Most full-batch steps per user (the held-aside shots pick).")
    holdout: float = param_field("aesthetics.personal.holdout",
                                 "Share of the k shots held aside to pick the step.")
    anchor: float = param_field("aesthetics.personal.anchor",
                                "L2 pull of trained weights toward the generic model.")
    lr_head: float = param_field("aesthetics.personal.lr.head")
    lr_full: float = param_field("aesthetics.personal.lr.full")
    lr_adapters: float = param_field("aesthetics.personal.lr.adapters")
    lr_shots: int = param_field("aesthetics.personal.lr_shots",
                                "Learning rates scale by min(1, k / lr_shots).")
    min_stop: int = param_field("aesthetics.personal.min_stop",
                                "Held-aside shots needed to accept any change.")


PERSONAL_STAGE = Stage(__name__, outs=(AestheticsLayout.PERSONAL,),
                       params=config_params(PersonalConfig))


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
    from models.aesthetics.fit import fit_personal, trained_networks
    from models.aesthetics.networks import (
        METHODS,
        PersonalSettings,
        count_parameters,
        with_method,
    )

    layout = _layout(data_root)
    settings = settings_from(config, PersonalSettings, lr={
        "head": config.lr_head, "full": config.lr_full, "adapters": config.lr_adapters})
    results = fit_personal(layout, _net(config), settings, seed=config.seed,
                           device=device.torch_device(), log=context.log.info)
    generic = trained_networks(layout, _net(config))[1]
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
    size: int = param_field("aesthetics.enhance.size", "Edit side, px.")
    photos_per_worker: int = param_field("aesthetics.enhance.photos_per_worker")
    steps: int = param_field("aesthetics.enhance.steps")
    step_size: float = param_field("aesthetics.enhance.step_size")
    epsilon: float = param_field("aesthetics.enhance.epsilon",
                                 "Per-pixel bound of the pixel ascent ([0, 1] scale).")
    edit_lr: float = param_field("aesthetics.enhance.edit_lr")
    edit_bound: float = param_field("aesthetics.enhance.edit_bound")
    method: str = Field(default="adapters", description="Whose personal model enhances.")


ENHANCE_STAGE = Stage(__name__, outs=(AestheticsLayout.ENHANCED,),
                      params=config_params(EnhanceConfig))


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
    from models.aesthetics.fit import EnhanceSettings, enhance_photos

    layout = _layout(data_root)
    table = enhance_photos(data_root.layout(), layout, _net(config),
                           settings_from(config, EnhanceSettings), device.torch_device())
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
    seed: int = param_field("seed")
    samples: int = param_field("aesthetics.saliency.samples")
    smoothgrad_n: int = param_field("aesthetics.saliency.smoothgrad_n")
    smoothgrad_noise: float = param_field("aesthetics.saliency.smoothgrad_noise")
    workers: int = param_field("aesthetics.saliency.workers",
                               "Personal models shown beside the generic one.")


SALIENCY_STAGE = Stage(__name__, outs=(AestheticsLayout.SALIENCY,),
                       params=config_params(SaliencyConfig))


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
    from models.aesthetics.fit import personal_model_files, trained_networks
    from models.aesthetics.networks import Scorer, load_personal, saliency
    from models.images import load_images

    layout = _layout(data_root)
    prefix, generic, _, _ = trained_networks(layout, _net(config))
    draws = pd.read_parquet(layout.draws)
    held = draws[(draws["role"] == "heldout") & (draws["repeat"] == 0)]
    picks = sorted(held["image_id"].unique())[:config.samples]
    paths, _ = image_paths(pd.read_parquet(data_root.layout().catalog), picks,
                           pd.read_parquet(data_root.layout().quarantine))
    picks = list(paths.index)
    images = load_images([data_root.layout().root / p for p in paths],
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


class AestheticsReportConfig(dg.Config):
    seed: int = param_field("seed", "Root seed of the intervals.")
    bootstrap: int = param_field("aesthetics.bootstrap", "Resamples per CI.")
    enhance: dict = param_field("aesthetics.enhance",
                                "The enhancement settings the served model carries.")
    holdout: float = param_field("aesthetics.personal.holdout")
    min_stop: int = param_field("aesthetics.personal.min_stop")


REPORT_STAGE = Stage(__name__, outs=(AestheticsLayout.REPORT, registry_folder("aesthetics")),
                     params=config_params(AestheticsReportConfig),
                     persist=(registry_folder("aesthetics"),))  # every version is kept


@dg.asset(
    group_name=GROUP, kinds={"python", "matplotlib"},
    deps=[rater_splits, aesthetic_model, personal_adapters, enhanced_photos, saliency_maps],
    **REPORT_STAGE.asset_kwargs(),
    freshness_policy=REPORT_FRESHNESS,
    description="Per k and method: Δ Spearman over the generic model (median, mean ± sd, share "
    "of workers improved, intervals over test workers), trainable parameters per user, plots, "
    "example enhancements, skips; registers the generic scorer with each user's adapters.",
)
def aesthetics_report(context: dg.AssetExecutionContext, config: AestheticsReportConfig,
                      data_root: DataRoot) -> dg.MaterializeResult:
    from models.aesthetics.evaluation import ReportSettings, evaluate_personalisation

    layout = _layout(data_root)
    metrics, md = evaluate_personalisation(layout, settings_from(
        config, ReportSettings, enhance_steps=config.enhance["steps"],
        enhance_epsilon=config.enhance["epsilon"]))
    context.log.info(md)
    entry = _register(context, data_root, metrics, config)
    params, table = metrics["parameters"], metrics["results"]
    return dg.MaterializeResult(metadata={
        "registry_version": entry.version, "promoted": entry.promoted,
        **{f"median_delta_k{r['k']}_{r['method']}": round(r["median"], 4) for r in table},
        "adapter_params": params.get("adapters", 0), "full_params": params.get("full", 0),
        "skipped": len(metrics["skipped"]), "report": dg.MetadataValue.md(md),
        "metrics_path": path_value(layout.report / "metrics.json"),
    })


def _register(context: dg.AssetExecutionContext, data_root: DataRoot, metrics: dict,
              config: AestheticsReportConfig):
    """The generic scorer as a registry entry, each test worker's adapters (their model with the
    most shots) as its extra states; promoted if the personalisation quality bar holds."""
    from lenslab.aesthetics.splits import quality_problems
    from models.aesthetics.evaluation import served_scorer

    layout = _layout(data_root)
    arch = metrics["generic"]["architecture"]
    method = "adapters"  # the method the quality check judges
    scorer, users, states = served_scorer(layout, arch, method)
    k_top = max((r["k"] for r in metrics["results"]), default=None)
    top = {r["method"]: r for r in metrics["results"] if r["k"] == k_top}
    return register_model(
        context, "aesthetics", scorer, asset="aesthetic_model", stage=MODEL_STAGE,
        configs=[config], inputs=("rater_splits", "aesthetic_model", "personal_adapters"),
        dvc_outs=("data/aesthetics/splits", "data/aesthetics/model", "data/aesthetics/personal"),
        problems=quality_problems(metrics), data_root=data_root.layout().root,
        extra_states=states, card={
            "personal_asset": "personal_adapters", "architecture": arch,
            "training": {k: v for k, v in metrics["generic"].items() if k != "history"},
            "metrics": {
                "val_spearman": metrics["generic"]["val_spearman"],
                "baseline_ridge_head_val_spearman": metrics["generic"]["ridge_val_spearman"],
                **{f"k{k_top}_{m}_median_delta_spearman": r["median"] for m, r in top.items()},
                **{f"k{k_top}_{m}_median_delta_spearman_ci95": r.get("median_ci95")
                   for m, r in top.items()},
                f"k{k_top}_generic_test_worker_spearman": (top[method]["generic_rho"]
                                                           if method in top else None),
                "test_workers": metrics["split"]["test_workers"]},
            "backbone": {"name": arch["backbone"], "weights": "torchvision IMAGENET1K_V1",
                         "provenance": "torchvision's official ImageNet checkpoint "
                         "(torch hub cache)"},
            "users": users, "enhance": config.enhance})


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
