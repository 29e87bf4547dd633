"""The image catalog: every image of every source validated, hashed, normalised and split."""


import json
import math

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.metadata import content_version, counts_md, path_value, table_preview
from lenslab.params import param
from lenslab.paths import SOURCES
from orchestration.kit.config import config_params, param_field
from orchestration.kit.resources import DataRoot
from orchestration.kit.stages import Stage


class CatalogConfig(dg.Config):
    max_side: int = param_field("catalog.max_side",
                                "Longest side of the normalised copies, in pixels.")
    max_pixels: int = param_field("catalog.max_pixels",
                                  "More pixels: rejected as a decompression bomb.")
    seed: int = param_field("seed", "Seed of the assigned splits.")
    train: float = param_field("catalog.split_fractions.train",
                               "Fraction assigned to train where a source has no split.")
    val: float = param_field("catalog.split_fractions.val")
    test: float = param_field("catalog.split_fractions.test")
    workers: int | None = Field(default=None, description="Worker processes (default: all cores).")


CATALOG_STAGE = Stage(__name__,
    outs=("catalog",),
    params=config_params(CatalogConfig),
)


@dg.asset(
    group_name="catalog",
    kinds={"python", "parquet", "pillow"},
    deps=list(SOURCES),
    **CATALOG_STAGE.asset_kwargs(),
    description="One row per image (content SHA-256, source, split, labels, size, format); "
    "normalised RGB copies by content hash; a quarantine table with the reason for each "
    "rejected file.",
)
def image_catalog(
    context: dg.AssetExecutionContext, config: CatalogConfig, data_root: DataRoot
) -> dg.MaterializeResult:
    from lenslab.catalog import build_catalog, catalog_summary, read_source_records, write_catalog

    layout = data_root.layout()
    records = read_source_records(layout, SOURCES)
    result = build_catalog(
        records, layout, max_side=config.max_side, max_pixels=config.max_pixels,
        seed=config.seed, split_fractions={"train": config.train, "val": config.val,
                                           "test": config.test},
        workers=config.workers,
    )
    write_catalog(result, layout)
    summary = catalog_summary(result.catalog, result.quarantine)
    for row in result.quarantine.itertuples():
        context.log.warning(f"quarantined {row.original_path}: {row.reason}")
    context.log.info(f"catalog: {len(result.catalog)} images, {len(result.quarantine)} quarantined")
    return dg.MaterializeResult(
        data_version=content_version(result.catalog),
        metadata={
            "images": len(result.catalog),
            "quarantined": len(result.quarantine),
            "duplicates": int(result.catalog["duplicate_of"].notna().sum()),
            "per_source": counts_md(result.catalog["source"].value_counts().to_dict(),
                                    ("source", "images")),
            "summary": dg.MetadataValue.json(json.loads(json.dumps(summary, default=str))),
            "catalog_path": path_value(layout.catalog),
            "quarantine_path": path_value(layout.quarantine),
            "preview": table_preview(result.catalog[["image_id", "source", "split", "width",
                                                     "height", "format", "sha256"]]),
            "quarantine_preview": table_preview(result.quarantine),
        }
    )


def _load(data_root: DataRoot) -> pd.DataFrame:
    return pd.read_parquet(data_root.layout().catalog)


def _result(problems: list[str], what: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={"violations": len(problems), "examples": ", ".join(map(str, problems[:10]))},
        description=f"{len(problems)} {what}" if problems else None,
    )


@dg.asset_check(asset=image_catalog, blocking=True,
                 description="Every catalog row has its normalised image on disk.")
def catalog_files_present(data_root: DataRoot) -> dg.AssetCheckResult:
    from lenslab.catalog import missing_normalised

    return _result(missing_normalised(_load(data_root), data_root.layout()),
                   "rows without their file")


@dg.asset_check(asset=image_catalog, blocking=True,
                description="No image content (SHA-256) appears in two different splits.")
def catalog_no_split_leaks(data_root: DataRoot) -> dg.AssetCheckResult:
    from lenslab.catalog import cross_split_duplicates, unknown_splits

    catalog = _load(data_root)
    return _result(cross_split_duplicates(catalog) + unknown_splits(catalog),
                   "images leaking across splits or in unknown splits")


@dg.asset_check(asset=image_catalog, blocking=True,
                description="Every source has images, and a source whose dataset defines a split "
                "has both train and test images.")
def catalog_counts_per_split(data_root: DataRoot) -> dg.AssetCheckResult:
    catalog = _load(data_root)
    counts = catalog.groupby(["source", "split"]).size().unstack(fill_value=0)
    problems = [f"{s}: no images" for s in SOURCES if s not in counts.index]
    given = catalog[~catalog["split_assigned"]]
    for source, group in given.groupby("source"):
        problems += [f"{source}: dataset split has no {split}" for split in ("train", "test")
                     if not (group["split"] == split).any()]
    result = _result(problems, "sources with empty splits")
    return dg.AssetCheckResult(
        passed=result.passed, description=result.description,
        metadata={**result.metadata, "counts": dg.MetadataValue.md(counts.to_markdown())},
    )


MIN_IMAGES_FOR_SHARES = 20  # fewer hash-assigned images say nothing about the shares


@dg.asset_check(asset=image_catalog, description="Assigned split shares match the configured "
                "fractions within 3 binomial standard deviations (at least 5 points), per source "
                f"with at least {MIN_IMAGES_FOR_SHARES} hash-assigned images.")
def catalog_split_proportions(data_root: DataRoot) -> dg.AssetCheckResult:
    catalog = _load(data_root)
    wanted = param("catalog.split_fractions")
    assigned = catalog[catalog["split_assigned"]]
    problems = []
    for source, group in assigned.groupby("source"):
        if len(group) < MIN_IMAGES_FOR_SHARES:  # e.g. unlisted images beside an official split
            continue
        shares = group["split"].value_counts(normalize=True)
        for split, fraction in wanted.items():
            # hash-assigned splits are binomial draws: small sources wander further
            tolerance = max(0.05, 3 * math.sqrt(fraction * (1 - fraction) / len(group)))
            if abs(shares.get(split, 0.0) - fraction) > tolerance:
                problems.append(f"{source}/{split}: {shares.get(split, 0.0):.2f} vs {fraction}")
    return _result(problems, "split shares off target")


LABEL_RULES: dict[str, dict[str, tuple[float, float]]] = {
    "oxford_pets": {"class_id": (1, 37), "breed_id": (1, 25)},
    "flickr_aes": {"mean_score": (0.0, 5.0)},
    "photo_preferences": {"tier": (0, 14)},
}


@dg.asset_check(asset=image_catalog, blocking=True,
                description="Numeric labels lie in their documented ranges.")
def catalog_label_ranges(data_root: DataRoot) -> dg.AssetCheckResult:
    catalog = _load(data_root)
    problems = []
    for source, rules in LABEL_RULES.items():
        labels = catalog.loc[catalog["source"] == source, ["image_id", "labels"]]
        for image_id, raw in labels.itertuples(index=False):
            values = json.loads(raw) if raw else {}
            for key, (lo, hi) in rules.items():
                v = values.get(key)
                if v is not None and not (lo <= float(v) <= hi):
                    problems.append(f"{image_id}: {key}={v}")
    return _result(problems, "labels out of range")


catalog_checks = [catalog_files_present, catalog_no_split_leaks, catalog_counts_per_split,
                  catalog_split_proportions, catalog_label_ranges]
