"""The photobook web page in a real headless Chromium, and its answers to bad uploads."""

import asyncio
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from lenslab.web.photobook import Limits, UploadError, create_app, decode
from models.photobook.encoders import MLSP_STAGES, MlspEncoder
from tests.support.browser import SCREENSHOTS, live_server
from tests.support.photobook_rater import write_rater

MAX_BYTES = 150_000


def _jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def rater_root(tmp_path_factory) -> tuple[Path, MlspEncoder]:
    encoder = MlspEncoder(64)
    dim = encoder.encode_images([Image.new("RGB", (8, 8))]).shape[1]
    root = tmp_path_factory.mktemp("photobook")
    write_rater(root, dim)
    return root, encoder


@pytest.fixture(scope="module")
def app(rater_root):
    root, encoder = rater_root
    return create_app(root, Limits(max_bytes=MAX_BYTES, max_photos=6), encoder=encoder)


@pytest.fixture(scope="module")
def app_url(app):
    with live_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("uploads")
    astronaut = _jpeg(skdata.astronaut())
    files = {"astronaut.jpg": astronaut, "cat.jpg": _jpeg(skdata.chelsea()),
             "coffee.png": None, "notes.jpg": b"these are my holiday notes, not a photo\n",
             "truncated.jpg": astronaut[: len(astronaut) // 2],
             "huge.jpg": _jpeg(np.random.default_rng(0).integers(0, 256, (512, 512, 3),
                                                                  dtype=np.uint8), 100)}
    paths = {}
    for name, content in files.items():
        paths[name] = folder / name
        if content is None:
            Image.fromarray(skdata.coffee()).resize((200, 133)).save(paths[name], "PNG")
        else:
            paths[name].write_bytes(content)
    assert paths["huge.jpg"].stat().st_size > MAX_BYTES
    assert max(paths[n].stat().st_size for n in ("astronaut.jpg", "cat.jpg", "coffee.png")) \
        < MAX_BYTES
    assert len(MLSP_STAGES) == 6
    return paths


def test_decode_judges_content_not_names():
    camera = _jpeg(skdata.camera())
    assert decode("camera.png", camera, Limits()).size == (512, 512)
    for name, data, status, message in [
            ("notes.jpg", b"holiday notes\n", 415, "not a JPEG, PNG, GIF, WebP"),
            ("drawing.jpg", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", 415,
             "unsupported format: PostScript"),
            ("cut.jpg", camera[:2000], 422, "truncated or corrupt"),
            ("empty.jpg", b"", 400, "empty")]:
        with pytest.raises(UploadError, match=message) as caught:
            decode(name, data, Limits())
        assert caught.value.status == status


def test_browser_compares_two_photos_and_reads_both_probabilities(page, app_url, photo_files):
    page.goto(app_url)
    page.set_input_files("#photo_a", str(photo_files["astronaut.jpg"]))
    page.set_input_files("#photo_b", str(photo_files["coffee.png"]))
    page.select_option("#vector", "learned")
    with page.expect_navigation():
        page.click("#compare")
    p0, p1 = (float(page.inner_text(f"#p{k}")) for k in (0, 1))
    assert 0 <= p0 <= 1 and p0 + p1 == pytest.approx(1, abs=2e-3)
    assert "astronaut.jpg" in page.inner_text("#result")
    shot = SCREENSHOTS / "photobook_compare.png"
    shot.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    # the other master vector gives other probabilities
    page.set_input_files("#photo_a", str(photo_files["astronaut.jpg"]))
    page.set_input_files("#photo_b", str(photo_files["coffee.png"]))
    page.select_option("#vector", "seed_ranksvm")
    with page.expect_navigation():
        page.click("#compare")
    assert float(page.inner_text("#p0")) != pytest.approx(p0, abs=1e-6)


def test_browser_picks_an_album(page, app_url, photo_files):
    page.goto(app_url)
    page.set_input_files("#photos", [str(photo_files[n]) for n in
                                     ("astronaut.jpg", "cat.jpg", "coffee.png")])
    page.fill("#places", "2")
    with page.expect_navigation():
        page.click("#make-album")
    rows = page.locator("#album tr.chosen")
    assert rows.count() == 2
    assert "rank" in page.inner_text("#album")


def test_bad_uploads_get_a_clear_message_and_4xx_then_a_good_request_works(page, app_url,
                                                                         photo_files):
    cases = [("notes.jpg", "cat.jpg", 415, "not a JPEG, PNG, GIF, WebP"),
             ("huge.jpg", "cat.jpg", 413, "over the limit"),
             ("truncated.jpg", "cat.jpg", 422, "truncated or corrupt"),
             ("astronaut.jpg", None, 400, "second photo is missing")]
    for first, second, status, message in cases:
        page.goto(app_url)
        page.set_input_files("#photo_a", str(photo_files[first]))
        if second:
            page.set_input_files("#photo_b", str(photo_files[second]))
        with page.expect_navigation() as nav:
            page.click("#compare")
        assert nav.value.status == status, (first, second)
        error = page.inner_text("#error")
        assert message in error and (first in error or "photo" in error)

    # the server kept serving: a good request still works, in the browser and from a client
    page.goto(app_url)
    page.set_input_files("#photo_a", str(photo_files["cat.jpg"]))
    page.set_input_files("#photo_b", str(photo_files["astronaut.jpg"]))
    with page.expect_navigation() as nav:
        page.click("#compare")
    assert nav.value.status == 200 and re.fullmatch(r"0\.\d{3}|1\.000",
                                                    page.inner_text("#p0"))


def test_request_limits_hold_outside_the_browser(app_url, photo_files):
    import httpx

    cat = photo_files["cat.jpg"].read_bytes()
    with httpx.Client(base_url=app_url, timeout=60) as client:
        too_many = [("photos", (f"{i}.jpg", cat, "image/jpeg")) for i in range(7)]
        r = client.post("/album", files=too_many, data={"places": "2"})
        assert r.status_code in (400, 413) and 'id="error"' in r.text
        r = client.post("/compare", files={"photo_a": ("a.jpg", cat, "image/jpeg"),
                                           "photo_b": ("b.jpg", cat, "image/jpeg")},
                        data={"vector": "nope"})
        assert r.status_code == 400 and "unknown master vector" in r.text
        assert client.get("/health").text == "ok"


# ------------------------------------------------------------------- limits while streaming
BOUNDARY = "lenslabboundary"
CHUNK = 64 * 1024


def _part_head(field: str, filename: str) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()


def _endless_photo(field: str = "photo_a", total: int = 64 * 2**20):
    """A multipart body whose one photo goes on for ``total`` bytes, made lazily."""
    yield _part_head(field, "endless.jpg") + b"\xff\xd8\xff\xe0"
    for _ in range(total // CHUNK):
        yield b"\0" * CHUNK
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


async def _post(app, path: str, chunks, headers: dict[str, str]) -> tuple[int, int, bytes]:
    """Drive the ASGI app as uvicorn does; (status, request bytes it pulled, body). The response
    headers land in ``_post.headers``."""
    chunks = iter(chunks)
    pulled = 0
    status, body = [], []

    async def receive() -> dict:
        nonlocal pulled
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
            _post.headers = dict(message["headers"])
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    await app(scope, receive, send)
    return status[0], pulled, b"".join(body)


@pytest.fixture
def spooled(monkeypatch) -> list[int]:
    """Bytes written into the multipart parser's spool files (memory, then disk)."""
    from tempfile import SpooledTemporaryFile

    import starlette.formparsers

    written = [0]

    class Recording(SpooledTemporaryFile):
        def write(self, data: bytes) -> int:
            written[0] += len(data)
            return super().write(data)

    monkeypatch.setattr(starlette.formparsers, "SpooledTemporaryFile", Recording)
    return written


def _run(coro):
    """Run a coroutine on its own loop in a thread (Playwright's sync API owns this thread's)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def test_a_chunked_body_past_the_cap_is_refused_as_it_streams(app, spooled):
    """No Content-Length (chunked): the server stops using the body one chunk past the cap, so
    a 64 MiB 'photo' never reaches memory or the spool file beyond the cap; it then drops a
    bounded amount more (so a client that has finished sending reads its 413) and closes."""
    from lenslab.web.photobook import DRAIN_BYTES

    status, pulled, body = _run(_post(app, "/compare", _endless_photo(), MULTIPART))
    cap = Limits(max_bytes=MAX_BYTES).request_cap(2)
    assert status == 413 and b"over the limit" in body
    assert 0 < spooled[0] <= cap
    assert pulled <= cap + CHUNK + DRAIN_BYTES + CHUNK, pulled
    assert _post.headers[b"connection"] == b"close"


def test_a_body_just_past_the_cap_is_drained_so_the_client_reads_its_413(app, spooled):
    status, pulled, _ = _run(_post(app, "/compare", _endless_photo(total=2 * 2**20), MULTIPART))
    assert status == 413 and pulled > 2 * 2**20  # read to its end, dropped, not spooled
    assert spooled[0] <= Limits(max_bytes=MAX_BYTES).request_cap(2)
    assert b"connection" not in _post.headers


def test_each_photo_is_measured_while_its_part_streams(app, spooled):
    """One photo over the per-photo limit is refused when its bytes pass the limit, not after
    the whole request (here the album's cap, 6 photos' worth, would allow far more)."""
    status, _, body = _run(_post(app, "/album", _endless_photo("photos", 3 * MAX_BYTES),
                                 MULTIPART))
    assert status == 413 and b"endless.jpg: over the limit of 150,000 bytes" in body
    assert spooled[0] <= MAX_BYTES


def test_a_lying_or_missing_length_and_a_non_multipart_body_are_refused(app):
    form = [_part_head("photo_a", "a.jpg") + b"x\r\n" + f"--{BOUNDARY}--\r\n".encode()]
    status, _, _ = _run(_post(app, "/compare", iter(form),
                                     {**MULTIPART, "content-length": "10000000000"}))
    assert status == 413
    status, _, _ = _run(_post(app, "/compare", iter(form),
                                     {**MULTIPART, "content-length": "-5"}))
    assert status == 413
    status, _, body = _run(_post(app, "/compare", iter([b"photo_a=x"]),
                                        {"content-type": "application/x-www-form-urlencoded"}))
    assert status == 415 and b"multipart/form-data" in body


def test_a_chunked_gigabyte_over_loopback_is_cut_off_quickly(app_url):
    """Through uvicorn and a real socket: the client is answered 413 long before it has sent
    its body (it stops being read; only socket buffers take more than the cap)."""
    import time

    import httpx

    sent = 0

    def body():
        nonlocal sent
        for chunk in _endless_photo(total=2**30):
            sent += len(chunk)
            yield chunk

    start = time.monotonic()
    with httpx.Client(base_url=app_url, timeout=60) as client:
        r = client.post("/compare", content=body(), headers=MULTIPART)
        assert r.status_code == 413 and "over the limit" in r.text
        assert client.get("/health").text == "ok"
    assert time.monotonic() - start < 20
    assert sent < 64 * 2**20, sent  # the cap is 366 KB; the rest is what the sockets buffered


def test_a_request_has_a_budget_of_decoded_pixels(rater_root, tmp_path):
    """Each photo is under the per-photo pixel limit, but together they are over the request's
    budget: refused from the headers, before the photo that would go over is decoded."""
    from starlette.testclient import TestClient

    root, encoder = rater_root
    limits = Limits(max_bytes=MAX_BYTES, max_photos=6, max_pixels=400 * 400,
                    max_request_pixels=2 * 400 * 400)
    photo = io.BytesIO()
    Image.new("RGB", (400, 400), (90, 120, 200)).save(photo, "PNG")
    with TestClient(create_app(root, limits, encoder=encoder)) as client:
        files = [("photos", (f"{k}.png", photo.getvalue(), "image/png")) for k in range(3)]
        r = client.post("/album", files=files, data={"places": "2"})
        assert r.status_code == 413 and "2.png" in r.text and "budget of 320,000" in r.text
        r = client.post("/album", files=files[:2], data={"places": "1"})
        assert r.status_code == 200
