"""Landmark pose similarity: poses, skeleton masks, pairs, siamese models, a report."""


import json

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.metadata import path_value, table_preview
from assets.registration import register_model
from lenslab.pose.pairs import PoseLayout
from lenslab.seeding import derive_seed
from models.registry import registry_folder
from orchestration.kit.config import config_params, param_field, settings_from
from orchestration.kit.freshness import REPORT_FRESHNESS
from orchestration.kit.gpu import GPU_ASSET
from orchestration.kit.resources import DataRoot, TorchDevice
from orchestration.kit.stages import Stage

GROUP = "pose"


# (name, fine-tuned trunk, pose branch), in the seed's table order
VARIANTS = (("frozen", False, False), ("frozen_pose", False, True),
            ("finetuned", True, False), ("finetuned_pose", True, True))


def _layout(data_root: DataRoot):
    return PoseLayout(data_root.layout().root)


class PoseKeypointsConfig(dg.Config):
    backend: str = param_field("pose.backend",
                               "annotations (the dataset's keypoints), openpifpaf or "
                               "mediapipe (BlazePose, real weights offline).")
    checkpoint: str = param_field("pose.checkpoint",
                                  "openpifpaf: a checkpoint name (torch hub cache, "
                                  "downloaded where there is internet) or a local file.")
    max_persons: int = param_field("pose.max_persons",
                                   "Persons kept per image, best score first.")
    batch_size: int = param_field("pose.batch_size")


KEYPOINTS_STAGE = Stage(__name__, outs=(PoseLayout.KEYPOINTS,),
                        extra_code=("scripts/mediapipe_worker.py",),
                        params=config_params(PoseKeypointsConfig))


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
    from lenslab.pose.extraction import extract_poses
    from models.device import describe

    torch_device = device.torch_device()
    found = extract_poses(data_root.layout(), config.backend, checkpoint=config.checkpoint,
                          max_persons=config.max_persons, batch_size=config.batch_size,
                          device=torch_device)
    poses, path = found.poses, _layout(data_root).keypoints
    write_parquet(path, poses)
    with_person = poses.loc[poses["person"] >= 0, "image_id"].nunique()
    context.log.info(f"{config.backend}: {with_person} of {found.images} images with a person")
    return dg.MaterializeResult(metadata={
        "backend": config.backend,
        "images": found.images,
        "images_with_person": with_person,
        "persons": int((poses["person"] >= 0).sum()),
        "seconds": round(found.seconds, 3),
        "images_per_second": round(found.images / found.seconds, 1) if found.seconds else 0.0,
        "device": describe(torch_device),
        "path": path_value(path),
        "preview": table_preview(poses[["image_id", "backend", "person", "score", "nose_x",
                                        "nose_y", "nose_c"]]),
    })


class PoseMasksConfig(dg.Config):
    size: int = param_field("pose.mask_size", "Mask side, px.")
    line_width: int = param_field("pose.mask_line_width", "Limb width, px.")


MASKS_STAGE = Stage(__name__, outs=(PoseLayout.MASKS,),
                    params=config_params(PoseMasksConfig))


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
    seed: int = param_field("seed", "Root seed of the site split and draws.")
    train: float = param_field("pose.split_fractions.train")
    val: float = param_field("pose.split_fractions.val")
    test: float = param_field("pose.split_fractions.test")
    other_pose: float = param_field("pose.negative_mix.other_pose",
                                    "Share of negatives: same site, another pose.")
    no_person: float = param_field("pose.negative_mix.no_person",
                                   "Share of negatives: same site, _zz (no person).")
    other_site: float = param_field("pose.negative_mix.other_site",
                                    "Share of negatives: another site.")


PAIRS_STAGE = Stage(__name__, outs=(PoseLayout.PAIRS,),
                    params=config_params(LandmarkPairsConfig))


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
    seed: int = param_field("seed", "Root seed of every training run.")
    backbone: str = param_field("pose.backbone",
                                "torchvision trunk: mobilenet_v2 (offline), resnet50 as "
                                "the seed (weights must be in the torch cache).")
    image_size: int = param_field("pose.frozen.image_size",
                                  "Frozen variant: input side, px.")
    batch_size: int = param_field("pose.frozen.batch_size")
    epochs: int = param_field("pose.frozen.epochs")
    lr: float = param_field("pose.frozen.lr")
    patience: int = param_field("pose.frozen.patience",
                                "Epochs without a better validation loss before stopping.")
    finetune_size: int = param_field("pose.finetune.image_size")
    finetune_epochs: int = param_field("pose.finetune.epochs")
    finetune_lr: float = param_field("pose.finetune.lr")
    finetune_frozen_stages: int = param_field("pose.finetune.frozen_stages",
                                              "Leading trunk stages kept frozen (their "
                                              "output is computed once and cached).")
    resume: bool = Field(default=True, description="Resume from per-epoch checkpoints of the "
                         "same settings; False starts afresh.")


SIMILARITY_STAGE = Stage(__name__, outs=(PoseLayout.MODELS,),
                         params=config_params(LandmarkSimilarityConfig))


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
    settings = settings_from(config, SimilaritySettings, seeds={
        name: derive_seed(config.seed, "pose", "train", name) % 2**31 for name, _, _ in VARIANTS})
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
    seed: int = param_field("seed", "Root seed of the bootstrap.")
    bootstrap: int = param_field("pose.bootstrap", "Resamples per CI.")


REPORT_STAGE = Stage(__name__, outs=(PoseLayout.REPORT, registry_folder("pose")),
                     persist=(registry_folder("pose"),),  # every version is kept
                     params=config_params(SimilarityReportConfig))


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
    entry = _register(context, data_root, metrics, config)
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


def _register(context: dg.AssetExecutionContext, data_root: DataRoot, metrics: dict,
              config: SimilarityReportConfig):
    """The variant chosen on validation as a registry entry; promoted if the quality bar holds."""
    from models.backbones import BACKBONES
    from models.pose.siamese import load_variant

    layout = _layout(data_root)
    chosen, _, problems = _registered_choice(data_root)
    summary = json.loads((layout.models / "training.json").read_text())[chosen]
    model = load_variant(layout.models / f"{chosen}.pt", summary)
    poses = pd.read_parquet(layout.keypoints, columns=["backend"])
    m, base = metrics["models"][chosen], metrics["models"]["frozen"]
    siamese = model.siamese
    return register_model(
        context, "pose", model, asset="landmark_similarity", stage=SIMILARITY_STAGE,
        configs=[config], inputs=("landmark_pairs", "pose_keypoints", "landmark_similarity"),
        dvc_outs=("data/pose/pairs", "data/pose/keypoints", "data/pose/models"),
        problems=problems, data_root=data_root.layout().root, card={
            "model": chosen, "training": {k: v for k, v in summary.items() if k != "history"},
            "architecture": {"backbone": summary["backbone"], "pose": summary["pose"],
                             "hidden": siamese.project[1].out_features,
                             "pose_dim": siamese.pose.net[-1].out_features if siamese.pose
                             else 0,
                             "image_size": summary["image_size"],
                             "finetuned": summary["finetuned"],
                             "frozen_stages": summary["frozen_stages"]},
            "pose_backend": ", ".join(sorted(poses["backend"].unique())),
            "metrics": {"test_roc_auc": m["roc_auc"], "test_roc_auc_ci95": m["roc_auc_ci95"],
                        "test_accuracy": m["accuracy"], "test_pairs": m["n"],
                        "baseline_frozen_test_roc_auc": base["roc_auc"],
                        "baseline_frozen_test_accuracy": base["accuracy"]},
            "backbone": {"name": summary["backbone"],
                         "weights": f"torchvision {BACKBONES[summary['backbone']][1]}",
                         "provenance": "torchvision's official ImageNet checkpoint "
                         "(torch hub cache)"}})


pose_assets = [pose_keypoints, pose_masks, landmark_pairs, landmark_similarity,
               similarity_report]
pose_checks = [landmark_pairs_share_no_image, similarity_model_beats_chance]
