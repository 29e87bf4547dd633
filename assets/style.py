"""Photographer editing style: global features of the catalogued photos, and their clusters."""


import base64

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.metadata import path_value, table_preview
from assets.registration import register_model
from lenslab.seeding import derive_seed
from orchestration.kit.config import config_params, param_field, settings_from
from orchestration.kit.freshness import REPORT_FRESHNESS
from orchestration.kit.gpu import GPU_ASSET
from orchestration.kit.resources import DataRoot, TorchDevice
from orchestration.kit.stages import Stage


class GlobalFeaturesConfig(dg.Config):
    source: str = param_field("style.source",
                              "The catalogued source studied: oxford_pets or "
                              "photographer_folders (the whole style group follows it).")
    size: int = param_field("style.feature_size",
                            "Photos are resized to size x size pixels for the features.")
    batch_size: int = param_field("style.batch_size",
                                  "Images per batch (on CPU at most 8).")
    decode_threads: int = param_field("style.decode_threads",
                                      "Workers, each decoding a batch of JPEGs and "
                                      "computing its features.")


class ClustersConfig(dg.Config):
    clusters: int = param_field("style.clusters",
                                "KMeans k (30, as the seed).")
    n_init: int = param_field("style.kmeans_n_init", "KMeans restarts.")
    seed: int = param_field("seed", "Root seed of KMeans and PCA.")


FEATURES_STAGE = Stage(__name__,
    outs=("features/global_features.parquet",),
    params=config_params(GlobalFeaturesConfig),
)


@dg.asset(
    group_name="style",
    kinds={"python", "pytorch", "parquet"},
    deps=["image_catalog"],
    **FEATURES_STAGE.asset_kwargs(),
    description="Editing-style features (Lab tone statistics, local contrast, RGB spread, "
    "saturation, colourfulness, hue histogram, white-balance cast, sharpness, noise, vignetting) "
    "of every catalogued photo of the style source (Oxford pets by default, or photographer "
    "folders), plus the seed's 4 columns as a baseline.",
    **GPU_ASSET,
)
def global_features(
    context: dg.AssetExecutionContext, config: GlobalFeaturesConfig, data_root: DataRoot,
    device: TorchDevice,
) -> dg.MaterializeResult:
    from tqdm import tqdm

    from lenslab import atomic
    from lenslab.style import extraction as style
    from lenslab.style.features import FEATURE_DOCS
    from models.device import describe

    layout = data_root.layout()
    # only the catalog's rows: quarantined files never reach the features
    images = style.catalogued_images(pd.read_parquet(layout.catalog), config.source)
    torch_device = device.torch_device()
    with tqdm(total=len(images), desc="global_features", unit="img") as bar:
        extraction = style.extract(
            [layout.root / p for p in images["normalised_path"]], size=config.size,
            batch_size=config.batch_size, device=torch_device, threads=config.decode_threads,
            progress=bar.update,
        )
    table = style.features_table(images, extraction)
    atomic.write_parquet(style.features_path(layout), table)
    context.log.info(f"{len(table)} {config.source} images at "
                     f"{extraction.images_per_s:.1f} images/s")
    docs = "\n".join(f"| {name} | {doc} |" for name, doc in FEATURE_DOCS.items())
    return dg.MaterializeResult(metadata={
        "images": len(table),
        "source": config.source,
        "features": len(FEATURE_DOCS),
        "images_per_s": round(extraction.images_per_s, 1),
        "device": describe(torch_device),
        "size": config.size,
        "path": path_value(style.features_path(layout)),
        "feature_docs": dg.MetadataValue.md("| feature | what it measures |\n|---|---|\n" + docs),
        "preview": table_preview(table.iloc[:, :10].round(3)),
    })


CLUSTERS_STAGE = Stage(__name__,
    outs=("features/photographer_clusters.parquet", "features/photographer_clusters_pca.png"),
    params=config_params(ClustersConfig),
)


@dg.asset(
    group_name="style",
    kinds={"python", "scikitlearn", "parquet"},
    deps=[global_features],
    **CLUSTERS_STAGE.asset_kwargs(),
    description="KMeans 'photographers' on standardised global features, beside the seed's "
    "variant (4 raw unscaled columns); ARI/NMI against the true photographers where known; a 2-D "
    "PCA map coloured by cluster.",
)
def photographer_clusters(
    context: dg.AssetExecutionContext, config: ClustersConfig, data_root: DataRoot
) -> dg.MaterializeResult:
    from lenslab import atomic
    from lenslab.style import extraction as style
    from lenslab.style.features import FEATURE_NAMES, SEED_FEATURE_NAMES

    layout = data_root.layout()
    table = pd.read_parquet(style.features_path(layout))
    random_state = derive_seed(config.seed, "style", "kmeans") % 2**31
    truth = style.true_photographers(layout, table["image_id"])
    result = style.cluster(table[list(FEATURE_NAMES)].to_numpy(),
                           table[list(SEED_FEATURE_NAMES)].to_numpy(), config.clusters,
                           random_state, None if truth is None else truth.labels,
                           n_init=config.n_init)
    out = pd.DataFrame({"image_id": table["image_id"], "cluster": result.cluster,
                        "seed_cluster": result.seed_cluster})
    atomic.write_parquet(style.clusters_path(layout), out)
    plot = style.clusters_plot_path(layout)
    style.plot_clusters(result, plot, f"{len(out)} photos, KMeans k={config.clusters} on "
                        f"{len(FEATURE_NAMES)} standardised features")
    image_md = base64.b64encode(plot.read_bytes()).decode()
    if result.scores:
        context.log.info("ARI standardised {ari_standardised:.3f} vs seed {ari_seed:.3f}; "
                         "NMI {nmi_standardised:.3f} vs {nmi_seed:.3f}".format(**result.scores))
    return dg.MaterializeResult(metadata={
        "images": len(out),
        "clusters": int(out["cluster"].nunique()),
        "k": config.clusters,
        "kmeans_random_state": random_state,
        "ground_truth": truth is not None,
        **{k: round(v, 4) for k, v in result.scores.items()},
        "pca_explained": [round(v, 3) for v in result.explained],
        "path": path_value(style.clusters_path(layout)),
        "plot_path": path_value(plot),
        "pca_plot": dg.MetadataValue.md(f"![PCA by cluster](data:image/png;base64,{image_md})"),
        "cluster_sizes": dg.MetadataValue.json(
            {str(k): int(v) for k, v in out["cluster"].value_counts().sort_index().items()}),
        "preview": table_preview(out),
    })




class StyleAutoencoderConfig(dg.Config):
    size: int = param_field("style.ae_size", "Input side in pixels.")
    embedding_dim: int = param_field("style.ae_embedding_dim", "Embedding width.")
    width: int = param_field("style.ae_width", "Channels of the first convolution.")
    epochs: int = param_field("style.ae_epochs")
    batch_size: int = param_field("style.ae_batch_size")
    lr: float = param_field("style.ae_lr", "AdamW learning rate.")
    feature_weight: float = param_field("style.ae_feature_weight",
                                        "Weight of the global-feature loss.")
    heldout_base_fraction: float = param_field("style.heldout_base_fraction",
                                               "Share of shared base scenes held out whole.")
    seed: int = param_field("seed", "Root seed of the split and of training.")
    resume: bool = Field(default=False, description="Continue from the saved checkpoint.")


AE_STAGE = Stage(
    __name__,
    outs=("models/style_autoencoder/checkpoint.pt", "models/style_autoencoder/embeddings.parquet",
          "models/style_autoencoder/tb"),
    params=config_params(StyleAutoencoderConfig),
)


@dg.asset(
    group_name="style",
    kinds={"python", "pytorch", "parquet"},
    deps=[global_features],
    **AE_STAGE.asset_kwargs(),
    description="Convolutional autoencoder (pixel L1 + global-feature loss); its encoder output "
    "is the image embedding, written for every photo from the final model in eval mode.",
    **GPU_ASSET,
)
def style_autoencoder(
    context: dg.AssetExecutionContext, config: StyleAutoencoderConfig, data_root: DataRoot,
    device: TorchDevice,
) -> dg.MaterializeResult:
    from models.device import describe
    from models.style import autoencoder as ae
    from models.style.fit import fit_autoencoder

    seed = derive_seed(config.seed, "style", "autoencoder") % 2**31
    torch_device = device.torch_device()
    fit = fit_autoencoder(data_root.layout(), settings_from(config, ae.TrainConfig, seed=seed),
                          heldout_base_fraction=config.heldout_base_fraction,
                          split_seed=config.seed, resume=config.resume, device=torch_device,
                          log=context.log.info)
    last = fit.result.history[-1] if fit.result.history else {}
    return dg.MaterializeResult(metadata={
        "images": fit.images, "train_images": fit.train_images, "epochs": config.epochs,
        "resumed_from_epoch": fit.result.resumed_from,
        "train_seconds": round(fit.result.seconds, 2), "device": describe(torch_device),
        "torch_seed": seed,
        **{k: round(float(v), 5) for k, v in last.items() if k != "epoch"},
        "history": dg.MetadataValue.json(fit.result.history),
        "path": path_value(fit.embeddings), "tensorboard": path_value(fit.tensorboard),
    })


class PhotographerConfig(dg.Config):
    dim: int = param_field("style.photographer_dim", "Photographer embedding width.")
    hidden: int = param_field("style.photographer_hidden",
                              "Hidden units of the image encoder (0: linear).")
    dropout: float = param_field("style.photographer_dropout")
    ae_embedding: bool = param_field("style.photographer_ae_embedding",
                                     "Put the autoencoder embedding beside the features.")
    epochs: int = param_field("style.photographer_epochs")
    lr: float = param_field("style.photographer_lr")
    style_weight: float = param_field("style.photographer_style_weight",
                                      "Weight of predicting the photographer's edit features.")
    feature_size: int = param_field("style.feature_size",
                                    "Side the features were computed at (the served model "
                                    "resizes to it).")
    seed: int = param_field("seed", "Root seed of training and of the baseline.")
    bootstrap: int = param_field("style.bootstrap", "Resamples per CI.")


PHOTOGRAPHER_STAGE = Stage(
    __name__,
    outs=("models/photographer/photographer_embeddings.parquet",
          "models/photographer/identification.parquet", "models/photographer/metrics.json"),
    params=config_params(PhotographerConfig),
)


@dg.asset(
    group_name="style",
    kinds={"python", "pytorch", "parquet"},
    deps=[style_autoencoder, photographer_clusters],
    **PHOTOGRAPHER_STAGE.asset_kwargs(),
    description="A learnable embedding per photographer; predicts each photographer's editing "
    "(global features) and identifies the photographer of held-out photos (top-1/top-5), beside "
    "a logistic-regression baseline on the global features.",
    **GPU_ASSET,
)
def photographer_model(
    context: dg.AssetExecutionContext, config: PhotographerConfig, data_root: DataRoot,
    device: TorchDevice,
) -> dg.MaterializeResult:
    from lenslab.style import evaluation as style_models
    from models.style import photographer as ph
    from models.style.fit import build_identifier, fit_photographer

    layout = data_root.layout()
    seed = derive_seed(config.seed, "style", "photographer") % 2**31
    fit = fit_photographer(layout, settings_from(config, ph.TrainConfig, seed=seed),
                           ae_embedding=config.ae_embedding, device=device.torch_device(),
                           resamples=config.bootstrap, interval_seed=config.seed)
    ident = fit.metrics["identification"]
    key = {f"{k.replace('/', '_')}_top1": round(v["top1"], 4) for k, v in ident.items()}
    context.log.info(str(key))
    identifier, arch = build_identifier(layout, fit, ae_embedding=config.ae_embedding,
                                        feature_size=config.feature_size)
    entry = register_model(
        context, "photographer", identifier, stage=PHOTOGRAPHER_STAGE, configs=[config],
        inputs=("global_features", "style_autoencoder"),
        dvc_outs=("data/features/global_features.parquet", "data/catalog"),
        problems=style_models.quality_problems(fit.metrics), data_root=layout.root, card={
            "architecture": arch, "labels": fit.metrics["labels"],
            "metrics": {**{f"{k.replace('/', '_')}_{m}": v[m] for k, v in ident.items()
                           for m in ("top1", "top5")},
                        "chance_top1": fit.metrics["chance_top1"]},
            "backbone": {"name": "style_autoencoder (trained here)",
                         "weights": "none pretrained"}})
    return dg.MaterializeResult(metadata={
        "labels": fit.metrics["labels"], "photographers": len(fit.names),
        "best_epoch": fit.metrics["best_epoch"], "torch_seed": seed, **key,
        "chance_top1": round(fit.metrics["chance_top1"], 4),
        "registry_version": entry.version, "promoted": entry.promoted,
        "path": path_value(ph.embeddings_path(layout.root)),
    })


class StyleReportConfig(dg.Config):
    seed: int = param_field("seed", "Root seed of the PCA maps and the intervals.")
    bootstrap: int = param_field("style.bootstrap", "Resamples per CI.")


REPORT_STAGE = Stage(__name__, outs=("reports/style",), params=config_params(StyleReportConfig))


@dg.asset(
    group_name="style",
    kinds={"python", "json", "markdown"},
    deps=[photographer_model],
    **REPORT_STAGE.asset_kwargs(),
    freshness_policy=REPORT_FRESHNESS,
    description="metrics.json, report.md and plots: identification top-1/top-5 vs chance on "
    "held-out edits and held-out bases, clustering ARI/NMI vs the seed's variant, 2-D maps of "
    "the image and photographer embeddings, a grid of example edits per photographer.",
)
def style_report(context: dg.AssetExecutionContext, config: StyleReportConfig,
                 data_root: DataRoot) -> dg.MaterializeResult:
    from lenslab.style import evaluation as style_models
    from lenslab.style.report import build_report

    layout = data_root.layout()
    seed = derive_seed(config.seed, "style", "report") % 2**31
    metrics = build_report(layout, seed, resamples=config.bootstrap, interval_seed=config.seed)
    out = style_models.report_dir(layout)
    flat = {f"{k.replace('/', '_')}_{m}": round(v[m], 4)
            for k, v in metrics["identification"].items() for m in ("top1", "top5")}
    bar = base64.b64encode((out / "identification_top1.png").read_bytes()).decode()
    grid = base64.b64encode((out / "example_edits.png").read_bytes()).decode()
    return dg.MaterializeResult(metadata={
        **flat, **{k: round(v, 4) for k, v in metrics.get("clustering", {}).items()
                   if isinstance(v, float)},
        "chance_top1": round(metrics["chance_top1"], 4), "target_met": metrics["target_met"],
        "pca_seed": seed, "path": path_value(out / "report.md"),
        "plot": dg.MetadataValue.md(f"![top-1](data:image/png;base64,{bar})"),
        "example_edits": dg.MetadataValue.md(
            f"![example edits](data:image/png;base64,{grid})"),
    })


style_assets = [global_features, photographer_clusters, style_autoencoder, photographer_model,
                style_report]
