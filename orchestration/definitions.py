"""The one Definitions object of lenslab: `dagster dev` and `dg dev` load it from pyproject.toml."""


import dagster as dg

from assets.aesthetics import aesthetics_assets, aesthetics_checks
from assets.catalog import catalog_checks, image_catalog
from assets.ingestion import ingestion_assets
from assets.selfie import selfie_assets, selfie_checks
from assets.style import style_assets
from orchestration.resources import DataRoot, HttpClient, TorchDevice

all_assets = [*ingestion_assets, image_catalog, *style_assets, *selfie_assets,
              *aesthetics_assets]
all_checks = [*catalog_checks, *selfie_checks, *aesthetics_checks]

pipeline_job = dg.define_asset_job(
    "pipeline",
    selection=dg.AssetSelection.all(),
    description="The whole pipeline: ingestion, catalog and everything downstream.",
)


# Each step runs in its own process; a forkserver that has already imported the project (dagster,
# torch, pandas) forks them in milliseconds instead of ~8 s of imports per step.
executor = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["orchestration.definitions"]}}}
)


def build_definitions() -> dg.Definitions:
    return dg.Definitions(
        executor=executor,
        assets=all_assets,
        asset_checks=all_checks,
        jobs=[pipeline_job],
        resources={"data_root": DataRoot(), "http": HttpClient(), "device": TorchDevice()},
    )


defs = build_definitions()
