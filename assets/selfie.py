"""Selfie quality: labels from popularity, cached transfer values, three classifiers, a report."""


import json
import time

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from assets.metadata import counts_md, path_value, table_preview
from assets.registration import data_provenance, stage_params
from lenslab.params import param
from lenslab.seeding import derive_seed
from orchestration.kit.freshness import REPORT_FRESHNESS
from orchestration.kit.gpu import GPU_ASSET
from orchestration.kit.resources import DataRoot, TorchDevice
from orchestration.kit.stages import Stage

GROUP = "selfie"

LABELS_STAGE = Stage(__name__, outs=("selfie/labels",),
                     params=("seed", "selfie.bad_quantile", "selfie.good_quantile",
                             "selfie.split_fractions"))
FEATURES_STAGE = Stage(__name__, outs=("selfie/features",),
                       params=("selfie.backbone", "selfie.image_size", "selfie.batch_size"),
                       persist=("selfie/features",))  # the transfer-value cache
CLASSIFIER_STAGE = Stage(__name__, outs=("selfie/models",),
                         params=("seed", "selfie.backbone", "selfie.image_size",
                                 "selfie.batch_size", "selfie.head", "selfie.finetune",
                                 "selfie.scratch"))
REPORT_STAGE = Stage(__name__, outs=("reports/selfie", "registry/selfie"),
                     persist=("registry/selfie",),  # every version is kept
                     params=("seed", "selfie.bootstrap", "selfie.finetune"))

MODELS = ("head", "finetune", "scratch")


def _layout(data_root: DataRoot):
    from lenslab.selfie.labels import SelfieLayout

    return SelfieLayout(data_root.layout().root)


class SelfieLabelsConfig(dg.Config):
    bad_quantile: float = Field(default=param("selfie.bad_quantile"),
                                description="Popularity at or below this quantile: bad.")
    good_quantile: float = Field(default=param("selfie.good_quantile"),
                                 description="At or above this quantile: good; middle left out.")
    train: float = Field(default=param("selfie.split_fractions.train"))
    val: float = Field(default=param("selfie.split_fractions.val"))
    test: float = Field(default=param("selfie.split_fractions.test"))
    seed: int = Field(default=param("seed"), description="Root seed of the split.")


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
    backbone: str = Field(default=param("selfie.backbone"),
                          description="torchvision trunk: mobilenet_v2, resnet18, resnet50, "
                          "inception_v3 (weights must be in the torch cache).")
    image_size: int = Field(default=param("selfie.image_size"), description="Input side, px.")
    batch_size: int = Field(default=param("selfie.batch_size"))


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
    seed: int = Field(default=param("seed"), description="Root seed of every training run.")
    backbone: str = Field(default=param("selfie.backbone"))
    image_size: int = Field(default=param("selfie.image_size"),
                            description="Size of the cached transfer values to train on.")
    batch_size: int = Field(default=param("selfie.batch_size"))
    head_hidden: int = Field(default=param("selfie.head.hidden"))
    head_lr: float = Field(default=param("selfie.head.lr"))
    head_epochs: int = Field(default=param("selfie.head.epochs"))
    finetune_size: int = Field(default=param("selfie.finetune.image_size"))
    finetune_epochs: int = Field(default=param("selfie.finetune.epochs"))
    finetune_lr: float = Field(default=param("selfie.finetune.lr"))
    finetune_frozen_stages: int = Field(default=param("selfie.finetune.frozen_stages"),
                                        description="Leading trunk stages kept frozen.")
    scratch_size: int = Field(default=param("selfie.scratch.image_size"))
    scratch_epochs: int = Field(default=param("selfie.scratch.epochs"))
    scratch_lr: float = Field(default=param("selfie.scratch.lr"))


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
    import torch

    from lenslab.atomic import write_parquet, write_text
    from lenslab.selfie.labels import lookup, read_cache
    from models.backbones import build_trunk
    from models.checkpoints import save_state
    from models.images import load_images
    from models.selfie.classifiers import (
        FineTuned,
        SmallCNN,
        TrainSettings,
        TransferHead,
        predict_proba,
        train_classifier,
    )

    layout = _layout(data_root)
    labels = pd.read_parquet(layout.labels)
    split = {s: torch.from_numpy(np.flatnonzero(labels["split"].to_numpy() == s))
             for s in ("train", "val", "test")}
    y = torch.from_numpy(labels["label"].to_numpy().astype(np.int64, copy=True))
    features = torch.from_numpy(lookup(read_cache(layout.features), labels["sha256"],
                                       config.backbone, config.image_size))
    root = data_root.layout().root
    torch_device = device.torch_device()
    seeds = {m: derive_seed(config.seed, "selfie", "train", m) % 2**31 for m in MODELS}
    results, probs, timings = {}, {}, {}

    def fit(name, model, x, settings):
        start = time.perf_counter()
        model, result = train_classifier(
            model, (x[split["train"]], y[split["train"]]), (x[split["val"]], y[split["val"]]),
            settings, torch_device, log=lambda line: context.log.info(f"{name} {line}"))
        timings[name] = round(time.perf_counter() - start, 2)
        save_state(model, layout.models / f"{name}.pt")
        results[name] = result
        probs[name] = predict_proba(model, x, torch_device, images=settings.images)
        return model

    # (1) the seed's head on the cached transfer values
    head = fit("head", TransferHead(features.shape[1], config.head_hidden), features,
               TrainSettings(config.head_epochs, config.head_lr, config.batch_size,
                             seeds["head"]))
    # (2) fine-tuning: start from the trained head (train the head first, then the trunk)
    images = load_images([root / p for p in labels["normalised_path"]], config.finetune_size)
    trunk = build_trunk(config.backbone)
    fit("finetune", FineTuned(trunk, head, config.finetune_frozen_stages), images,
        TrainSettings(config.finetune_epochs, config.finetune_lr, config.batch_size,
                      seeds["finetune"], augment=True, images=True))
    # (3) the baseline: a small CNN from random weights
    if config.scratch_size != config.finetune_size:
        images = load_images([root / p for p in labels["normalised_path"]], config.scratch_size)
    torch.manual_seed(seeds["scratch"])  # its initial weights
    fit("scratch", SmallCNN(), images,
        TrainSettings(config.scratch_epochs, config.scratch_lr, config.batch_size,
                      seeds["scratch"], augment=True, images=True))

    scored = labels.loc[labels["split"] != "train", ["image_id", "sha256", "split", "label"]]
    for name in MODELS:
        scored[f"p_{name}"] = probs[name][scored.index]
    write_parquet(layout.predictions, scored.reset_index(drop=True))
    summary = {name: {"best_epoch": r.best_epoch, "best_val_auc": r.best_val_auc,
                      "train_seconds": timings[name], "seed": seeds[name], "history": r.history}
               for name, r in results.items()}
    write_text(layout.models / "training.json", json.dumps(summary, indent=2))
    return dg.MaterializeResult(metadata={
        **{f"{n}_best_val_auc": round(r.best_val_auc, 4) for n, r in results.items()},
        **{f"{n}_best_epoch": r.best_epoch for n, r in results.items()},
        **{f"{n}_train_seconds": t for n, t in timings.items()},
        "seeds": dg.MetadataValue.json(seeds),
        "train_images": len(split["train"]), "val_images": len(split["val"]),
        "models_dir": path_value(layout.models),
        "history": dg.MetadataValue.json({n: r.history for n, r in results.items()}),
    })


class SelfieReportConfig(dg.Config):
    seed: int = Field(default=param("seed"), description="Root seed of the bootstrap.")
    bootstrap: int = Field(default=param("selfie.bootstrap"), description="Resamples per CI.")
    backbone: str = Field(default=param("selfie.backbone"))
    image_size: int = Field(default=param("selfie.image_size"))
    finetune_size: int = Field(default=param("selfie.finetune.image_size"))
    head_hidden: int = Field(default=param("selfie.head.hidden"))
    samples: int = Field(default=4, description="Sample test selfies for saliency/activations.")


@dg.asset(
    group_name=GROUP, kinds={"python", "pytorch", "matplotlib"},
    deps=[selfie_labels, selfie_features, selfie_classifier],
    **REPORT_STAGE.asset_kwargs(),
    freshness_policy=REPORT_FRESHNESS,
    description="Test accuracy and ROC-AUC with 95% bootstrap intervals for the three "
    "classifiers, confusion matrices, PCA/t-SNE maps, saliency and activation maps, and the "
    "attributes the errors concentrate on: metrics.json, report.md, PNGs.",
    **GPU_ASSET,
)
def selfie_report(
    context: dg.AssetExecutionContext, config: SelfieReportConfig, data_root: DataRoot,
    device: TorchDevice,
) -> dg.MaterializeResult:
    from lenslab.atomic import write_text
    from lenslab.metrics import binary_metrics, paired_auc_difference
    from lenslab.selfie.figures import activation_grid, feature_maps, saliency_grid
    from lenslab.selfie.labels import errors_by_attribute, lookup, read_cache, report_markdown
    from models.backbones import build_trunk
    from models.checkpoints import load_state
    from models.images import load_images
    from models.selfie.classifiers import FineTuned, TransferHead, saliency, stage_activations

    layout = _layout(data_root)
    out = layout.report
    labels = pd.read_parquet(layout.labels)
    preds = pd.read_parquet(layout.predictions)
    training = json.loads((layout.models / "training.json").read_text())
    test = preds[preds["split"] == "test"].reset_index(drop=True)
    y = test["label"].to_numpy()
    # one row per distinct photo (labels are deduplicated by content): the photo is the unit
    kw = {"resamples": config.bootstrap, "seed": config.seed, "groups": test["sha256"].to_numpy(),
          "unit": "photo"}
    models = {}
    for name in MODELS:
        models[name] = binary_metrics(y, test[f"p_{name}"].to_numpy(), name=name, **kw)
        models[name].update(best_epoch=training[name]["best_epoch"],
                            best_val_auc=training[name]["best_val_auc"])
    vs_scratch = {n: paired_auc_difference(y, test[f"p_{n}"].to_numpy(),
                                           test["p_scratch"].to_numpy(),
                                           name=f"{n}-scratch", **kw)
                  for n in ("head", "finetune")}
    # which transfer model to dissect is chosen on validation, like everything else
    error_model = max(("head", "finetune"), key=lambda n: training[n]["best_val_auc"])
    test_rows = labels.set_index("image_id").loc[test["image_id"]].reset_index()
    correct = (test[f"p_{error_model}"].to_numpy() >= 0.5) == (y == 1)
    errors = errors_by_attribute(test_rows, correct)

    features = lookup(read_cache(layout.features), labels["sha256"], config.backbone,
                      config.image_size)
    figures = {"PCA of transfer values": out / "pca.png",
               "t-SNE of transfer values": out / "tsne.png",
               "gradient saliency": out / "saliency.png",
               "per-stage activations": out / "activations.png"}
    feature_maps(features, labels["label"].to_numpy(), config.seed,
                 figures["PCA of transfer values"], figures["t-SNE of transfer values"])
    # samples: the first good and bad test selfies, in the table's (seeded) order
    per_class = max(1, config.samples // 2)
    picks = pd.concat([test_rows[test_rows["label"] == c].head(per_class) for c in (1, 0)])
    images = load_images([data_root.layout().root / p for p in picks["normalised_path"]],
                         config.finetune_size)
    trunk = build_trunk(config.backbone, pretrained=False)
    model = load_state(FineTuned(trunk, TransferHead(trunk.dim, config.head_hidden)),
                       layout.models / "finetune.pt")
    torch_device = device.torch_device()
    p_good = preds.set_index("image_id").loc[picks["image_id"], "p_finetune"].to_numpy()
    titles = [f"{'good' if lab else 'bad'}, P(good)={p:.2f}"
              for lab, p in zip(picks["label"], p_good, strict=True)]
    saliency_grid(images.numpy(), saliency(model, images, torch_device), titles,
                  figures["gradient saliency"])
    stages = [s for s in (1, 3, 6, 10, 13, 17) if s < len(trunk.stages)]
    activation_grid(images.numpy(), stage_activations(trunk, images, stages, torch_device),
                    figures["per-stage activations"])

    n_test_good = int(y.sum())
    metrics = {
        "labels": {"bad_quantile": param("selfie.bad_quantile"),
                   "good_quantile": param("selfie.good_quantile"),
                   "test": len(y), "test_good": n_test_good},
        "models": models, "vs_scratch": vs_scratch, "error_model": error_model,
        "errors_by_attribute": errors.to_dict(orient="records"),
        "bootstrap": {"resamples": config.bootstrap,
                      "seeds": {n: derive_seed(config.seed, "bootstrap", f"{n}/roc_auc")
                                for n in MODELS}},
    }
    md = report_markdown(metrics, errors,
                         {k: v.relative_to(data_root.layout().root).as_posix()
                          for k, v in figures.items()})
    write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=float))
    write_text(out / "report.md", md)
    context.log.info(md)
    entry = _register(context, data_root, config, metrics)
    return dg.MaterializeResult(metadata={
        "registry_version": entry.version, "promoted": entry.promoted,
        **{f"{n}_test_auc": round(m["roc_auc"], 4) for n, m in models.items()},
        **{f"{n}_test_auc_ci95": dg.MetadataValue.json(list(m["roc_auc_ci95"]))
           for n, m in models.items()},
        **{f"{n}_test_accuracy": round(m["accuracy"], 4) for n, m in models.items()},
        "test_images": len(y),
        "top_error_attributes": counts_md(
            {r["attribute"]: f"{r['error_present']:.2f} vs {r['error_absent']:.2f}"
             for r in errors.head(5).to_dict(orient="records")},
            ("attribute", "error present vs absent")),
        "metrics_path": path_value(out / "metrics.json"),
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
        metadata={f"{n}_auc": m[n]["roc_auc"] for n in MODELS})


def _register(context: dg.AssetExecutionContext, data_root: DataRoot,
              config: SelfieReportConfig, metrics: dict):
    """The model chosen on validation, as a registry entry; promoted if the quality bar holds."""
    from lenslab.selfie.labels import quality_problems
    from models import registry
    from models.backbones import build_trunk
    from models.checkpoints import load_state
    from models.selfie.classifiers import FineTuned, TransferHead

    layout = _layout(data_root)
    chosen = metrics["error_model"]  # head or finetune, by validation ROC-AUC
    if chosen == "finetune":
        trunk = build_trunk(config.backbone, pretrained=False)
        model = load_state(FineTuned(trunk, TransferHead(trunk.dim, config.head_hidden)),
                           layout.models / "finetune.pt")
        frozen = param("selfie.finetune.frozen_stages")
    else:  # the head on the pretrained trunk it was trained on
        trunk = build_trunk(config.backbone, pretrained=True)
        model = FineTuned(trunk, load_state(TransferHead(trunk.dim, config.head_hidden),
                                            layout.models / "head.pt"))
        frozen = len(trunk.stages)
    problems = quality_problems(metrics)
    for problem in problems:
        context.log.warning(f"selfie model not promoted: {problem}")
    inputs = data_provenance(context, ("selfie_labels", "selfie_features", "selfie_classifier"),
                             ("data/selfie/labels", "data/selfie/features", "data/catalog"))
    m = metrics["models"][chosen]
    card = {
        "asset": "selfie_classifier", "model": chosen,
        "code_version": CLASSIFIER_STAGE.code_version(),
        "architecture": {"backbone": config.backbone, "hidden": config.head_hidden,
                         "frozen": frozen, "image_size": config.finetune_size},
        "metrics": {"test_roc_auc": m["roc_auc"], "test_roc_auc_ci95": m["roc_auc_ci95"],
                    "test_accuracy": m["accuracy"], "test_images": m["n"],
                    "baseline_scratch_test_roc_auc": metrics["models"]["scratch"]["roc_auc"],
                    "quality_problems": problems},
        "params": stage_params(CLASSIFIER_STAGE),
        "data": inputs,
        "backbone": {"name": config.backbone, "weights": "torchvision IMAGENET1K_V1",
                     "provenance": "torchvision's official ImageNet checkpoint (torch hub cache)"},
    }
    return registry.register(data_root.layout().root, "selfie", model, card=card,
                             promote=not problems)


selfie_assets = [selfie_labels, selfie_features, selfie_classifier, selfie_report]
selfie_checks = [selfie_splits_have_both_classes, selfie_transfer_beats_scratch]
