"""One source ingested and catalogued in a temporary data root, for a system's end-to-end test."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd


def ingest_and_catalog(root: Path, source: str, scale: float | None = None,
                       config: dict | None = None) -> dict:
    """Materialise ``source`` (synthetic, at ``scale``; None: params.yaml's; ``config``: more of
    its config, e.g. local mode and a path) and build the image catalog of it alone; returns the
    resources the system's assets run with (CPU device)."""
    from assets.ingestion import ingestion_assets
    from lenslab.catalog import build_catalog, write_catalog
    from lenslab.paths import DataLayout
    from orchestration.kit.http import HttpClient
    from orchestration.kit.resources import DataRoot, TorchDevice

    resources = {"data_root": DataRoot(path=str(root)), "http": HttpClient(),
                 "device": TorchDevice(device="cpu")}
    asset = next(a for a in ingestion_assets if a.key.path[-1] == source)
    options = dict(config or {}) | ({"scale": scale} if scale is not None else {})
    dg.materialize([asset], resources=resources, raise_on_error=True,
                   run_config={"ops": {source: {"config": options}}} if options else {})
    layout = DataLayout(root)
    write_catalog(build_catalog(pd.read_parquet(layout.records(source)), layout, max_side=512,
                                max_pixels=50_000_000, seed=1,
                                split_fractions={"train": 0.8, "val": 0.1, "test": 0.1},
                                workers=1, progress=False), layout)
    return resources
