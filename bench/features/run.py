"""Feature-extraction benchmark: global features at 256 px vs a plain decode-only loop.

Both read the same JPEGs (N photos normalised like the catalog's copies: RGB, longest side 512,
quality 92, the size of real Oxford pets' ~500x375), alternating for --runs rounds in one process,
through the same decode path (lenslab.style.extraction.load_image: libjpeg DCT scaling + resize to
256).
Reports median images/s of
(1) decode-only: a plain loop over load_image, nothing else;
(2) features: lenslab.style.extraction.extract, i.e. the same decode + global_features +
seed_features
    on uint8 batches, --threads workers each decoding and computing its own batches;
and their ratio (target >= 0.8). Writes bench/out/features/results.json.

    python bench/features/run.py                   # 1,000 photos, 3 rounds
    python bench/features/run.py --images 200 --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
OUT = REPO / "bench" / "out" / "features"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE.parent / "ingest"))

from images import make_photos  # noqa: E402

from lenslab.style.extraction import extract, load_image  # noqa: E402


def normalised_copies(folder: Path, n: int) -> list[Path]:
    """The catalog's normalisation (longest side 512, q92) of the ingest benchmark's photos."""
    raw = folder / "raw"
    names = make_photos(raw, n)
    paths = []
    for name in names:
        dest = folder / "normalised" / name
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(raw / name) as image:
                image.thumbnail((512, 512), Image.Resampling.BILINEAR)
                image.convert("RGB").save(dest, quality=92)
        paths.append(dest)
    return paths


def decode_only(paths: list[Path], size: int) -> tuple[float, float]:
    """(images/s, process CPU ms per image) of a plain loop over load_image."""
    start, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        load_image(path, size)
    return (len(paths) / (time.perf_counter() - start),
            1000 * (time.process_time() - cpu) / len(paths))


def features(paths: list[Path], size: int, batch_size: int, threads: int) -> tuple[float, float]:
    """(images/s, process CPU ms per image, all threads) of extract."""
    cpu = time.process_time()
    rate = extract(paths, size=size, batch_size=batch_size, threads=threads).images_per_s
    return rate, 1000 * (time.process_time() - cpu) / len(paths)


def cores_free(seconds: float = 0.5) -> float:
    """CPU cores this process gets right now: two GIL-free threads multiplying matrices, CPU
    time over wall time (2.0 on an idle 2-core machine; the features' workers can use no more)."""
    a = torch.rand(512, 512)

    def busy() -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            a @ a

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: busy(), range(2)))
    torch.set_num_threads(threads)
    return (time.process_time() - cpu) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64,
                        help="images per batch (on CPU extract caps it at 8)")
    parser.add_argument("--threads", type=int, default=2,
                        help="feature workers (each decodes and computes its batches)")
    args = parser.parse_args()

    paths = normalised_copies(OUT / "photos", args.images)
    features(paths[: args.batch_size], args.size, args.batch_size, args.threads)  # warm-up
    decode, feats, decode_cpu, feats_cpu = [], [], [], []
    load, cores = [os.getloadavg()[0]], [cores_free()]
    for _ in range(args.runs):  # alternate, so load drifts hit both alike
        for rates, cpus, (rate, cpu) in (
                (decode, decode_cpu, decode_only(paths, args.size)),
                (feats, feats_cpu, features(paths, args.size, args.batch_size, args.threads))):
            rates.append(rate)
            cpus.append(cpu)
    load.append(os.getloadavg()[0])
    cores.append(cores_free())
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"torch {torch.__version__} ({torch.get_num_threads()} threads)",
        "images": args.images, "runs": args.runs, "size": args.size,
        "batch_size": args.batch_size, "decode_threads": args.threads,
        "decode_only_images_per_s": decode, "features_images_per_s": feats,
        "decode_only_median": statistics.median(decode),
        "features_median": statistics.median(feats),
        "ratio": statistics.median(feats) / statistics.median(decode),
        # the machine is shared: its 1-minute load and the cores free to this process before
        # and after, and the CPU time each loop spent per image (all threads), which load
        # changes far less than images/s
        "load_average_before_after": load,
        "cores_free_before_after": cores,
        "decode_only_cpu_ms_per_image": statistics.median(decode_cpu),
        "features_cpu_ms_per_image": statistics.median(feats_cpu),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(result, indent=2))
    print(f"decode-only {result['decode_only_median']:.1f} img/s, features "
          f"{result['features_median']:.1f} img/s, ratio {result['ratio']:.2f} (target >= 0.8); "
          f"CPU ms/image {result['decode_only_cpu_ms_per_image']:.2f} vs "
          f"{result['features_cpu_ms_per_image']:.2f}; load {load[0]:.1f} -> {load[1]:.1f}, "
          f"cores free {cores[0]:.2f} -> {cores[1]:.2f}")


if __name__ == "__main__":
    main()
