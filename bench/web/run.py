"""The photobook web page under load on loopback, with hostile uploads in the mix.

    .venv/bin/python bench/web/run.py [--clients 20] [--seconds 30] [--max-requests 4000]

Builds what the page loads the way its tests do (``tests/support/photobook_rater.py``: rater
artefacts with a seeded vector for the MobileNetV2 encoder at ``photobook.image_size``), serves
it with uvicorn in a separate process (``python -m lenslab.web.photobook``, default limits: 10 MiB
and 50 MP per photo, 100 MP decoded per request, 2 decode slots), then runs ``--clients``
concurrent clients for ``--seconds``, each cycling through good two-photo comparisons, albums of
8 photos and every bad upload below, with a per-request timeout; the run stops at the deadline or
after ``--max-requests`` requests, whichever is first. It samples the server's resident memory
every 50 ms and reads its peak (``VmHWM`` in ``/proc/<pid>/status``) at the end.

Prints JSON: per request kind the count, statuses as the client saw them, p50/p95 latency;
errors by status; 5xx and client-side failures (timeouts, resets); what the server answered (its
access log) and any traceback it logged; the server's peak RSS. The chunked 1 GiB upload is
answered 413 after the cap and a bounded drain, and the connection is closed on the rest of its
body: a client still sending then sees a reset (``ReadError``) rather than the 413, which the
server's own count shows.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from skimage import data as skdata

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from lenslab.params import load_params  # noqa: E402
from tests.support.photobook_rater import write_rater  # noqa: E402

MiB = 2**20


def _encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    import struct

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                                0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def _flipped_scan(jpeg: bytes) -> bytes:
    damaged = bytearray(jpeg)
    start = jpeg.index(b"\xff\xda") + 2000
    for i in range(start, start + 200):
        damaged[i] ^= 0xFF
    return bytes(damaged)


def payloads() -> dict[str, bytes]:
    photos = {n: _encode(Image.fromarray(f()), "JPEG", quality=90)
              for n, f in (("astronaut", skdata.astronaut), ("cat", skdata.chelsea),
                           ("coffee", skdata.coffee), ("camera", skdata.camera))}
    noise = np.random.default_rng(0).integers(0, 256, (2200, 2200, 3), dtype=np.uint8)
    # 49 MP of flat colour: a PNG of ~150 KB, under the per-photo limits, that decodes to 147 MB
    flat = _encode(Image.new("RGB", (7000, 7000), (120, 140, 160)), "PNG", optimize=False)
    return {**photos, "text": b"these are my holiday notes, not a photo\n",
            "truncated": photos["astronaut"][:len(photos["astronaut"]) // 2],
            "corrupt_scan": _flipped_scan(photos["astronaut"]),
            "eps": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
            "bomb_header": _png_header_only(40_000, 40_000),
            "oversize": _encode(Image.fromarray(noise), "PNG"),  # > 10 MiB of incompressible
            "flat_49mp": flat, "empty": b""}


def _file(field: str, name: str, data: bytes) -> tuple[str, tuple[str, bytes, str]]:
    return field, (name, data, "application/octet-stream")


async def _endless(total: int) -> AsyncIterator[bytes]:
    boundary = "benchboundary"
    yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"photo_a\"; "
           f"filename=\"endless.jpg\"\r\n\r\n").encode()
    block = b"\0" * 65536
    for _ in range(total // len(block)):
        yield block
    yield f"\r\n--{boundary}--\r\n".encode()


def requests_mix(p: dict[str, bytes]) -> list[tuple[str, int, int, Callable]]:
    """(kind, weight, expected status, coroutine factory taking a client) of each request."""
    def compare(a: str, b: str, **data):
        files = [_file("photo_a", f"{a}.jpg", p[a]), _file("photo_b", f"{b}.jpg", p[b])]
        return lambda c: c.post("/compare", files=files, data={"vector": "learned", **data})

    def album(names: list[str], places: int = 3):
        files = [_file("photos", f"{k}_{n}.jpg", p[n]) for k, n in enumerate(names)]
        return lambda c: c.post("/album", files=files, data={"places": str(places)})

    good = ["astronaut", "cat", "coffee", "camera"]
    return [
        ("compare_good", 10, 200, compare("astronaut", "cat")),
        ("album_good_8", 3, 200, album(good * 2)),
        ("not_an_image", 1, 415, compare("text", "cat")),
        ("eps", 1, 415, compare("eps", "cat")),
        ("truncated_jpeg", 1, 422, compare("truncated", "cat")),
        ("corrupt_scan_jpeg", 1, 422, compare("corrupt_scan", "cat")),
        ("empty_file", 1, 400, compare("empty", "cat")),
        ("pixel_bomb_header", 1, 413, compare("bomb_header", "cat")),
        ("oversize_photo", 1, 413, compare("oversize", "cat")),
        ("chunked_1GiB", 1, 413, lambda c: c.post(
            "/compare", content=_endless(2**30),
            headers={"content-type": "multipart/form-data; boundary=benchboundary"})),
        ("pixel_budget_3x49MP", 1, 413, album(["flat_49mp"] * 3, 1)),
        ("too_many_photos_41", 1, 400, album(["cat"] * 41, 2)),
        ("second_photo_missing", 1, 400, lambda c: c.post(
            "/compare", files=[_file("photo_a", "a.jpg", p["cat"])])),
        ("unknown_vector", 1, 400, compare("cat", "astronaut", vector="nope")),
        ("not_multipart", 1, 415, lambda c: c.post("/compare", data={"photo_a": "x"})),
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


async def run_load(url: str, pid: int, clients: int, seconds: float, max_requests: int,
                   timeout_s: float) -> dict:
    mix = requests_mix(payloads())
    schedule = [entry for entry in mix for _ in range(entry[1])]
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter] = defaultdict(Counter)
    unexpected: list[tuple[str, str]] = []
    deadline = time.monotonic() + seconds
    issued = 0
    samples: list[int] = []

    async def sample() -> None:
        while time.monotonic() < deadline:
            samples.append(rss_kib(pid, "VmRSS"))
            await asyncio.sleep(0.05)

    async def client(k: int) -> None:
        nonlocal issued
        async with httpx.AsyncClient(base_url=url, timeout=timeout_s) as c:
            i = k * 7  # clients start at different places in the schedule
            while time.monotonic() < deadline and issued < max_requests:
                issued += 1
                kind, _, expected, make = schedule[i % len(schedule)]
                i += 1
                start = time.perf_counter()
                try:
                    r = await make(c)
                    status = str(r.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                latencies[kind].append((time.perf_counter() - start) * 1000)
                statuses[kind][status] += 1
                if status != str(expected):
                    unexpected.append((kind, status))

    started = time.monotonic()
    await asyncio.gather(sample(), *(client(k) for k in range(clients)))
    wall = time.monotonic() - started
    per_kind = {kind: {"n": len(latencies[kind]), "expected": expected,
                       "statuses": dict(statuses[kind]),
                       "p50_ms": round(float(np.percentile(latencies[kind], 50)), 1),
                       "p95_ms": round(float(np.percentile(latencies[kind], 95)), 1)}
                for kind, _, expected, _ in mix if latencies[kind]}
    everything = Counter()
    for c in statuses.values():
        everything.update(c)
    return {"requests": sum(len(v) for v in latencies.values()), "wall_s": round(wall, 1),
            "by_status": dict(sorted(everything.items())),
            "5xx": sum(n for s, n in everything.items() if s.startswith("5")),
            "unexpected": dict(Counter(f"{k}:{s}" for k, s in unexpected)),
            "rss_samples_max_mib": round(max(samples) / 1024, 1) if samples else None,
            "per_kind": per_kind}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--max-requests", type=int, default=4000)
    ap.add_argument("--timeout", type=float, default=60, help="per request (s)")
    args = ap.parse_args()
    image_size = int(load_params()["photobook"]["image_size"])
    with tempfile.TemporaryDirectory() as tmp:
        from models.photobook.encoders import MlspEncoder

        dim = MlspEncoder(image_size).encode_images([Image.new("RGB", (8, 8))]).shape[1]
        write_rater(Path(tmp), dim, image_size)
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        log_path = Path(tmp) / "server.log"  # uvicorn's access log: what the server answered
        with open(log_path, "w") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "lenslab.web.photobook", "--data-root", tmp, "--port",
                 str(port)], env=env, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(url + "/health", timeout=1).text == "ok":
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("the server did not start")
            idle = rss_kib(server.pid, "VmRSS")
            result = asyncio.run(run_load(url, server.pid, args.clients, args.seconds,
                                          args.max_requests, args.timeout))
            peak = rss_kib(server.pid, "VmHWM")
            alive = httpx.get(url + "/health", timeout=5).text == "ok"
        finally:
            server.terminate()
            server.wait(timeout=30)
        text = log_path.read_text()
        answered = Counter(m.group(1) for m in re.finditer(
            r'"POST /(?:compare|album) HTTP/1.1" (\d{3})', text))
        tracebacks = text.count("Traceback")
    print(json.dumps({"clients": args.clients, "seconds": args.seconds,
                      "machine": f"{os.cpu_count()} CPUs, {platform.processor() or 'cpu'}",
                      "server_idle_rss_mib": round(idle / 1024, 1),
                      "server_peak_rss_mib": round(peak / 1024, 1),
                      "server_alive_after": alive,
                      "server_answered": dict(sorted(answered.items())),
                      "server_tracebacks": tracebacks, **result}, indent=1))


if __name__ == "__main__":
    main()
