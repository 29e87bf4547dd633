"""Photographer editing style: global features of the catalogued photos, and their clusters."""


import base64

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.catalog import image_catalog
from assets.metadata import path_value, table_preview
from lenslab.params import param
from lenslab.seeding import derive_seed
from orchestration.gpu import GPU_ASSET
from orchestration.resources import DataRoot, TorchDevice
from orchestration.stages import Stage

FEATURES_STAGE = Stage(
    outs=("features/global_features.parquet",),
    code=("lenslab/style.py", "lenslab/style_features.py", "assets/style.py",
          "assets/metadata.py"),
    params=("style.feature_size", "style.batch_size", "style.decode_threads"),
)
CLUSTERS_STAGE = Stage(
    outs=("features/photographer_clusters.parquet", "features/photographer_clusters_pca.png"),
    code=("lenslab/style.py", "assets/style.py", "assets/metadata.py"),
    params=("seed", "style.clusters", "style.kmeans_n_init"),
)


class GlobalFeaturesConfig(dg.Config):
    size: int = Field(default=param("style.feature_size"),
                      description="Photos are resized to size x size pixels for the features.")
    batch_size: int = Field(default=param("style.batch_size"), description="Images per batch.")
    decode_threads: int = Field(default=param("style.decode_threads"),
                                description="Threads decoding JPEGs ahead of the feature batch.")


class ClustersConfig(dg.Config):
    clusters: int = Field(default=param("style.clusters"),
                          description="KMeans k (30, as the seed).")
    n_init: int = Field(default=param("style.kmeans_n_init"), description="KMeans restarts.")
    seed: int = Field(default=param("seed"), description="Root seed of KMeans and PCA.")


@dg.asset(
    group_name="features",
    kinds={"python", "pytorch", "parquet"},
    deps=[image_catalog],
    metadata=FEATURES_STAGE.metadata(),
    code_version=FEATURES_STAGE.code_version(),
    description="Editing-style features (Lab tone statistics, local contrast, RGB spread, "
    "saturation, colourfulness, hue histogram, white-balance cast, sharpness, noise, vignetting) "
    "of every catalogued Oxford pets photo, plus the seed's 4 columns as a baseline.",
    **GPU_ASSET,
)
def global_features(
    context: dg.AssetExecutionContext, config: GlobalFeaturesConfig, data_root: DataRoot,
    device: TorchDevice,
) -> dg.MaterializeResult:
    from tqdm import tqdm

    from lenslab import atomic, style
    from lenslab.style_features import FEATURE_DOCS
    from models.device import describe

    layout = data_root.layout()
    # only the catalog's rows: quarantined files never reach the features
    images = style.catalogued_images(pd.read_parquet(layout.catalog))
    torch_device = device.torch_device()
    with tqdm(total=len(images), desc="global_features", unit="img") as bar:
        extraction = style.extract(
            [layout.root / p for p in images["normalised_path"]], size=config.size,
            batch_size=config.batch_size, device=torch_device, threads=config.decode_threads,
            progress=bar.update,
        )
    table = style.features_table(images, extraction)
    atomic.write_parquet(style.features_path(layout), table)
    context.log.info(f"{len(table)} images at {extraction.images_per_s:.1f} images/s")
    docs = "\n".join(f"| {name} | {doc} |" for name, doc in FEATURE_DOCS.items())
    return dg.MaterializeResult(metadata={
        "images": len(table),
        "features": len(FEATURE_DOCS),
        "images_per_s": round(extraction.images_per_s, 1),
        "device": describe(torch_device),
        "size": config.size,
        "path": path_value(style.features_path(layout)),
        "feature_docs": dg.MetadataValue.md("| feature | what it measures |\n|---|---|\n" + docs),
        "preview": table_preview(table.iloc[:, :10].round(3)),
    })


@dg.asset(
    group_name="features",
    kinds={"python", "scikitlearn", "parquet"},
    deps=[global_features],
    metadata=CLUSTERS_STAGE.metadata(),
    code_version=CLUSTERS_STAGE.code_version(),
    description="KMeans 'photographers' on standardised global features, beside the seed's "
    "variant (4 raw unscaled columns); ARI/NMI against the true photographers where known; a 2-D "
    "PCA map coloured by cluster.",
)
def photographer_clusters(
    context: dg.AssetExecutionContext, config: ClustersConfig, data_root: DataRoot
) -> dg.MaterializeResult:
    from lenslab import atomic, style
    from lenslab.style_features import FEATURE_NAMES, SEED_FEATURE_NAMES

    layout = data_root.layout()
    table = pd.read_parquet(style.features_path(layout))
    random_state = derive_seed(config.seed, "style", "kmeans") % 2**31
    truth = style.true_photographers(layout, table["image_id"])
    result = style.cluster(table[list(FEATURE_NAMES)].to_numpy(),
                           table[list(SEED_FEATURE_NAMES)].to_numpy(), config.clusters,
                           random_state, truth, n_init=config.n_init)
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


style_assets = [global_features, photographer_clusters]
