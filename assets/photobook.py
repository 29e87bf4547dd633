"""Photobook rater: embeddings, master vectors (prompts and learned), calibrated rater, report."""


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

GROUP = "photobook"
PREFERENCES = dg.AssetKey("photo_preferences")  # its pairs.parquet and (synthetic) ground truth

EMBEDDINGS_STAGE = Stage(__name__, outs=("photobook/embeddings",),
                         params=("photobook.sources", "photobook.encoder",
                                 "photobook.clip_weights", "photobook.image_size",
                                 "photobook.batch_size"))
VECTORS_STAGE = Stage(__name__, outs=("photobook/master_vectors",),
                      params=("seed", "photobook.split_fractions",
                              "photobook.duplicate_threshold", "photobook.tier_gap",
                              "photobook.c_grid", "photobook.prompts",
                              "photobook.clip_weights"))
RATER_STAGE = Stage(__name__, outs=("photobook/rater", "registry/photobook"),
                    persist=("registry/photobook",),  # every version is kept
                    params=("seed", "photobook.reliability_bins", "photobook.bootstrap",
                            "photobook.duplicate_threshold"))
REPORT_STAGE = Stage(__name__, outs=("reports/photobook",),
                     params=("seed", "photobook.album", "photobook.split_spread",
                             "photobook.tier_gap", "photobook.c_grid"))


def _layout(data_root: DataRoot):
    from lenslab.photobook.rating import PhotobookLayout

    return PhotobookLayout(data_root.layout().root)


def _embeddings(data_root: DataRoot) -> tuple[pd.DataFrame, np.ndarray, dict]:
    layout = _layout(data_root)
    table = pd.read_parquet(layout.embeddings)
    info = json.loads(layout.embeddings.with_name("encoder.json").read_text())
    return table, np.stack(table["embedding"].to_numpy()).astype(np.float64), info


class ImageEmbeddingsConfig(dg.Config):
    sources: list[str] = Field(default=param("photobook.sources"),
                               description="Catalog sources to embed.")
    encoder: str = Field(default=param("photobook.encoder"),
                         description="auto (CLIP when its weights are found locally, else "
                         "MobileNetV2), clip, or mobilenet_v2_mlsp.")
    clip_weights: str = Field(default=param("photobook.clip_weights"),
                              description="Local CLIP ViT-B-32 weights file (\"\": none).")
    image_size: int = Field(default=param("photobook.image_size"),
                            description="MobileNetV2 input side, px (CLIP uses its own 224).")
    batch_size: int = Field(default=param("photobook.batch_size"))


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
    seed: int = Field(default=param("seed"), description="Root seed of the photo split.")
    train: float = Field(default=param("photobook.split_fractions.train"))
    val: float = Field(default=param("photobook.split_fractions.val"))
    test: float = Field(default=param("photobook.split_fractions.test"))
    duplicate_threshold: float = Field(default=param("photobook.duplicate_threshold"),
                                       description="Near-duplicates (grouped before the split).")
    tier_gap: int = Field(default=param("photobook.tier_gap"),
                          description="Training pairs also from tier folders this far apart "
                          "(0: annotated pairs only).")
    c_grid: list[float] = Field(default=param("photobook.c_grid"),
                                description="Inverse regularisation strengths tried on val.")
    prompts: list[dict] = Field(default=param("photobook.prompts"),
                                description="Prompt master vectors: name, text, sign.")
    clip_weights: str = Field(default=param("photobook.clip_weights"))


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
        pixel_near_duplicates,
        seed_ranksvm,
        split_groups,
        split_pairs,
        tier_pairs,
    )

    layout = _layout(data_root)
    photos, e, info = _embeddings(data_root)
    fractions = {"train": config.train, "val": config.val, "test": config.test}
    # near-duplicates are found with train-free statistics (all photos), only to group them
    groups = near_duplicate_groups(
        Standardiser.fit(e)(e), config.duplicate_threshold,
        pixel_near_duplicates(data_root.layout().root, photos["normalised_path"]))
    split = split_groups(groups, fractions, config.seed)
    train_photos = np.flatnonzero(split == "train")
    standardiser = Standardiser.fit(e[train_photos])
    pairs = annotated_pairs(pd.read_parquet(layout.pairs()), photos["image_id"])
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
        "val_curve": table_preview(pd.DataFrame(learned.curve), rows=len(learned.curve)),
        "path": path_value(layout.provenance),
    })


class PhotobookRaterConfig(dg.Config):
    seed: int = Field(default=param("seed"), description="Root seed of the bootstrap.")
    reliability_bins: int = Field(default=param("photobook.reliability_bins"))
    bootstrap: int = Field(default=param("photobook.bootstrap"), description="Resamples per CI.")
    duplicate_threshold: float = Field(default=param("photobook.duplicate_threshold"),
                                       description="Album: skip photos this similar to a pick.")


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
        HEADLINE,
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
    splits = pd.read_parquet(layout.splits).set_index("image_id").loc[photos["image_id"]]
    split, units = splits["split"], splits["group"].to_numpy()
    pairs = annotated_pairs(pd.read_parquet(layout.pairs()), photos["image_id"])
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
                e, vector, scale, test, predictions["strict"].to_numpy(), truth, units=units,
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
        "test_pairs": len(test), "val_pairs": len(val),
        "accuracy_vs_true_order": counts_md(truth_md, ("vector", "accuracy")),
        "reliability": table_preview(pd.DataFrame(learned["reliability"]), rows=20),
        "path": path_value(layout.rater),
    })


class PhotobookReportConfig(dg.Config):
    seed: int = Field(default=param("seed"), description="Root seed of the example album draw.")
    album_photos: int = Field(default=param("photobook.album.photos"),
                              description="Test photos offered to the example album (M).")
    album_places: int = Field(default=param("photobook.album.places"),
                              description="Places in the example album (N).")


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
    from lenslab.photobook.rating import (
        HEADLINE,
        LEARNED,
        Rater,
        annotated_pairs,
        burst_agreement,
        ground_truth_rows,
        report_markdown,
        split_spread,
        vector_cosines,
    )
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
    truth = ground_truth_rows(layout, photos["image_id"])
    bursts = None if truth is None else burst_agreement(groups, truth["burst"].to_numpy())
    spread_config = param("photobook.split_spread")
    spread = split_spread(
        e, annotated_pairs(pd.read_parquet(layout.pairs()), photos["image_id"]), groups,
        photos["tier"].fillna(-1).to_numpy(dtype=int), tier_gap=param("photobook.tier_gap"),
        cs=param("photobook.c_grid"), folds=spread_config["folds"],
        repeats=spread_config["repeats"], seed=config.seed) if spread_config["repeats"] else None
    metrics = {"rater": rater_json, "cosines": cosines, "near_duplicates_vs_bursts": bursts,
               "split_spread": spread,
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
        "learned_test_accuracy": round(learned[HEADLINE]["value"], 4),
        "learned_ece": round(learned["ece"], 4),
        **({"near_duplicate_precision": round(bursts["precision"], 4),
            "near_duplicate_recall": round(bursts["recall"], 4)} if bursts else {}),
        "album_chosen": int(album["chosen"].sum()),
        "album_skipped_duplicates": int(album["reason"].str.startswith("near-duplicate").sum()),
        "album": table_preview(album[["photo", "score", "chosen", "reason"]], rows=12),
        "report": dg.MetadataValue.md(md),
        "metrics_path": path_value(out / "metrics.json"),
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
                "lies above chance (0.5). Blocks downstream (ERROR) when the learned vector "
                "scores at or below chance or clearly below the baseline (its whole interval "
                "under the baseline's figure); an interval that only reaches chance, as with "
                "few held-out photos, warns, and the rater is not promoted.")
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
    chance = learned["ci95"][0] <= 0.5
    clearly_below = learned["ci95"][1] < seed["value"]
    problems = ([] if learned["value"] > seed["value"] else ["learned ≤ seed RankSVM"]) + (
        ["learned CI touches 0.5"] if chance else [])
    return problems, learned["value"] <= 0.5 or clearly_below


def _register(context: dg.AssetExecutionContext, data_root: DataRoot, rater_json: dict,
              provenance: dict):
    """The learned rater as a registry entry; promoted only if its quality check passes."""
    from lenslab.photobook.rating import HEADLINE, LEARNED, Rater
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
        "metrics": {"test_pair_accuracy": learned[HEADLINE]["value"],
                    "test_pair_accuracy_ci95": learned[HEADLINE]["ci95"],
                    "test_pair_accuracy_unit": learned[HEADLINE]["unit"],
                    "test_pairs_both_held_out": learned[HEADLINE]["n"],
                    "test_pair_accuracy_one_train_photo_allowed":
                        learned["accuracy_labels"]["value"],
                    "test_pairs": rater_json["test_pairs"], "test_ece": learned["ece"],
                    "scale": learned["scale"],
                    "baseline_seed_ranksvm_test_pair_accuracy":
                        rater_json["vectors"]["seed_ranksvm"][HEADLINE]["value"],
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
photobook_checks = [photobook_splits_share_no_photo, photobook_learned_beats_baseline]
