"""lenslab's side of the ingestion benchmark: the pipeline's own scraper and catalog, end to end.

Downloads every URL of a manifest (robots.txt, X-Robots-Tag, status per URL), then validates,
hashes and normalises each image to <= max_side px and writes the catalog rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from functools import partial
from pathlib import Path

import pandas as pd

from lenslab.catalog import build_catalog, write_catalog
from lenslab.images import process_image
from lenslab.ingest.http import HttpSettings
from lenslab.ingest.scrape import OK, scrape_manifest
from lenslab.paths import DataLayout

MAX_PIXELS = 50_000_000


def images_dir(row: dict) -> str:
    """Every photo in one folder (module-level, so worker processes can unpickle it)."""
    return "images"


def ingest(urls: Path, out: Path, *, max_side: int, threads: int, workers: int,
           streaming: bool, processes: int) -> dict:
    layout = DataLayout(out)
    manifest = pd.read_csv(urls)
    # Our own loopback server: no politeness delay needed, as for img2dataset.
    # per_host_concurrency is split between the processes: give each its `threads`.
    settings = dataclasses.replace(HttpSettings.default(), per_host_rate_per_s=0.0,
                                   per_host_concurrency=threads * processes)
    # Streaming: each worker validates and normalises its photo as soon as it lands, so image
    # work overlaps with the downloads; the catalog pass then finds every copy made.
    on_fetched = partial(process_image, dest_for=layout.normalised, max_side=max_side,
                         max_pixels=MAX_PIXELS) if streaming else None
    t0 = time.perf_counter()
    status = scrape_manifest(manifest, out / "raw", status_path=out / "scrape_status.parquet",
                             target_dir=images_dir, settings=settings, workers=threads,
                             progress=False, on_fetched=on_fetched, processes=processes)
    t1 = time.perf_counter()
    ok = status[status["status"] == OK]
    records = pd.DataFrame({
        "image_id": ok["url"].to_numpy(), "source": "bench",
        "path": [f"raw/{p}" for p in ok["path"]],  # status paths are relative to raw/
        "split": None,
    })
    result = build_catalog(records, layout, max_side=max_side, max_pixels=MAX_PIXELS, seed=0,
                           split_fractions={"train": 0.8, "val": 0.1, "test": 0.1},
                           workers=workers, progress=False)
    write_catalog(result, layout)
    t2 = time.perf_counter()
    return {"downloaded": len(ok), "catalogued": len(result.catalog),
            "quarantined": len(result.quarantine), "download_s": t1 - t0,
            "catalog_s": t2 - t1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--urls", type=Path, required=True, help="CSV with a url column")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-side", type=int, default=256)
    parser.add_argument("--threads", type=int, default=4, help="download threads per process")
    parser.add_argument("--processes", type=int, default=1,
                        help="download processes (the GIL caps one at a few hundred files/s)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--two-pass", action="store_true",
                        help="download all first, then catalog (as the pipeline assets do)")
    args = parser.parse_args()
    print(json.dumps(ingest(args.urls, args.out, max_side=args.max_side, threads=args.threads,
                            workers=args.workers, streaming=not args.two_pass,
                            processes=args.processes)))


if __name__ == "__main__":
    main()
