"""Landmark pose similarity: poses, skeleton masks, pairs, siamese models, a report."""


import json
import time

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.metadata import path_value, table_preview
from assets.registration import data_provenance, stage_params
from lenslab.params import param
from lenslab.seeding import derive_seed
from orchestration.kit.freshness import REPORT_FRESHNESS
from orchestration.kit.gpu import GPU_ASSET
from orchestration.kit.resources import DataRoot, TorchDevice
from orchestration.kit.stages import Stage

GROUP = "pose"

KEYPOINTS_STAGE = Stage(__name__, outs=("pose/keypoints",),
                        extra_code=("scripts/mediapipe_worker.py",),
                        params=("pose.backend", "pose.checkpoint", "pose.max_persons",
                                "pose.batch_size"))
MASKS_STAGE = Stage(__name__, outs=("pose/masks",),
                    params=("pose.mask_size", "pose.mask_line_width"))
PAIRS_STAGE = Stage(__name__, outs=("pose/pairs",),
                    params=("seed", "pose.split_fractions", "pose.negative_mix"))
SIMILARITY_STAGE = Stage(__name__, outs=("pose/models",),
                         params=("seed", "pose.backbone", "pose.frozen", "pose.finetune"))
REPORT_STAGE = Stage(__name__, outs=("reports/pose", "registry/pose"),
                     persist=("registry/pose",),  # every version is kept
                     params=("seed", "pose.bootstrap"))

# (name, fine-tuned trunk, pose branch), in the seed's table order
VARIANTS = (("frozen", False, False), ("frozen_pose", False, True),
            ("finetuned", True, False), ("finetuned_pose", True, True))


def _layout(data_root: DataRoot):
    from lenslab.pose.pairs import PoseLayout

    return PoseLayout(data_root.layout().root)


class PoseKeypointsConfig(dg.Config):
    backend: str = Field(default=param("pose.backend"),
                         description="annotations (the dataset's keypoints), openpifpaf or "
                         "mediapipe (BlazePose, real weights offline).")
    checkpoint: str = Field(default=param("pose.checkpoint"),
                            description="openpifpaf: a checkpoint name (torch hub cache, "
                            "downloaded where there is internet) or a local file.")
    max_persons: int = Field(default=param("pose.max_persons"),
                             description="Persons kept per image, best score first.")
    batch_size: int = Field(default=param("pose.batch_size"))


@dg.asset(
    group_name=GROUP, kinds={"python", "pytorch", "parquet"},
    deps=["image_catalog", dg.AssetKey("landmark_photos")],
    **KEYPOINTS_STAGE.asset_kwargs(),
    description="COCO-17 keypoints (x, y, confidence) and a box for the top persons of every "
    "landmark photo, from the configured backend (recorded per row); a photo without a person "
    "keeps one empty row (person = -1).",
    **GPU_ASSET,
)
def pose_keypoints(context: dg.AssetExecutionContext, config: PoseKeypointsConfig,
                   data_root: DataRoot, device: TorchDevice) -> dg.MaterializeResult:
    from lenslab.atomic import write_parquet
    from lenslab.pose.backends import make_backend
    from lenslab.pose.pairs import landmark_images, pose_frame, pose_rows
    from models.device import describe

    layout = data_root.layout()
    images = landmark_images(pd.read_parquet(layout.catalog))
    annotations = None
    if config.backend == "annotations":
        annotations = pd.read_parquet(layout.raw("landmark_photos") / "keypoints.parquet")
    torch_device = device.torch_device()
    # annotations are in the original's pixels; detectors see the normalised copy
    sizes = {r.image_id: (r.width, r.height) for r in images.itertuples()}
    paths = [layout.root / p for p in images["normalised_path"]]
    if config.backend != "annotations":
        from PIL import Image

        for image_id, path in zip(images["image_id"], paths, strict=True):
            with Image.open(path) as im:
                sizes[image_id] = im.size
    backend = make_backend(config.backend, annotations=annotations, sizes=sizes,
                           checkpoint=config.checkpoint, device=torch_device,
                           batch_size=config.batch_size)
    start = time.perf_counter()
    found = backend.estimate(list(images["image_id"]), paths)
    seconds = time.perf_counter() - start
    rows = []
    for image_id, sha, persons in zip(images["image_id"], images["sha256"], found, strict=True):
        rows += pose_rows(image_id, sha, *sizes[image_id], persons, backend.name,
                          config.max_persons)
    poses = pose_frame(rows)
    path = _layout(data_root).keypoints
    write_parquet(path, poses)
    with_person = poses.loc[poses["person"] >= 0, "image_id"].nunique()
    context.log.info(f"{config.backend}: {with_person} of {len(images)} images with a person")
    return dg.MaterializeResult(metadata={
        "backend": config.backend,
        "images": len(images),
        "images_with_person": with_person,
        "persons": int((poses["person"] >= 0).sum()),
        "seconds": round(seconds, 3),
        "images_per_second": round(len(images) / seconds, 1) if seconds else 0.0,
        "device": describe(torch_device),
        "path": path_value(path),
        "preview": table_preview(poses[["image_id", "backend", "person", "score", "nose_x",
                                        "nose_y", "nose_c"]]),
    })


class PoseMasksConfig(dg.Config):
    size: int = Field(default=param("pose.mask_size"), description="Mask side, px.")
    line_width: int = Field(default=param("pose.mask_line_width"), description="Limb width, px.")


@dg.asset(
    group_name=GROUP, kinds={"python", "pillow"}, deps=[pose_keypoints],
    **MASKS_STAGE.asset_kwargs(),
    description="The seed's skeleton masks (limbs of the kept persons, white on black), drawn "
    "at their final size, one PNG per image content under pose/masks/, beside (not inside) the "
    "raw data, with an index.",
)
def pose_masks(config: PoseMasksConfig, data_root: DataRoot) -> dg.MaterializeResult:
    from lenslab.atomic import atomic_path, write_parquet
    from lenslab.pose.pairs import draw_mask, keypoints_of

    layout = _layout(data_root)
    poses = pd.read_parquet(layout.keypoints)
    index = []
    for (image_id, sha), rows in poses.groupby(["image_id", "sha256"], sort=True):
        people = rows[rows["person"] >= 0]
        mask = draw_mask(keypoints_of(people), int(rows["width"].iloc[0]),
                         int(rows["height"].iloc[0]), config.size, config.line_width)
        path = layout.mask(sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            mask.save(tmp, format="PNG")
        index.append({"image_id": image_id, "sha256": sha, "persons": len(people),
                      "mask_path": path.relative_to(data_root.layout().root).as_posix()})
    index = pd.DataFrame(index)
    write_parquet(layout.masks / "index.parquet", index)
    return dg.MaterializeResult(metadata={
        "masks": len(index), "empty_masks": int((index["persons"] == 0).sum()),
        "size": config.size, "path": path_value(layout.masks),
        "preview": table_preview(index),
    })


class LandmarkPairsConfig(dg.Config):
    seed: int = Field(default=param("seed"), description="Root seed of the site split and draws.")
    train: float = Field(default=param("pose.split_fractions.train"))
    val: float = Field(default=param("pose.split_fractions.val"))
    test: float = Field(default=param("pose.split_fractions.test"))
    other_pose: float = Field(default=param("pose.negative_mix.other_pose"),
                              description="Share of negatives: same site, another pose.")
    no_person: float = Field(default=param("pose.negative_mix.no_person"),
                             description="Share of negatives: same site, _zz (no person).")
    other_site: float = Field(default=param("pose.negative_mix.other_site"),
                              description="Share of negatives: another site.")


@dg.asset(
    group_name=GROUP, kinds={"python", "parquet"}, deps=["image_catalog"],
    **PAIRS_STAGE.asset_kwargs(),
    description="Balanced positive/negative photo pairs (positives: same site and pose; "
    "negatives: same site with another pose or _zz, or another site), split train/val/test by "
    "site (by Site::Pose folder below 3 sites) so that no image is in two splits; seeded; "
    "counts per split and type.",
)
def landmark_pairs(config: LandmarkPairsConfig, data_root: DataRoot) -> dg.MaterializeResult:
    from lenslab.atomic import write_parquet
    from lenslab.pose.pairs import assign_splits, landmark_images, make_pairs, pair_counts

    layout = _layout(data_root)
    images = landmark_images(pd.read_parquet(data_root.layout().catalog))
    images["group"], images["split"] = assign_splits(
        images, {"train": config.train, "val": config.val, "test": config.test}, config.seed)
    pairs = make_pairs(images, {"other_pose": config.other_pose, "no_person": config.no_person,
                                "other_site": config.other_site}, config.seed)
    write_parquet(layout.images, images)
    write_parquet(layout.pairs, pairs)
    counts = pair_counts(pairs)
    return dg.MaterializeResult(metadata={
        "pairs": len(pairs), "positives": int(pairs["label"].sum()),
        "groups_per_split": dg.MetadataValue.json(
            {s: sorted(images.loc[images["split"] == s, "group"].unique()) for s in
             ("train", "val", "test")}),
        "split_seed": derive_seed(config.seed, "pose", "group_split"),
        "counts": dg.MetadataValue.md(counts.to_markdown()),
        "path": path_value(layout.pairs),
        "preview": table_preview(pairs),
    })


@dg.asset_check(asset=landmark_pairs, blocking=True,
                description="Read back from the written pairs and image files: no image file "
                "used in two splits' pairs has the same bytes as, or near-identical pixels to "
                "(difference hash), one used in another split.")
def landmark_pairs_share_no_image(data_root: DataRoot) -> dg.AssetCheckResult:
    from lenslab.pose.pairs import split_files
    from lenslab.split_audit import cross_split_leaks, summary

    layout = _layout(data_root)
    files = split_files(pd.read_parquet(layout.pairs), pd.read_parquet(layout.images))
    leaks = cross_split_leaks(files, data_root.layout().root)
    problems = summary(leaks)
    return dg.AssetCheckResult(passed=not problems, description="; ".join(problems) or None,
                               metadata={"same_content_pairs": len(leaks["same_content"]),
                                         "near_duplicate_pairs": len(leaks["near_duplicates"]),
                                         "closest_cross_split_bits":
                                             leaks["closest_cross_split_bits"],
                                         "files_read": leaks["files"]})


class LandmarkSimilarityConfig(dg.Config):
    seed: int = Field(default=param("seed"), description="Root seed of every training run.")
    backbone: str = Field(default=param("pose.backbone"),
                          description="torchvision trunk: mobilenet_v2 (offline), resnet50 as "
                          "the seed (weights must be in the torch cache).")
    image_size: int = Field(default=param("pose.frozen.image_size"),
                            description="Frozen variant: input side, px.")
    batch_size: int = Field(default=param("pose.frozen.batch_size"))
    epochs: int = Field(default=param("pose.frozen.epochs"))
    lr: float = Field(default=param("pose.frozen.lr"))
    patience: int = Field(default=param("pose.frozen.patience"),
                          description="Epochs without a better validation loss before stopping.")
    finetune_size: int = Field(default=param("pose.finetune.image_size"))
    finetune_epochs: int = Field(default=param("pose.finetune.epochs"))
    finetune_lr: float = Field(default=param("pose.finetune.lr"))
    finetune_frozen_stages: int = Field(default=param("pose.finetune.frozen_stages"),
                                        description="Leading trunk stages kept frozen (their "
                                        "output is computed once and cached).")
    resume: bool = Field(default=True, description="Resume from per-epoch checkpoints of the "
                         "same settings; False starts afresh.")


@dg.asset(
    group_name=GROUP, kinds={"python", "pytorch"}, deps=[landmark_pairs, pose_keypoints],
    **SIMILARITY_STAGE.asset_kwargs(),
    description="Four siamese networks (trunk frozen or fine-tuned, with or without the pose "
    "branch), BCE, early stopping on validation, best checkpoint kept, resumable; test pair "
    "predictions and scores of every test image pair under pose/models/.",
    **GPU_ASSET,
)
def landmark_similarity(context: dg.AssetExecutionContext, config: LandmarkSimilarityConfig,
                        data_root: DataRoot, device: TorchDevice) -> dg.MaterializeResult:
    from models.pose.siamese import SimilaritySettings, train_variants

    layout = _layout(data_root)
    images = pd.read_parquet(layout.images)
    pairs = pd.read_parquet(layout.pairs)
    poses = pd.read_parquet(layout.keypoints)
    settings = SimilaritySettings(
        backbone=config.backbone, image_size=config.image_size, batch_size=config.batch_size,
        epochs=config.epochs, lr=config.lr, patience=config.patience,
        finetune_size=config.finetune_size, finetune_epochs=config.finetune_epochs,
        finetune_lr=config.finetune_lr, finetune_frozen_stages=config.finetune_frozen_stages,
        seeds={name: derive_seed(config.seed, "pose", "train", name) % 2**31
               for name, _, _ in VARIANTS})
    out = train_variants(images, pairs, poses, data_root.layout().root, settings,
                         device.torch_device(), layout.models, VARIANTS, resume=config.resume,
                         log=context.log.info)
    summary = json.loads((layout.models / "training.json").read_text())
    return dg.MaterializeResult(metadata={
        **{f"{n}_best_val_loss": round(s["best_val_loss"], 4) for n, s in summary.items()},
        **{f"{n}_best_epoch": s["best_epoch"] for n, s in summary.items()},
        **{f"{n}_train_seconds": s["train_seconds"] for n, s in summary.items()},
        "seeds": dg.MetadataValue.json(settings.seeds),
        "pose_backend": ", ".join(sorted(poses["backend"].unique())),
        "models_dir": path_value(layout.models),
        "test_pairs": out["test_pairs"],
    })


class SimilarityReportConfig(dg.Config):
    seed: int = Field(default=param("seed"), description="Root seed of the bootstrap.")
    bootstrap: int = Field(default=param("pose.bootstrap"), description="Resamples per CI.")


@dg.asset(
    group_name=GROUP, kinds={"python", "matplotlib"}, deps=[landmark_pairs, landmark_similarity],
    **REPORT_STAGE.asset_kwargs(),
    freshness_policy=REPORT_FRESHNESS,
    description="The seed's table (trunk frozen vs fine-tuned, with and without poses) with "
    "test accuracy and ROC-AUC and 95% bootstrap intervals, accuracy per negative kind, "
    "nearest-neighbour examples and role models (earliest earlier photo of the same site and "
    "pose): metrics.json, report.md, neighbours.png.",
)
def similarity_report(context: dg.AssetExecutionContext, config: SimilarityReportConfig,
                      data_root: DataRoot) -> dg.MaterializeResult:
    from lenslab.atomic import write_text
    from lenslab.pose.figures import build_report

    layout = _layout(data_root)
    metrics, md = build_report(layout, data_root.layout().root, [v[0] for v in VARIANTS],
                               resamples=config.bootstrap, seed=config.seed)
    write_text(layout.report / "metrics.json", json.dumps(metrics, indent=2, default=float))
    write_text(layout.report / "report.md", md)
    entry = _register(context, data_root, metrics)
    m = metrics["models"]
    return dg.MaterializeResult(metadata={
        "registry_version": entry.version, "promoted": entry.promoted,
        "registered_variant": json.loads((entry.path / "card.json").read_text())["model"],
        **{f"{n}_test_accuracy": round(v["accuracy"], 4) for n, v in m.items()},
        **{f"{n}_test_auc": round(v["roc_auc"], 4) for n, v in m.items()},
        "pose_gain_points": round(100 * (m["frozen_pose"]["accuracy"]
                                         - m["frozen"]["accuracy"]), 1),
        "role_model_accuracy": round(metrics["role_models"]["accuracy"], 3),
        "metrics_path": path_value(layout.report / "metrics.json"),
        "report": dg.MetadataValue.md(md),
    })


def _registered_choice(data_root: DataRoot) -> tuple[str, dict, list[str]]:
    """(variant chosen on validation, report metrics, why it must not be promoted)."""
    from lenslab.pose.pairs import chosen_variant, quality_problems

    layout = _layout(data_root)
    chosen = chosen_variant(pd.read_parquet(layout.models / "predictions.parquet"),
                            [v[0] for v in VARIANTS])
    metrics = json.loads((layout.report / "metrics.json").read_text())
    return chosen, metrics, quality_problems(metrics, chosen)


@dg.asset_check(asset=similarity_report,
                description="The variant chosen on validation (the one `lenslab similar` "
                "serves) has a test ROC-AUC interval above chance (0.5) and is not below the "
                "image-only frozen baseline; the registry promotes it only then.")
def similarity_model_beats_chance(data_root: DataRoot) -> dg.AssetCheckResult:
    chosen, metrics, problems = _registered_choice(data_root)
    return dg.AssetCheckResult(
        passed=not problems, description="; ".join(problems) or None,
        metadata={"variant": chosen, "test_roc_auc": metrics["models"][chosen]["roc_auc"],
                  "frozen_test_roc_auc": metrics["models"]["frozen"]["roc_auc"]})


def _register(context: dg.AssetExecutionContext, data_root: DataRoot, metrics: dict):
    """The variant chosen on validation as a registry entry; promoted if the quality bar holds."""
    from models import registry
    from models.backbones import BACKBONES
    from models.pose.siamese import load_variant

    layout = _layout(data_root)
    chosen, _, problems = _registered_choice(data_root)
    for problem in problems:
        context.log.warning(f"pose similarity model not promoted: {problem}")
    summary = json.loads((layout.models / "training.json").read_text())[chosen]
    model = load_variant(layout.models / f"{chosen}.pt", summary)
    poses = pd.read_parquet(layout.keypoints, columns=["backend"])
    m, base = metrics["models"][chosen], metrics["models"]["frozen"]
    siamese = model.siamese
    card = {
        "asset": "landmark_similarity", "model": chosen,
        "code_version": SIMILARITY_STAGE.code_version(),
        "architecture": {"backbone": summary["backbone"], "pose": summary["pose"],
                         "hidden": siamese.project[1].out_features,
                         "pose_dim": siamese.pose.net[-1].out_features if siamese.pose else 0,
                         "image_size": summary["image_size"],
                         "finetuned": summary["finetuned"],
                         "frozen_stages": summary["frozen_stages"]},
        "pose_backend": ", ".join(sorted(poses["backend"].unique())),
        "metrics": {"test_roc_auc": m["roc_auc"], "test_roc_auc_ci95": m["roc_auc_ci95"],
                    "test_accuracy": m["accuracy"], "test_pairs": m["n"],
                    "baseline_frozen_test_roc_auc": base["roc_auc"],
                    "baseline_frozen_test_accuracy": base["accuracy"],
                    "quality_problems": problems},
        "params": stage_params(SIMILARITY_STAGE),
        "data": data_provenance(context, ("landmark_pairs", "pose_keypoints",
                                          "landmark_similarity"),
                                ("data/pose/pairs", "data/pose/keypoints", "data/pose/models")),
        "backbone": {"name": summary["backbone"],
                     "weights": f"torchvision {BACKBONES[summary['backbone']][1]}",
                     "provenance": "torchvision's official ImageNet checkpoint (torch hub cache)"},
    }
    return registry.register(data_root.layout().root, "pose", model, card=card,
                             promote=not problems)


pose_assets = [pose_keypoints, pose_masks, landmark_pairs, landmark_similarity,
               similarity_report]
pose_checks = [landmark_pairs_share_no_image, similarity_model_beats_chance]
