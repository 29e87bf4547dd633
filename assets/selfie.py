"""Selfie quality: labels from popularity, cached transfer values, three classifiers, a report."""


import json
import time

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.metadata import counts_md, path_value, table_preview
from assets.registration import register_model
from lenslab.seeding import derive_seed
from lenslab.selfie.labels import SelfieLayout
from models.registry import registry_folder
from orchestration.kit.config import config_params, param_field, settings_from
from orchestration.kit.freshness import REPORT_FRESHNESS
from orchestration.kit.gpu import GPU_ASSET
from orchestration.kit.resources import DataRoot, TorchDevice
from orchestration.kit.stages import Stage

GROUP = "selfie"


def _layout(data_root: DataRoot):
    return SelfieLayout(data_root.layout().root)


class SelfieLabelsConfig(dg.Config):
    bad_quantile: float = param_field("selfie.bad_quantile",
                                      "Popularity at or below this quantile: bad.")
    good_quantile: float = param_field("selfie.good_quantile",
                                       "At or above this quantile: good; middle left out.")
    train: float = param_field("selfie.split_fractions.train")
    val: float = param_field("selfie.split_fractions.val")
    test: float = param_field("selfie.split_fractions.test")
    seed: int = param_field("seed", "Root seed of the split.")


LABELS_STAGE = Stage(__name__, outs=(SelfieLayout.LABELS,),
                     params=config_params(SelfieLabelsConfig))


@dg.asset(
    group_name=GROUP, kinds={"python", "parquet"}, deps=["image_catalog"],
    **LABELS_STAGE.asset_kwargs(),
    description="Good/bad selfies from the popularity quantiles of the training rows (middle "
    "left out), the 36 attributes kept, and a seeded train/val/test split drawn first.",
)
def selfie_labels(config: SelfieLabelsConfig, data_root: DataRoot) -> dg.MaterializeResult:
    from lenslab.atomic import write_parquet
    from lenslab.selfie.labels import build_labels

    catalog = pd.read_parquet(data_root.layout().catalog)
    labels, thresholds = build_labels(
        catalog, bad_quantile=config.bad_quantile, good_quantile=config.good_quantile,
        fractions={"train": config.train, "val": config.val, "test": config.test},
        seed=config.seed)
    path = _layout(data_root).labels
    write_parquet(path, labels)
    counts = labels.groupby(["split", "label"]).size().unstack(fill_value=0)
    return dg.MaterializeResult(metadata={
        "labelled": len(labels),
        "good": int(labels["label"].sum()),
        "bad": int((labels["label"] == 0).sum()),
        "threshold_bad": thresholds.bad,
        "threshold_good": thresholds.good,
        "thresholds_from": "train rows only",
        "split_seed": derive_seed(config.seed, "selfie", "split"),
        "per_split": dg.MetadataValue.md(counts.rename(columns={0: "bad", 1: "good"})
                                         .to_markdown()),
        "path": path_value(path),
        "preview": table_preview(labels[["image_id", "popularity", "label", "split",
                                         "smiling", "dim_lighting"]]),
    })


class SelfieFeaturesConfig(dg.Config):
    backbone: str = param_field("selfie.backbone",
                                "torchvision trunk: mobilenet_v2, resnet18, resnet50, "
                                "inception_v3 (weights must be in the torch cache).")
    image_size: int = param_field("selfie.image_size", "Input side, px.")
    batch_size: int = param_field("selfie.batch_size")


FEATURES_STAGE = Stage(__name__, outs=(SelfieLayout.FEATURES,),
                       params=config_params(SelfieFeaturesConfig),
                       persist=(SelfieLayout.FEATURES,))  # the transfer-value cache


@dg.asset(
    group_name=GROUP, kinds={"python", "pytorch", "parquet"}, deps=[selfie_labels],
    **FEATURES_STAGE.asset_kwargs(),
    description="Transfer values (pooled features of a pretrained trunk) per image, cached by "
    "(sha256, backbone, size): a rerun computes only images it has not seen.",
    **GPU_ASSET,
)
def selfie_features(
    context: dg.AssetExecutionContext, config: SelfieFeaturesConfig, data_root: DataRoot,
    device: TorchDevice,
) -> dg.MaterializeResult:
    from lenslab.atomic import write_parquet
    from lenslab.selfie.labels import add_to_cache, missing_from_cache, read_cache
    from models.backbones import build_trunk, extract_features
    from models.device import describe
    from models.images import load_images

    layout = _layout(data_root)
    labels = pd.read_parquet(layout.labels)
    cache = read_cache(layout.features)
    todo = missing_from_cache(cache, labels["sha256"], config.backbone, config.image_size)
    torch_device = device.torch_device()
    seconds = 0.0
    if todo:
        paths = labels.drop_duplicates("sha256").set_index("sha256").loc[todo, "normalised_path"]
        images = load_images([data_root.layout().root / p for p in paths], config.image_size)
        start = time.perf_counter()
        values = extract_features(build_trunk(config.backbone), images, torch_device,
                                  config.batch_size)
        seconds = time.perf_counter() - start
        cache = add_to_cache(cache, todo, values, config.backbone, config.image_size)
        write_parquet(layout.features, cache)
    reused = labels["sha256"].nunique() - len(todo)
    context.log.info(f"transfer values: {len(todo)} computed, {reused} reused")
    return dg.MaterializeResult(metadata={
        "computed": len(todo),
        "reused": reused,
        "backbone": config.backbone,
        "image_size": config.image_size,
        "dim": len(cache["features"].iloc[0]) if len(cache) else 0,
        "cached_rows": len(cache),
        "extract_seconds": round(seconds, 3),
        "images_per_second": round(len(todo) / seconds, 1) if seconds else 0.0,
        "device": describe(torch_device),
        "path": path_value(layout.features),
    })


class SelfieClassifierConfig(dg.Config):
    seed: int = param_field("seed", "Root seed of every training run.")
    backbone: str = param_field("selfie.backbone")
    image_size: int = param_field("selfie.image_size",
                                  "Size of the cached transfer values to train on.")
    batch_size: int = param_field("selfie.batch_size")
    head_hidden: int = param_field("selfie.head.hidden")
    head_lr: float = param_field("selfie.head.lr")
    head_epochs: int = param_field("selfie.head.epochs")
    finetune_size: int = param_field("selfie.finetune.image_size")
    finetune_epochs: int = param_field("selfie.finetune.epochs")
    finetune_lr: float = param_field("selfie.finetune.lr")
    finetune_frozen_stages: int = param_field("selfie.finetune.frozen_stages",
                                              "Leading trunk stages kept frozen.")
    scratch_size: int = param_field("selfie.scratch.image_size")
    scratch_epochs: int = param_field("selfie.scratch.epochs")
    scratch_lr: float = param_field("selfie.scratch.lr")


CLASSIFIER_STAGE = Stage(__name__, outs=(SelfieLayout.MODELS,),
                         params=config_params(SelfieClassifierConfig))


@dg.asset(
    group_name=GROUP, kinds={"python", "pytorch"}, deps=[selfie_labels, selfie_features],
    **CLASSIFIER_STAGE.asset_kwargs(),
    description="Three good/bad classifiers, best epoch by validation ROC-AUC: the seed's head "
    "(FC 1024 + softmax) on cached transfer values, the fine-tuned trunk, and a 3-conv CNN "
    "from scratch (baseline). state_dicts and val/test predictions under selfie/models/.",
    **GPU_ASSET,
)
def selfie_classifier(
    context: dg.AssetExecutionContext, config: SelfieClassifierConfig, data_root: DataRoot,
    device: TorchDevice,
) -> dg.MaterializeResult:
    from models.selfie.fit import MODELS, SelfieSettings, fit_selfie

    layout = _layout(data_root)
    seeds = {m: derive_seed(config.seed, "selfie", "train", m) % 2**31 for m in MODELS}
    fit = fit_selfie(layout, settings_from(config, SelfieSettings), seeds,
                     device.torch_device(), log=context.log.info)
    return dg.MaterializeResult(metadata={
        **{f"{n}_best_val_auc": round(r.best_val_auc, 4) for n, r in fit.results.items()},
        **{f"{n}_best_epoch": r.best_epoch for n, r in fit.results.items()},
        **{f"{n}_train_seconds": t for n, t in fit.timings.items()},
        "seeds": dg.MetadataValue.json(seeds),
        "train_images": fit.splits["train"], "val_images": fit.splits["val"],
        "models_dir": path_value(layout.models),
        "history": dg.MetadataValue.json({n: r.history for n, r in fit.results.items()}),
    })


class SelfieReportConfig(dg.Config):
    seed: int = param_field("seed", "Root seed of the bootstrap.")
    bootstrap: int = param_field("selfie.bootstrap", "Resamples per CI.")
    backbone: str = param_field("selfie.backbone")
    image_size: int = param_field("selfie.image_size")
    finetune_size: int = param_field("selfie.finetune.image_size")
    finetune_frozen_stages: int = param_field("selfie.finetune.frozen_stages")
    head_hidden: int = param_field("selfie.head.hidden")
    bad_quantile: float = param_field("selfie.bad_quantile")
    good_quantile: float = param_field("selfie.good_quantile")
    samples: int = Field(default=4, description="Sample test selfies for saliency/activations.")


REPORT_STAGE = Stage(__name__, outs=(SelfieLayout.REPORT, registry_folder("selfie")),
                     persist=(registry_folder("selfie"),),  # every version is kept
                     params=config_params(SelfieReportConfig))


@dg.asset(
    group_name=GROUP, kinds={"python", "pytorch", "matplotlib"},
    deps=[selfie_labels, selfie_features, selfie_classifier],
    **REPORT_STAGE.asset_kwargs(),
    freshness_policy=REPORT_FRESHNESS,
    description="Test accuracy and ROC-AUC with 95% bootstrap intervals for the three "
    "classifiers, confusion matrices, PCA/t-SNE maps, saliency and activation maps, and the "
    "attributes the errors concentrate on: metrics.json, report.md, PNGs; registers the "
    "transfer model chosen on validation.",
    **GPU_ASSET,
)
def selfie_report(
    context: dg.AssetExecutionContext, config: SelfieReportConfig, data_root: DataRoot,
    device: TorchDevice,
) -> dg.MaterializeResult:
    from lenslab.selfie.labels import quality_problems
    from models.selfie.evaluation import evaluate_selfie
    from models.selfie.fit import served_model

    layout = _layout(data_root)
    metrics, errors, md = evaluate_selfie(
        layout, backbone=config.backbone, image_size=config.image_size,
        finetune_size=config.finetune_size, head_hidden=config.head_hidden,
        samples=config.samples, seed=config.seed, resamples=config.bootstrap,
        thresholds={"bad_quantile": config.bad_quantile, "good_quantile": config.good_quantile},
        device=device.torch_device())
    context.log.info(md)
    chosen = metrics["error_model"]  # head or finetune, by validation ROC-AUC
    model, frozen = served_model(layout, chosen, config.backbone, config.head_hidden,
                                 config.finetune_frozen_stages)
    m, models = metrics["models"][chosen], metrics["models"]
    entry = register_model(
        context, "selfie", model, asset="selfie_classifier", stage=CLASSIFIER_STAGE,
        configs=[config],
        inputs=("selfie_labels", "selfie_features", "selfie_classifier"),
        dvc_outs=("data/selfie/labels", "data/selfie/features", "data/catalog"),
        problems=quality_problems(metrics), data_root=layout.root, card={
            "model": chosen,
            "architecture": {"backbone": config.backbone, "hidden": config.head_hidden,
                             "frozen": frozen, "image_size": config.finetune_size},
            "metrics": {"test_roc_auc": m["roc_auc"], "test_roc_auc_ci95": m["roc_auc_ci95"],
                        "test_accuracy": m["accuracy"], "test_images": m["n"],
                        "baseline_scratch_test_roc_auc": models["scratch"]["roc_auc"]},
            "backbone": {"name": config.backbone, "weights": "torchvision IMAGENET1K_V1",
                         "provenance": "torchvision's official ImageNet checkpoint "
                         "(torch hub cache)"}})
    return dg.MaterializeResult(metadata={
        "registry_version": entry.version, "promoted": entry.promoted,
        **{f"{n}_test_auc": round(m["roc_auc"], 4) for n, m in models.items()},
        **{f"{n}_test_auc_ci95": dg.MetadataValue.json(list(m["roc_auc_ci95"]))
           for n, m in models.items()},
        **{f"{n}_test_accuracy": round(m["accuracy"], 4) for n, m in models.items()},
        "test_images": metrics["labels"]["test"],
        "top_error_attributes": counts_md(
            {r["attribute"]: f"{r['error_present']:.2f} vs {r['error_absent']:.2f}"
             for r in errors.head(5).to_dict(orient="records")},
            ("attribute", "error present vs absent")),
        "metrics_path": path_value(layout.report / "metrics.json"),
        "report": dg.MetadataValue.md(md),
    })


@dg.asset_check(asset=selfie_labels, blocking=True,
                description="Every split holds both good and bad selfies.")
def selfie_splits_have_both_classes(data_root: DataRoot) -> dg.AssetCheckResult:
    labels = pd.read_parquet(_layout(data_root).labels)
    counts = labels.groupby(["split", "label"]).size().unstack(fill_value=0)
    empty = [f"{s}/{'good' if c else 'bad'}" for s in ("train", "val", "test") for c in (0, 1)
             if s not in counts.index or counts.get(c, pd.Series()).get(s, 0) == 0]
    return dg.AssetCheckResult(passed=not empty, metadata={"empty": ", ".join(empty)})


@dg.asset_check(asset=selfie_report,
                description="Both transfer models beat the from-scratch CNN on test ROC-AUC, and "
                "every model's 95% interval lies above chance (0.5).")
def selfie_transfer_beats_scratch(data_root: DataRoot) -> dg.AssetCheckResult:
    from lenslab.selfie.labels import quality_problems

    metrics = json.loads((_layout(data_root).report / "metrics.json").read_text())
    m = metrics["models"]
    problems = quality_problems(metrics)
    return dg.AssetCheckResult(
        passed=not problems, description="; ".join(problems) or None,
        metadata={f"{n}_auc": m[n]["roc_auc"] for n in m})


selfie_assets = [selfie_labels, selfie_features, selfie_classifier, selfie_report]
selfie_checks = [selfie_splits_have_both_classes, selfie_transfer_beats_scratch]
