"""The one Definitions object of lenslab: `dagster dev` and `dg dev` load it from pyproject.toml."""


import dagster as dg

from assets.aesthetics import aesthetics_assets, aesthetics_checks
from assets.catalog import catalog_checks, image_catalog
from assets.ingestion import ingestion_assets
from assets.photobook import photobook_assets, photobook_checks
from assets.pipeline_report import pipeline_report
from assets.pose import pose_assets, pose_checks
from assets.selfie import selfie_assets, selfie_checks
from assets.style import style_assets
from orchestration.automation import build_new_data_sensor, retrain_changed
from orchestration.executors import build_executor
from orchestration.kit.http import HttpClient
from orchestration.kit.resources import DataRoot, TorchDevice

all_assets = [*ingestion_assets, image_catalog, *style_assets, *selfie_assets,
              *photobook_assets, *pose_assets, *aesthetics_assets, pipeline_report]
all_checks = [*catalog_checks, *selfie_checks, *photobook_checks, *pose_checks,
              *aesthetics_checks]

pipeline_job = dg.define_asset_job(
    "pipeline",
    selection=dg.AssetSelection.all(),
    description="The whole pipeline: ingestion, catalog and everything downstream.",
)


def build_definitions() -> dg.Definitions:
    return dg.Definitions(
        executor=build_executor(),  # LENSLAB_EXECUTOR: local (default), celery, k8s
        assets=all_assets,
        asset_checks=all_checks,
        jobs=[pipeline_job],
        schedules=[retrain_changed],
        sensors=[build_new_data_sensor()],
        resources={"data_root": DataRoot(), "http": HttpClient(), "device": TorchDevice()},
    )


defs = build_definitions()
