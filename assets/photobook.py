"""Photobook rater: embeddings, master vectors (prompts and learned), calibrated rater, report."""


import json
import time

import dagster as dg
import numpy as np
import pandas as pd

from assets.metadata import counts_md, path_value, table_preview
from assets.registration import register_model
from lenslab.photobook.rating import PhotobookLayout
from models.registry import registry_folder
from orchestration.kit.config import config_params, param_field, settings_from
from orchestration.kit.freshness import REPORT_FRESHNESS
from orchestration.kit.gpu import GPU_ASSET
from orchestration.kit.resources import DataRoot, TorchDevice
from orchestration.kit.stages import Stage

GROUP = "photobook"
PREFERENCES = dg.AssetKey("photo_preferences")  # its pairs.parquet and (synthetic) ground truth



def _layout(data_root: DataRoot):
    return PhotobookLayout(data_root.layout().root)


def _embeddings(data_root: DataRoot) -> tuple[pd.DataFrame, np.ndarray, dict]:
    layout = _layout(data_root)
    table = pd.read_parquet(layout.embeddings)
    info = json.loads(layout.embeddings.with_name("encoder.json").read_text())
    return table, np.stack(table["embedding"].to_numpy()).astype(np.float64), info


def _unusable(data_root: DataRoot) -> dict[str, str]:
    """Photos that have no embedding because the catalog quarantined or deduplicated them."""
    from lenslab.catalog import unusable_images

    layout = data_root.layout()
    return unusable_images(pd.read_parquet(layout.catalog), pd.read_parquet(layout.quarantine))


def _pairs(context: dg.AssetExecutionContext, data_root: DataRoot, photos: pd.DataFrame):
    """The annotated pairs of embedded photos; pairs naming a photo the catalog quarantined or
    deduplicated are dropped, counted and logged."""
    from lenslab.photobook.rating import annotated_pairs

    pairs = annotated_pairs(pd.read_parquet(_layout(data_root).pairs()), photos["image_id"],
                            _unusable(data_root))
    if pairs.dropped:
        context.log.warning(f"dropped {sum(pairs.dropped.values())} annotated pair(s) naming a "
                            f"photo the catalog does not embed: {pairs.dropped}")
    return pairs


class ImageEmbeddingsConfig(dg.Config):
    sources: list[str] = param_field("photobook.sources",
                                     "Catalog sources to embed.")
    encoder: str = param_field("photobook.encoder",
                               "auto (CLIP when its weights are found locally, else "
                               "MobileNetV2), clip, or mobilenet_v2_mlsp.")
    clip_weights: str = param_field("photobook.clip_weights",
                                    "Local CLIP ViT-B-32 weights file (\"\": none).")
    image_size: int = param_field("photobook.image_size",
                                  "MobileNetV2 input side, px (CLIP uses its own 224).")
    batch_size: int = param_field("photobook.batch_size")


EMBEDDINGS_STAGE = Stage(__name__, outs=(PhotobookLayout.EMBEDDINGS,),
                         params=config_params(ImageEmbeddingsConfig))


@dg.asset(
    group_name=GROUP, kinds={"python", "pytorch", "parquet"}, deps=["image_catalog"],
    **EMBEDDINGS_STAGE.asset_kwargs(),
    description="An embedding per catalog photo from a pluggable encoder: CLIP ViT-B-32 "
    "(open_clip) when its weights are present locally, else multi-level MobileNetV2 features "
    "(offline). The encoder used is recorded in encoder.json.",
    **GPU_ASSET,
)
def image_embeddings(
    context: dg.AssetExecutionContext, config: ImageEmbeddingsConfig, data_root: DataRoot,
    device: TorchDevice,
) -> dg.MaterializeResult:
    from lenslab.atomic import write_parquet, write_text
    from lenslab.photobook.rating import photo_rows
    from models.device import describe
    from models.photobook.encoders import build_encoder, encode_paths

    layout = _layout(data_root)
    photos = photo_rows(pd.read_parquet(data_root.layout().catalog), config.sources)
    torch_device = device.torch_device()
    encoder = build_encoder(config.encoder, clip_weights=config.clip_weights,
                            image_size=config.image_size, device=torch_device)
    start = time.perf_counter()
    values = encode_paths(encoder, [data_root.layout().root / p
                                    for p in photos["normalised_path"]], config.batch_size)
    seconds = time.perf_counter() - start
    photos["embedding"] = list(values.astype(np.float32))
    write_parquet(layout.embeddings, photos)
    info = {"encoder": encoder.name, "pretrained": encoder.pretrained,
            "weights": str(getattr(encoder, "weights", "") or "torchvision cache"),
            "image_size": 224 if encoder.name.startswith("clip") else config.image_size,
            "dim": int(values.shape[1]), "requested": config.encoder}
    write_text(layout.embeddings.with_name("encoder.json"), json.dumps(info, indent=2))
    context.log.info(f"{len(photos)} photos embedded with {encoder.name} in {seconds:.1f} s")
    return dg.MaterializeResult(metadata={
        "photos": len(photos), "encoder": encoder.name, "dim": info["dim"],
        "encoder_pretrained": encoder.pretrained,
        "embed_seconds": round(seconds, 2),
        "photos_per_second": round(len(photos) / seconds, 1) if seconds else 0.0,
        "device": describe(torch_device), "path": path_value(layout.embeddings),
    })


class MasterVectorsConfig(dg.Config):
    seed: int = param_field("seed", "Root seed of the photo split.")
    train: float = param_field("photobook.split_fractions.train")
    val: float = param_field("photobook.split_fractions.val")
    test: float = param_field("photobook.split_fractions.test")
    duplicate_threshold: float = param_field("photobook.duplicate_threshold",
                                             "Near-duplicates (grouped before the split).")
    tier_gap: int = param_field("photobook.tier_gap",
                                "Training pairs also from tier folders this far apart "
                                "(0: annotated pairs only).")
    c_grid: list[float] = param_field("photobook.c_grid",
                                      "Inverse regularisation strengths tried on val.")
    prompts: list[dict] = param_field("photobook.prompts",
                                      "Prompt master vectors: name, text, sign.")
    clip_weights: str = param_field("photobook.clip_weights")


VECTORS_STAGE = Stage(__name__, outs=(PhotobookLayout.VECTORS,),
                      params=config_params(MasterVectorsConfig))


@dg.asset(
    group_name=GROUP, kinds={"python", "scikitlearn"}, deps=[image_embeddings, PREFERENCES],
    **VECTORS_STAGE.asset_kwargs(),
    description="Master vectors with their provenance: the learned one (logistic ranking on "
    "embedding differences, photos split train/val/test with near-duplicates kept together, C "
    "chosen on validation pairs), the seed's RankSVM as the baseline, and prompt vectors from "
    "CLIP's text tower (recorded as unavailable with another encoder).",
    **GPU_ASSET,
)
def master_vectors(
    context: dg.AssetExecutionContext, config: MasterVectorsConfig, data_root: DataRoot,
    device: TorchDevice,
) -> dg.MaterializeResult:
    from models.photobook.fit import VectorSettings, fit_master_vectors

    layout = _layout(data_root)
    photos, e, info = _embeddings(data_root)
    pairs = _pairs(context, data_root, photos)
    fit = fit_master_vectors(layout, photos, e, info, pairs,
                             settings_from(config, VectorSettings), device.torch_device())
    context.log.info(f"learned vector: C={fit.c} ({fit.common['pairs']['train']} annotated "
                     f"train pairs, {fit.common['pairs']['val']} val pairs)")
    return dg.MaterializeResult(metadata={
        "encoder": info["encoder"], "C": fit.c,
        "vectors": counts_md({n: p["description"] + ("" if p["available"] else " (unavailable)")
                              for n, p in fit.provenance.items()}, ("vector", "provenance")),
        "photos_per_split": dg.MetadataValue.json(fit.common["photos"]),
        "pairs_per_split": dg.MetadataValue.json(fit.common["pairs"]),
        "near_duplicate_groups": fit.common["near_duplicate_groups"],
        "dropped_pairs": sum(pairs.dropped.values()),
        "dropped_pairs_by_reason": dg.MetadataValue.json(pairs.dropped),
        "val_curve": table_preview(pd.DataFrame(fit.curve), rows=len(fit.curve)),
        "path": path_value(layout.provenance),
    })


class PhotobookRaterConfig(dg.Config):
    seed: int = param_field("seed", "Root seed of the bootstrap.")
    reliability_bins: int = param_field("photobook.reliability_bins")
    bootstrap: int = param_field("photobook.bootstrap", "Resamples per CI.")
    duplicate_threshold: float = param_field("photobook.duplicate_threshold",
                                             "Album: skip photos this similar to a pick.")


RATER_STAGE = Stage(__name__, outs=(PhotobookLayout.RATER, registry_folder("photobook")),
                    persist=(registry_folder("photobook"),),  # every version is kept
                    params=config_params(PhotobookRaterConfig))


@dg.asset(
    group_name=GROUP, kinds={"python", "scikitlearn"},
    deps=[image_embeddings, master_vectors, PREFERENCES],
    **RATER_STAGE.asset_kwargs(),
    description="P(photo A beats photo B) per master vector, calibrated on validation pairs "
    "(Platt scaling without intercept), with held-out pairwise accuracy, ECE and reliability "
    "on the test pairs; rater.json is what the web app and album selection load.",
)
def photobook_rater(
    context: dg.AssetExecutionContext, config: PhotobookRaterConfig, data_root: DataRoot,
) -> dg.MaterializeResult:
    from lenslab.photobook.calibration import calibrate_rater
    from lenslab.photobook.rating import HEADLINE, LEARNED

    layout = _layout(data_root)
    photos, e, info = _embeddings(data_root)
    rater = calibrate_rater(layout, photos, e, info, _pairs(context, data_root, photos),
                            duplicate_threshold=config.duplicate_threshold,
                            bins=config.reliability_bins, resamples=config.bootstrap,
                            seed=config.seed)
    entry = _register(context, data_root, rater, config)
    learned = rater["vectors"][LEARNED]
    head = learned[HEADLINE]
    context.log.info(f"learned vector: ECE {learned['ece']:.3f}, accuracy "
                     f"{head['value']:.3f} on {head['n']} pairs of two held-out photos")
    truth_md = {n: f"{v['accuracy_truth']['value']:.3f}" for n, v in rater["vectors"].items()
                if "accuracy_truth" in v}
    return dg.MaterializeResult(metadata={
        "registry_version": entry.version, "promoted": entry.promoted,
        "learned_test_accuracy": round(head["value"], 4),
        "learned_test_accuracy_ci95": dg.MetadataValue.json(list(head["ci95"])),
        "learned_test_accuracy_unit": head["unit"],
        "learned_test_accuracy_one_train_photo_allowed": round(
            learned["accuracy_labels"]["value"], 4),
        "learned_ece": round(learned["ece"], 4),
        "learned_ece_noise_floor": round(learned["ece_noise_floor"], 4),
        "learned_scale": round(learned["scale"], 4),
        **({"learned_test_accuracy_truth": round(learned["accuracy_truth"]["value"], 4),
            "oracle_test_accuracy": round(learned["oracle_accuracy_labels"], 4)}
           if "accuracy_truth" in learned else {}),
        "test_pairs": rater["test_pairs"], "val_pairs": rater["val_pairs"],
        "accuracy_vs_true_order": counts_md(truth_md, ("vector", "accuracy")),
        "reliability": table_preview(pd.DataFrame(learned["reliability"]), rows=20),
        "path": path_value(layout.rater),
    })


class PhotobookReportConfig(dg.Config):
    seed: int = param_field("seed", "Root seed of the example album draw.")
    album_photos: int = param_field("photobook.album.photos",
                                    "Test photos offered to the example album (M).")
    album_places: int = param_field("photobook.album.places",
                                    "Places in the example album (N).")
    split_spread: dict = param_field("photobook.split_spread",
                                     "Repeated group k-fold of the headline: folds, repeats.")
    tier_gap: int = param_field("photobook.tier_gap")
    c_grid: list[float] = param_field("photobook.c_grid")


REPORT_STAGE = Stage(__name__, outs=(PhotobookLayout.REPORT,),
                     params=config_params(PhotobookReportConfig))


@dg.asset(
    group_name=GROUP, kinds={"python", "matplotlib"},
    deps=["image_catalog", image_embeddings, master_vectors, photobook_rater],
    **REPORT_STAGE.asset_kwargs(),
    freshness_policy=REPORT_FRESHNESS,
    description="Held-out pairwise accuracy of each master vector beside chance and the oracle, "
    "cosine between prompt and learned vectors, the reliability diagram and an example album "
    "(best N of M test photos, near-duplicates skipped, with reasons): metrics.json, report.md, "
    "PNGs.",
)
def photobook_report(
    context: dg.AssetExecutionContext, config: PhotobookReportConfig, data_root: DataRoot,
) -> dg.MaterializeResult:
    from lenslab.photobook.rating import HEADLINE, LEARNED
    from lenslab.photobook.report import build_report

    layout = _layout(data_root)
    photos, e, _ = _embeddings(data_root)
    metrics, album, md = build_report(
        layout, photos, e, data_root.layout().root, album_photos=config.album_photos,
        album_places=config.album_places, seed=config.seed,
        pairs=_pairs(context, data_root, photos), spread=config.split_spread,
        tier_gap=config.tier_gap, c_grid=config.c_grid)
    context.log.info(md)
    learned, bursts = metrics["rater"]["vectors"][LEARNED], metrics["near_duplicates_vs_bursts"]
    return dg.MaterializeResult(metadata={
        "learned_test_accuracy": round(learned[HEADLINE]["value"], 4),
        "learned_ece": round(learned["ece"], 4),
        **({"near_duplicate_precision": round(bursts["precision"], 4),
            "near_duplicate_recall": round(bursts["recall"], 4)} if bursts else {}),
        "album_chosen": int(album["chosen"].sum()),
        "album_skipped_duplicates": int(album["reason"].str.startswith("near-duplicate").sum()),
        "album": table_preview(album[["photo", "score", "chosen", "reason"]], rows=12),
        "report": dg.MetadataValue.md(md),
        "metrics_path": path_value(layout.report / "metrics.json"),
    })


@dg.asset_check(asset=master_vectors, blocking=True,
                description="Read back from the written files: every split holds photos and "
                "pairs, and no two photos in different splits have the same bytes or "
                "near-identical pixels (difference hash of the image files the rater reads).")
def photobook_splits_share_no_photo(data_root: DataRoot) -> dg.AssetCheckResult:
    from lenslab.split_audit import cross_split_leaks, summary

    layout = _layout(data_root)
    provenance = json.loads(layout.provenance.read_text())
    splits = pd.read_parquet(layout.splits)
    catalog = pd.read_parquet(data_root.layout().catalog, columns=["image_id", "normalised_path"])
    files = splits.merge(catalog.drop_duplicates("image_id"), on="image_id", how="left")
    files = files.rename(columns={"normalised_path": "path"})
    leaks = cross_split_leaks(files[["image_id", "path", "split"]], data_root.layout().root)
    empty = [f"{k} {s}" for k in ("photos", "pairs") for s, n in provenance[k].items() if n == 0]
    problems = empty + summary(leaks)
    return dg.AssetCheckResult(
        passed=not problems, description="; ".join(problems) or None,
        metadata={"same_content_pairs": len(leaks["same_content"]),
                  "near_duplicate_pairs": len(leaks["near_duplicates"]),
                  "closest_cross_split_bits": leaks["closest_cross_split_bits"],
                  "files_read": leaks["files"]})


@dg.asset_check(asset=photobook_rater, blocking=True,
                description="The learned master vector beats the seed's RankSVM baseline on "
                "pairs of two held-out photos and its interval (over near-duplicate groups) "
                "lies above chance (0.5); otherwise the rater is not promoted and the check "
                "warns, so the report still shows why. It blocks downstream (ERROR) only when "
                "the learned vector scores at or below chance.")
def photobook_learned_beats_baseline(data_root: DataRoot) -> dg.AssetCheckResult:
    from lenslab.photobook.rating import HEADLINE

    vectors = json.loads(_layout(data_root).rater.read_text())["vectors"]
    learned, seed = vectors["learned"][HEADLINE], vectors["seed_ranksvm"][HEADLINE]
    problems, blocking = _learned_problems(vectors)
    severity = dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(passed=not problems, severity=severity,
                               description="; ".join(problems) or None,
                               metadata={"learned": learned["value"], "seed": seed["value"],
                                         "learned_ci95": list(learned["ci95"])})


def _learned_problems(vectors: dict) -> tuple[list[str], bool]:
    """(why the learned vector fails its check, whether that blocks): the check's logic, which
    the registry's promotion follows too: on pairs of two held-out photos."""
    from lenslab.photobook.rating import HEADLINE

    learned, seed = vectors["learned"][HEADLINE], vectors["seed_ranksvm"][HEADLINE]
    touches_chance = learned["ci95"][0] <= 0.5
    problems = ([] if learned["value"] > seed["value"] else ["learned ≤ seed RankSVM"]) + (
        ["learned CI touches 0.5"] if touches_chance else [])
    return problems, learned["value"] <= 0.5


def _register(context: dg.AssetExecutionContext, data_root: DataRoot, rater_json: dict,
              config: PhotobookRaterConfig):
    """The learned rater as a registry entry; promoted only if its quality check passes."""
    from lenslab.photobook.rating import HEADLINE, LEARNED, Rater
    from models.photobook.rater import RaterModel

    layout = _layout(data_root)
    provenance = json.loads(layout.provenance.read_text())
    problems, _ = _learned_problems(rater_json["vectors"])
    learned, encoder = rater_json["vectors"][LEARNED], rater_json["encoder"]
    return register_model(
        context, "photobook", RaterModel.from_rater(Rater.load(layout)), stage=RATER_STAGE,
        configs=[config], inputs=("image_embeddings", "master_vectors", "photo_preferences"),
        dvc_outs=("data/photobook/embeddings", "data/photobook/master_vectors",
                  "data/raw/photo_preferences"),
        problems=problems, data_root=data_root.layout().root, card={
            "model": LEARNED,
            "architecture": {"dim": encoder["dim"],
                             "duplicate_threshold": rater_json["duplicate_threshold"]},
            "encoder": encoder,
            "vector": {k: v for k, v in provenance["vectors"][LEARNED].items()
                       if k != "val_curve"},
            "split": {k: provenance[k] for k in ("split_seed", "split_fractions",
                                                 "duplicate_threshold", "photos", "pairs")},
            "metrics": {"test_pair_accuracy": learned[HEADLINE]["value"],
                        "test_pair_accuracy_ci95": learned[HEADLINE]["ci95"],
                        "test_pair_accuracy_unit": learned[HEADLINE]["unit"],
                        "test_pairs_both_held_out": learned[HEADLINE]["n"],
                        "test_pair_accuracy_one_train_photo_allowed":
                            learned["accuracy_labels"]["value"],
                        "test_pairs": rater_json["test_pairs"], "test_ece": learned["ece"],
                        "scale": learned["scale"],
                        "baseline_seed_ranksvm_test_pair_accuracy":
                            rater_json["vectors"]["seed_ranksvm"][HEADLINE]["value"]},
            "backbone": {"name": encoder["encoder"], "weights": encoder["weights"],
                         "pretrained": encoder["pretrained"],
                         "provenance": "open_clip ViT-B-32 weights file" if encoder[
                             "encoder"].startswith("clip") else
                         "torchvision's official ImageNet MobileNetV2 checkpoint "
                         "(torch hub cache)"}})


photobook_assets = [image_embeddings, master_vectors, photobook_rater, photobook_report]
photobook_checks = [photobook_splits_share_no_photo, photobook_learned_beats_baseline]
