"""Ingestion benchmark: lenslab vs img2dataset on the same photos from the same loopback server.

Serves N 640x480 JPEGs from a separate server process on 127.0.0.1 and ingests them with
(1) lenslab's own scraper + catalog (download, validate, hash, normalise to <= 256 px, catalog
rows) and (2) img2dataset (resize 256, 2 processes) in its own virtual environment, alternating
the two for --runs rounds. Reports median images/s and peak memory (RSS summed over the
process tree, sampled every 20 ms) and writes bench/out/ingest/results.json.

    python bench/ingest/run.py                      # 2,000 photos, 3 rounds
    python bench/ingest/run.py --images 200 --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
OUT = REPO / "bench" / "out" / "ingest"
sys.path.insert(0, str(HERE))

from images import make_photos  # noqa: E402

IMG2DATASET_VERSION = "1.47.0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(cmd: list[str], cwd: Path, env: dict | None = None) -> dict:
    """Run ``cmd``; wall time and peak RSS of its whole process tree."""
    start = time.perf_counter()
    proc = psutil.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                procs = [proc, *proc.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return {"wall_s": wall, "peak_rss_mib": peak / 2**20, "stdout": stdout}


def img2dataset_venv() -> Path:
    """img2dataset in its own virtual environment (its pins clash with ours)."""
    venv = OUT.parent / "img2dataset-venv"
    exe = venv / "bin" / "img2dataset"
    if not exe.exists():
        py = shutil.which("python3.11") or sys.executable
        subprocess.run([py, "-m", "uv", "venv", "-q", str(venv), "-p", py], check=True)
        subprocess.run([py, "-m", "uv", "pip", "install", "-q", "-p", str(venv / "bin/python"),
                        f"img2dataset=={IMG2DATASET_VERSION}"], check=True)
    return exe


def run_lenslab(urls_csv: Path, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    result = measure([sys.executable, str(HERE / "lenslab_ingest.py"), "--urls", str(urls_csv),
                      "--out", str(out)], cwd=REPO)
    detail = json.loads(result.pop("stdout").strip().splitlines()[-1])
    return {**result, "images": detail["catalogued"], **detail}


def run_img2dataset(exe: Path, urls_txt: Path, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    result = measure([str(exe), "--url_list", str(urls_txt), "--output_folder", str(out),
                      "--processes_count", "2", "--thread_count", "32", "--image_size", "256",
                      "--resize_mode", "keep_ratio", "--output_format", "files",
                      "--enable_wandb", "False", "--disallowed_header_directives", "[]"],
                     cwd=REPO, env=env)
    result.pop("stdout")
    images = len(list(out.rglob("*.jpg")))
    return {**result, "images": images}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    photos = OUT / "photos"
    names = make_photos(photos, args.images)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                               "127.0.0.1", "--directory", str(photos)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        urls = [f"http://127.0.0.1:{port}/{n}" for n in names]
        (OUT / "urls.txt").write_text("\n".join(urls) + "\n")
        (OUT / "urls.csv").write_text("url\n" + "\n".join(urls) + "\n")
        exe = img2dataset_venv()
        rounds: dict[str, list[dict]] = {"lenslab": [], "img2dataset": []}
        for i in range(args.runs):
            rounds["lenslab"].append(run_lenslab(OUT / "urls.csv", OUT / "lenslab_out"))
            rounds["img2dataset"].append(run_img2dataset(exe, OUT / "urls.txt", OUT / "i2d_out"))
            for tool, rs in rounds.items():
                r = rs[-1]
                print(f"round {i + 1} {tool:12s} {r['images']} images in {r['wall_s']:.2f} s "
                      f"= {r['images'] / r['wall_s']:.0f} img/s, peak {r['peak_rss_mib']:.0f} MiB")
    finally:
        server.terminate()
        server.wait()

    summary = {}
    for tool, rs in rounds.items():
        summary[tool] = {
            "images_per_s_median": statistics.median(r["images"] / r["wall_s"] for r in rs),
            "wall_s_median": statistics.median(r["wall_s"] for r in rs),
            "peak_rss_mib_max": max(r["peak_rss_mib"] for r in rs),
            "images": rs[-1]["images"],
        }
    ratio = (summary["lenslab"]["images_per_s_median"]
             / summary["img2dataset"]["images_per_s_median"])
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}",
        "photos": args.images, "runs": args.runs, "summary": summary,
        "speedup_vs_img2dataset": ratio, "rounds": rounds,
    }
    (OUT / "results.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({"summary": summary, "speedup_vs_img2dataset": round(ratio, 2)}, indent=2))


if __name__ == "__main__":
    main()
