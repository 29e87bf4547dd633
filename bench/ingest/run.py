"""Ingestion benchmark: lenslab vs img2dataset on the same photos from the same loopback server.

Serves N 640x480 JPEGs from nginx (Debian's nginx-light, started here on 127.0.0.1 with its own
configuration and stopped after; Python's http.server as a second, slower row with --servers)
and ingests them with
(1) lenslab's own scraper + catalog (download, validate, hash, normalise to <= 256 px, catalog
rows) and (2) img2dataset (resize 256, 2 processes) in its own virtual environment, alternating
the two for --runs rounds. Reports median images/s and peak memory (RSS summed over the
process tree, sampled every 20 ms) and writes bench/out/ingest/results.json.

    python bench/ingest/run.py                      # 2,000 photos, 3 rounds, nginx
    python bench/ingest/run.py --images 200 --runs 1
    python bench/ingest/run.py --servers nginx http.server

Beside both tools it measures the CPU floor on the same photos: read, hash, decode, resize to
<= 256 px and encode one photo at a time on one core, times the cores (no tool can ingest
faster than that without skipping work).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
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


@contextlib.contextmanager
def serve(server: str, root: Path, port: int):
    """``root`` over HTTP on 127.0.0.1:``port`` from nginx or Python's http.server."""
    if server == "nginx":
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(nginx).exists():
            raise SystemExit("nginx not found: scripts/install_system_packages.sh installs "
                             "Debian's nginx-light")
        prefix = OUT / "nginx"
        prefix.mkdir(parents=True, exist_ok=True)
        temp = "".join(f"    {name}_temp_path {prefix / name};\n"
                       for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf = prefix / "nginx.conf"
        conf.write_text(
            f"worker_processes 1;\npid {prefix / 'nginx.pid'};\n"
            f"error_log {prefix / 'error.log'} warn;\nevents {{ worker_connections 1024; }}\n"
            "http {\n    access_log off;\n    sendfile on;\n    tcp_nopush on;\n"
            "    keepalive_requests 100000;\n    types { image/jpeg jpg; }\n"
            f"{temp}    server {{\n        listen 127.0.0.1:{port};\n        root {root};\n"
            "    }\n}\n")
        cmd = [nginx, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]
    elif server == "http.server":
        cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
               "--directory", str(root)]
    else:
        raise ValueError(server)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:  # until it answers
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{server} did not start: {proc.stderr.read().decode()[-500:]}")
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait()


def cpu_floor(photos: Path, names: list[str], max_side: int = 256, sample: int = 300) -> dict:
    """Images/s of the work every tool must do, on one core, times the cores."""
    from PIL import Image

    chosen = names[:sample]
    start = time.process_time()
    for name in chosen:
        data = (photos / name).read_bytes()
        hashlib.sha256(data).hexdigest()
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (max_side, max_side))  # what a JPEG decoder may skip, both tools do
            im = im.convert("RGB")
            im.thumbnail((max_side, max_side))
            im.save(io.BytesIO(), format="JPEG", quality=90)
    per_core = len(chosen) / (time.process_time() - start)
    cores = os.cpu_count() or 1
    return {"images_per_s_per_core": per_core, "cores": cores,
            "images_per_s": per_core * cores}


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
    parser.add_argument("--servers", nargs="+", default=["nginx"],
                        choices=["nginx", "http.server"], help="web servers, one block each")
    args = parser.parse_args()

    photos = OUT / "photos"
    names = make_photos(photos, args.images)
    exe = img2dataset_venv()
    floor = cpu_floor(photos, names)
    print(f"CPU floor: {floor['images_per_s']:.0f} img/s ({floor['images_per_s_per_core']:.0f} "
          f"per core x {floor['cores']})")
    by_server = {}
    for server in args.servers:
        port = free_port()
        rounds: dict[str, list[dict]] = {"lenslab": [], "img2dataset": []}
        with serve(server, photos, port):
            urls = [f"http://127.0.0.1:{port}/{n}" for n in names]
            (OUT / "urls.txt").write_text("\n".join(urls) + "\n")
            (OUT / "urls.csv").write_text("url\n" + "\n".join(urls) + "\n")
            for i in range(args.runs):  # alternating, so load drifts hit both tools alike
                rounds["lenslab"].append(run_lenslab(OUT / "urls.csv", OUT / "lenslab_out"))
                rounds["img2dataset"].append(run_img2dataset(exe, OUT / "urls.txt",
                                                             OUT / "i2d_out"))
                for tool, rs in rounds.items():
                    r = rs[-1]
                    print(f"{server} round {i + 1} {tool:12s} {r['images']} images in "
                          f"{r['wall_s']:.2f} s = {r['images'] / r['wall_s']:.0f} img/s, "
                          f"peak {r['peak_rss_mib']:.0f} MiB")
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
        by_server[server] = {"summary": summary, "speedup_vs_img2dataset": ratio,
                             "rounds": rounds}
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}",
        "photos": args.images, "runs": args.runs, "cpu_floor": floor, "servers": by_server,
    }
    (OUT / "results.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({"cpu_floor_images_per_s": round(floor["images_per_s"]),
                      **{server: {"summary": r["summary"],
                                  "speedup_vs_img2dataset": round(r["speedup_vs_img2dataset"], 2)}
                         for server, r in by_server.items()}}, indent=2))


if __name__ == "__main__":
    main()
