"""Photobook rater speed: photos/s for embedding + rating on CPU, and the web page's latency.

    .venv/bin/python bench/rater/run.py [--data-root DIR] [--requests 100] [--repeats 3]

Without ``--data-root`` it builds one in a temporary folder the way the pipeline does (ingest the
synthetic photo_preferences source at ``synthetic.scale`` 1.0, build the catalog, materialise the
four photobook assets) and reports how long the photobook assets took. Then:

* embedding + rating: every photobook photo read from disk, embedded (the encoder the pipeline
  recorded) and scored with the learned master vector; median of ``--repeats`` runs after a
  warm-up. The CLIP ViT-B-32 image tower is timed on the same photos with random weights (the
  speed does not depend on the weights, which are not available offline);
* web latency: the page served by uvicorn on 127.0.0.1, ``--requests`` two-photo comparisons
  (two real JPEGs from scikit-image, 512 px) posted with httpx one after another after 5 warm-up
  requests; p50/p95 of the wall time per request.

Prints JSON, with the held-out figures photobook_rater recorded (accuracy against the annotators
and, on synthetic data, against the true order; ECE).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from skimage import data as skdata

from lenslab.photobook.rating import LEARNED, PhotobookLayout, Rater
from models.photobook.encoders import ClipEncoder, MlspEncoder, encode_paths


def build_data_root(root: Path) -> float:
    """The pipeline's photobook artefacts under ``root``; returns the photobook assets' seconds."""
    import dagster as dg

    from assets.ingestion import ingestion_assets
    from assets.photobook import photobook_assets
    from lenslab.catalog import build_catalog, write_catalog
    from lenslab.paths import DataLayout
    from orchestration.kit.http import HttpClient
    from orchestration.kit.resources import DataRoot, TorchDevice

    resources = {"data_root": DataRoot(path=str(root)), "http": HttpClient(),
                 "device": TorchDevice(device="cpu")}
    source = next(a for a in ingestion_assets if a.key.path[-1] == "photo_preferences")
    dg.materialize([source], resources=resources, raise_on_error=True)
    layout = DataLayout(root)
    write_catalog(build_catalog(pd.read_parquet(layout.records("photo_preferences")), layout,
                                max_side=512, max_pixels=50_000_000, seed=1,
                                split_fractions={"train": 0.8, "val": 0.1, "test": 0.1},
                                workers=1, progress=False), layout)
    start = time.perf_counter()
    dg.materialize(photobook_assets, resources=resources, raise_on_error=True)
    return time.perf_counter() - start


def time_rating(encoder, paths: list[Path], vector: np.ndarray, repeats: int) -> dict:
    encode_paths(encoder, paths[:8])  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        scores = encode_paths(encoder, paths) @ vector
        assert np.isfinite(scores).all()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"encoder": encoder.name, "photos": len(paths), "median_s": round(median, 3),
            "photos_per_s": round(len(paths) / median, 1)}


def web_latency(data_root: Path, requests: int) -> dict:
    import httpx

    from lenslab.web.photobook import create_app
    from tests.support.browser import live_server

    uploads = []
    for name, pixels in (("astronaut.jpg", skdata.astronaut()), ("cat.jpg", skdata.chelsea())):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG", quality=90)
        uploads.append((name, buf.getvalue()))
    files = {"photo_a": (*uploads[0], "image/jpeg"), "photo_b": (*uploads[1], "image/jpeg")}
    latencies = []
    with live_server(create_app(data_root)) as url, httpx.Client(base_url=url,
                                                                 timeout=60) as client:
        for k in range(requests + 5):
            start = time.perf_counter()
            r = client.post("/compare", files=files, data={"vector": LEARNED})
            elapsed = time.perf_counter() - start
            if r.status_code != 200:
                raise RuntimeError(f"request {k}: HTTP {r.status_code}")
            if k >= 5:
                latencies.append(elapsed * 1000)
    return {"requests": requests, "upload_bytes": [len(u[1]) for u in uploads],
            "p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "p95_ms": round(float(np.percentile(latencies, 95)), 1),
            "max_ms": round(max(latencies), 1)}


def held_out_quality(layout: PhotobookLayout) -> dict:
    """The rater's held-out figures as photobook_rater recorded them (accuracy, ECE)."""
    rater = json.loads(layout.rater.read_text())
    out = {"test_pairs": rater["test_pairs"], "strict_test_pairs": rater["strict_test_pairs"]}
    for name, v in rater["vectors"].items():
        if v["available"]:
            out[name] = {k: (v[k]["value"], v[k]["ci95"]) if isinstance(v[k], dict) else v[k]
                         for k in ("accuracy_labels", "accuracy_labels_strict", "accuracy_truth",
                                   "accuracy_truth_strict", "oracle_accuracy_labels", "ece",
                                   "ece_noise_floor") if k in v}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=None,
                    help="a data tree the pipeline has written photobook/ into")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clip-photos", type=int, default=64, help="photos for the CLIP timing")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="torch intra-op threads to time the MobileNetV2 rating with")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_root or Path(tmp)
        pipeline_s = None if args.data_root else round(build_data_root(root), 1)
        layout = PhotobookLayout(root)
        rater = Rater.load(layout)
        table = pd.read_parquet(layout.embeddings)
        paths = [root / p for p in table["normalised_path"]]
        mlsp = MlspEncoder(rater.encoder["image_size"])
        rating = []
        for threads in args.threads:  # on a busy machine, one thread can beat two
            torch.set_num_threads(threads)
            rating.append({"threads": threads, **time_rating(mlsp, paths,
                                                             rater.vectors[LEARNED],
                                                             args.repeats)})
        rating.append({"threads": threads, **time_rating(ClipEncoder(None),
                                                         paths[: args.clip_photos],
                                                         np.ones(512), 1)})
        web = web_latency(root, args.requests)
        quality = held_out_quality(layout)
    print(json.dumps({"machine": platform.processor() or platform.machine(),
                      "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "photobook_assets_s": pipeline_s, "held_out": quality,
                      "embedding_and_rating": rating, "web_compare": web}, indent=2))


if __name__ == "__main__":
    main()
