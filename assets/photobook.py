"""Photobook rater: embeddings, master vectors (prompts and learned), calibrated rater, report."""


import json
import time

import dagster as dg
import numpy as np
import pandas as pd

from assets.metadata import counts_md, path_value, table_preview
from assets.registration import data_provenance, stage_params
from lenslab.seeding import derive_seed
from orchestration.kit.config import config_params, param_field
from orchestration.kit.freshness import REPORT_FRESHNESS
from orchestration.kit.gpu import GPU_ASSET
from orchestration.kit.resources import DataRoot, TorchDevice
from orchestration.kit.stages import Stage

GROUP = "photobook"
PREFERENCES = dg.AssetKey("photo_preferences")  # its pairs.parquet and (synthetic) ground truth



def _layout(data_root: DataRoot):
    from lenslab.photobook.rating import PhotobookLayout

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


EMBEDDINGS_STAGE = Stage(__name__, outs=("photobook/embeddings",),
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


VECTORS_STAGE = Stage(__name__, outs=("photobook/master_vectors",),
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
    from lenslab.atomic import atomic_path, write_parquet, write_text
    from lenslab.photobook.rating import (
        LEARNED,
        Standardiser,
        annotated_pairs,
        fit_learned_vector,
        near_duplicate_groups,
        scene_groups,
        seed_ranksvm,
        split_groups,
        split_pairs,
        tier_pairs,
    )

    layout = _layout(data_root)
    photos, e, info = _embeddings(data_root)
    fractions = {"train": config.train, "val": config.val, "test": config.test}
    # near-duplicates are found with train-free statistics (all photos), only to group them
    groups = near_duplicate_groups(Standardiser.fit(e)(e), config.duplicate_threshold)
    groups = scene_groups(groups, photos.get("scene"))  # the user's scenes.csv, if any
    split = split_groups(groups, fractions, config.seed)
    train_photos = np.flatnonzero(split == "train")
    standardiser = Standardiser.fit(e[train_photos])
    pairs = annotated_pairs(pd.read_parquet(layout.pairs()), photos["image_id"],
                            _unusable(data_root))
    if pairs.dropped:
        context.log.warning(f"dropped {sum(pairs.dropped.values())} annotated pair(s) naming a "
                            f"photo the catalog does not embed: {pairs.dropped}")
    tiers = photos["tier"].fillna(-1).to_numpy(dtype=int)
    by_split = split_pairs(pairs, split, tiers, config.tier_gap)
    pair_split, train, val = by_split.where, by_split.train, by_split.val
    learned = fit_learned_vector(e, train, val, standardiser, config.c_grid)
    context.log.info(f"learned vector: C={learned.c} ({len(train)} train, {len(val)} val pairs)")

    vectors = {LEARNED: learned.vector,
               "seed_ranksvm": seed_ranksvm(e, tier_pairs(tiers, train_photos, 7))}
    provenance = {
        LEARNED: {"available": True, "description": "learned from preference pairs",
                  "method": "logistic ranking, no intercept, standardised embedding "
                  "differences; vector = weights / train std", "C": learned.c,
                  "val_curve": learned.curve, "train_pairs": len(train),
                  "train_pairs_from_tiers": len(train) - int((pair_split == "train").sum()),
                  "val_pairs": len(val), "tier_gap": config.tier_gap},
        "seed_ranksvm": {"available": True,
                         "description": "seed's RankSVM on tier pairs (baseline)",
                         "method": "LinearSVC hinge loss, no intercept, raw differences, "
                         "tier gap > 6, C 0.5, unit length (the seed's notebook)"},
    }
    clip = info["encoder"].startswith("clip")
    if clip:
        from models.photobook.encoders import ClipEncoder, resolve_clip_weights

        encoder = ClipEncoder(resolve_clip_weights(config.clip_weights),
                              device=device.torch_device())
        texts = encoder.encode_texts([p["text"] for p in config.prompts])
    for k, prompt in enumerate(config.prompts):
        name = f"prompt_{prompt['name']}"
        sign = "minus " if prompt.get("sign", 1) < 0 else ""
        provenance[name] = {"available": clip, "text": prompt["text"],
                            "description": f"prompt: {sign}'{prompt['text']}'",
                            "method": "CLIP text embedding, L2-normalised, times sign"
                            if clip else f"unavailable: encoder {info['encoder']} has no text "
                            "tower"}
        if clip:
            vectors[name] = prompt.get("sign", 1) * texts[k]
    common = {"encoder": info, "split_seed": derive_seed(config.seed, "photobook", "split"),
              "split_fractions": fractions, "duplicate_threshold": config.duplicate_threshold,
              "photos": {s: int((split == s).sum()) for s in ("train", "val", "test")},
              "near_duplicate_groups": int(groups.max() + 1),
              "pairs": {s: int((pair_split == s).sum()) for s in ("train", "val", "test")}}
    with atomic_path(layout.vectors) as tmp, open(tmp, "wb") as f:
        np.savez(f, mean=standardiser.mean, std=standardiser.std,
                 **{f"vector_{n}": v for n, v in vectors.items()})
    write_text(layout.provenance, json.dumps({"vectors": provenance, **common}, indent=2))
    write_parquet(layout.splits, pd.DataFrame({"image_id": photos["image_id"], "group": groups,
                                               "split": split}))
    return dg.MaterializeResult(metadata={
        "encoder": info["encoder"], "C": learned.c,
        "vectors": counts_md({n: p["description"] + ("" if p["available"] else " (unavailable)")
                              for n, p in provenance.items()}, ("vector", "provenance")),
        "photos_per_split": dg.MetadataValue.json(common["photos"]),
        "pairs_per_split": dg.MetadataValue.json(common["pairs"]),
        "near_duplicate_groups": common["near_duplicate_groups"],
        "dropped_pairs": sum(pairs.dropped.values()),
        "dropped_pairs_by_reason": dg.MetadataValue.json(pairs.dropped),
        "val_curve": table_preview(pd.DataFrame(learned.curve), rows=len(learned.curve)),
        "path": path_value(layout.provenance),
    })


class PhotobookRaterConfig(dg.Config):
    seed: int = param_field("seed", "Root seed of the bootstrap.")
    reliability_bins: int = param_field("photobook.reliability_bins")
    bootstrap: int = param_field("photobook.bootstrap", "Resamples per CI.")
    duplicate_threshold: float = param_field("photobook.duplicate_threshold",
                                             "Album: skip photos this similar to a pick.")


RATER_STAGE = Stage(__name__, outs=("photobook/rater", "registry/photobook"),
                    persist=("registry/photobook",),  # every version is kept
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
    from lenslab.atomic import write_parquet, write_text
    from lenslab.photobook.rating import (
        LEARNED,
        annotated_pairs,
        differences,
        evaluate_vector,
        fit_scale,
        sigmoid,
        split_pairs,
        true_quality,
    )

    layout = _layout(data_root)
    photos, e, info = _embeddings(data_root)
    provenance = json.loads(layout.provenance.read_text())
    arrays = np.load(layout.vectors)
    split = pd.read_parquet(layout.splits).set_index("image_id").loc[photos["image_id"], "split"]
    pairs = annotated_pairs(pd.read_parquet(layout.pairs()), photos["image_id"],
                            _unusable(data_root))
    by_split = split_pairs(pairs, split.to_numpy())
    val, test = by_split.val, by_split.test
    truth = true_quality(layout, photos["image_id"])
    rater = {"encoder": info, "duplicate_threshold": config.duplicate_threshold, "vectors": {}}
    predictions = pd.DataFrame({"first": photos["image_id"].to_numpy()[test.first],
                                "second": photos["image_id"].to_numpy()[test.second],
                                "first_won": test.y, "strict": by_split.strict_test})
    for name, prov in provenance["vectors"].items():
        entry = {"available": prov["available"], "description": prov["description"]}
        if prov["available"]:
            vector = arrays[f"vector_{name}"]
            scale = fit_scale(differences(e, val) @ vector, val.y)
            entry.update(scale=scale, **evaluate_vector(
                e, vector, scale, test, predictions["strict"].to_numpy(), truth,
                bins=config.reliability_bins, seed=config.seed, resamples=config.bootstrap,
                name=name))
            predictions[f"p_{name}"] = sigmoid(scale * (differences(e, test) @ vector))
        rater["vectors"][name] = entry
    rater["test_pairs"] = len(test)
    rater["strict_test_pairs"] = int(predictions["strict"].sum())
    rater["val_pairs"] = len(val)
    write_text(layout.rater, json.dumps(rater, indent=2, default=float))
    write_parquet(layout.predictions, predictions)
    entry = _register(context, data_root, rater, provenance)
    learned = rater["vectors"][LEARNED]
    context.log.info(f"learned vector: ECE {learned['ece']:.3f}, accuracy "
                     f"{learned['accuracy_labels']['value']:.3f} on {len(test)} test pairs")
    truth_md = {n: f"{v['accuracy_truth']['value']:.3f}" for n, v in rater["vectors"].items()
                if "accuracy_truth" in v}
    return dg.MaterializeResult(metadata={
        "registry_version": entry.version, "promoted": entry.promoted,
        "learned_test_accuracy": round(learned["accuracy_labels"]["value"], 4),
        "learned_test_accuracy_ci95": dg.MetadataValue.json(
            list(learned["accuracy_labels"]["ci95"])),
        "learned_ece": round(learned["ece"], 4),
        "learned_ece_noise_floor": round(learned["ece_noise_floor"], 4),
        "learned_scale": round(learned["scale"], 4),
        **({"learned_test_accuracy_truth": round(learned["accuracy_truth"]["value"], 4),
            "oracle_test_accuracy": round(learned["oracle_accuracy_labels"], 4)}
           if "accuracy_truth" in learned else {}),
        "test_pairs": len(test), "val_pairs": len(val),
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


REPORT_STAGE = Stage(__name__, outs=("reports/photobook",),
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
    from lenslab.atomic import write_text
    from lenslab.photobook.figures import album_sheet, reliability_diagram
    from lenslab.photobook.rating import LEARNED, Rater, report_markdown, vector_cosines
    from lenslab.seeding import rng

    layout = _layout(data_root)
    out = layout.report
    photos, e, _ = _embeddings(data_root)
    rater_json = json.loads(layout.rater.read_text())
    rater = Rater.load(layout)
    split = pd.read_parquet(layout.splits).set_index("image_id").loc[photos["image_id"], "split"]
    test_photos = np.flatnonzero(split.to_numpy() == "test")
    m = min(config.album_photos, len(test_photos))
    offered = np.sort(rng(config.seed, "photobook", "album").choice(test_photos, m,
                                                                     replace=False))
    # the offered photos plus every near-duplicate of them, so the album has bursts to skip
    groups = pd.read_parquet(layout.splits).set_index("image_id").loc[photos["image_id"],
                                                                       "group"].to_numpy()
    offered = np.flatnonzero(np.isin(groups, groups[offered]) & (split.to_numpy() == "test"))
    names = photos["image_id"].to_numpy()[offered].tolist()
    album = rater.album(e[offered], names, config.album_places, LEARNED)
    cosines = vector_cosines(rater.vectors)
    figures = {"reliability diagram": out / "reliability.png", "example album": out / "album.png"}
    reliability_diagram({n: v for n, v in rater_json["vectors"].items() if v["available"]},
                        figures["reliability diagram"])
    root = data_root.layout().root
    paths = dict(zip(photos["image_id"], photos["normalised_path"], strict=True))
    album_sheet(album, [root / paths[n] for n in album["photo"]], figures["example album"])
    metrics = {"rater": rater_json, "cosines": cosines,
               "album": album.to_dict(orient="records"),
               "album_offered": len(offered), "album_places": config.album_places}
    md = report_markdown(metrics, {k: v.relative_to(root).as_posix()
                                   for k, v in figures.items()})
    write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=float))
    write_text(out / "report.md", md)
    album.to_csv(out / "album.csv", index=False)
    context.log.info(md)
    learned = rater_json["vectors"][LEARNED]
    return dg.MaterializeResult(metadata={
        "learned_test_accuracy": round(learned["accuracy_labels"]["value"], 4),
        "learned_ece": round(learned["ece"], 4),
        "album_chosen": int(album["chosen"].sum()),
        "album_skipped_duplicates": int(album["reason"].str.startswith("near-duplicate").sum()),
        "album": table_preview(album[["photo", "score", "chosen", "reason"]], rows=12),
        "report": dg.MetadataValue.md(md),
        "metrics_path": path_value(out / "metrics.json"),
    })


@dg.asset_check(asset=master_vectors, blocking=True,
                description="Every split holds photos and pairs, and no near-duplicate group "
                "straddles two splits.")
def photobook_splits_are_disjoint(data_root: DataRoot) -> dg.AssetCheckResult:
    provenance = json.loads(_layout(data_root).provenance.read_text())
    splits = pd.read_parquet(_layout(data_root).splits)
    straddling = int((splits.groupby("group")["split"].nunique() > 1).sum())
    empty = [f"{k} {s}" for k in ("photos", "pairs") for s, n in provenance[k].items() if n == 0]
    return dg.AssetCheckResult(
        passed=not straddling and not empty,
        description="; ".join(empty + ([f"{straddling} groups straddle"] if straddling else []))
        or None, metadata={"straddling_groups": straddling})


@dg.asset_check(asset=photobook_rater, blocking=True,
                description="The learned master vector beats the seed's RankSVM baseline on "
                "held-out pairs and its interval lies above chance (0.5). Blocks downstream "
                "(ERROR) when the learned vector is no better than chance or clearly below the "
                "baseline (its whole interval under the baseline's figure); a shortfall within "
                "the interval, as on small data, only warns.")
def photobook_learned_beats_baseline(data_root: DataRoot) -> dg.AssetCheckResult:
    vectors = json.loads(_layout(data_root).rater.read_text())["vectors"]
    learned, seed = vectors["learned"]["accuracy_labels"], vectors["seed_ranksvm"][
        "accuracy_labels"]
    problems, blocking = _learned_problems(vectors)
    severity = dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(passed=not problems, severity=severity,
                               description="; ".join(problems) or None,
                               metadata={"learned": learned["value"], "seed": seed["value"],
                                         "learned_ci95": list(learned["ci95"])})


def _learned_problems(vectors: dict) -> tuple[list[str], bool]:
    """(why the learned vector fails its check, whether that blocks): the check's logic, which
    the registry's promotion follows too."""
    learned, seed = vectors["learned"]["accuracy_labels"], vectors["seed_ranksvm"][
        "accuracy_labels"]
    chance = learned["ci95"][0] <= 0.5
    clearly_below = learned["ci95"][1] < seed["value"]
    problems = ([] if learned["value"] > seed["value"] else ["learned ≤ seed RankSVM"]) + (
        ["learned CI touches 0.5"] if chance else [])
    return problems, chance or clearly_below


def _register(context: dg.AssetExecutionContext, data_root: DataRoot, rater_json: dict,
              provenance: dict):
    """The learned rater as a registry entry; promoted only if its quality check passes."""
    from lenslab.photobook.rating import LEARNED, Rater
    from models import registry
    from models.photobook.rater import RaterModel

    problems, _ = _learned_problems(rater_json["vectors"])
    for problem in problems:
        context.log.warning(f"photobook rater not promoted: {problem}")
    model = RaterModel.from_rater(Rater.load(_layout(data_root)))
    learned = rater_json["vectors"][LEARNED]
    encoder = rater_json["encoder"]
    card = {
        "asset": "photobook_rater", "model": LEARNED, "code_version": RATER_STAGE.code_version(),
        "architecture": {"dim": encoder["dim"],
                         "duplicate_threshold": rater_json["duplicate_threshold"]},
        "encoder": encoder,
        "vector": {k: v for k, v in provenance["vectors"][LEARNED].items() if k != "val_curve"},
        "metrics": {"test_pair_accuracy": learned["accuracy_labels"]["value"],
                    "test_pair_accuracy_ci95": learned["accuracy_labels"]["ci95"],
                    "test_pairs": rater_json["test_pairs"], "test_ece": learned["ece"],
                    "scale": learned["scale"],
                    "baseline_seed_ranksvm_test_pair_accuracy":
                        rater_json["vectors"]["seed_ranksvm"]["accuracy_labels"]["value"],
                    "quality_problems": problems},
        "params": {**stage_params(VECTORS_STAGE), **stage_params(RATER_STAGE)},
        "data": data_provenance(context, ("image_embeddings", "master_vectors",
                                          "photo_preferences"),
                                ("data/photobook/embeddings", "data/photobook/master_vectors",
                                 "data/raw/photo_preferences")),
        "backbone": {"name": encoder["encoder"], "weights": encoder["weights"],
                     "pretrained": encoder["pretrained"],
                     "provenance": "open_clip ViT-B-32 weights file" if encoder[
                         "encoder"].startswith("clip") else
                     "torchvision's official ImageNet MobileNetV2 checkpoint (torch hub cache)"},
    }
    return registry.register(data_root.layout().root, "photobook", model, card=card,
                             promote=not problems)


photobook_assets = [image_embeddings, master_vectors, photobook_rater, photobook_report]
photobook_checks = [photobook_splits_are_disjoint, photobook_learned_beats_baseline]
