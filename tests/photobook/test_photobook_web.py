"""The photobook web page in a real headless Chromium, and its answers to bad uploads."""

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from lenslab.photobook.rating import PhotobookLayout
from lenslab.web.photobook import Limits, create_app, decode, sniff
from models.photobook.encoders import MLSP_STAGES, MlspEncoder
from tests.support.browser import live_server

MAX_BYTES = 150_000


def _jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def write_rater(root: Path, dim: int) -> None:
    """Rater artefacts in the layout photobook_rater writes, with a seeded random learned vector
    (the model itself is tested in test_photobook.py; here only the page is)."""
    layout = PhotobookLayout(root)
    r = np.random.default_rng(0)
    layout.vectors_dir.mkdir(parents=True)
    np.savez(layout.vectors, mean=np.zeros(dim), std=np.ones(dim),
             vector_learned=r.normal(size=dim) / np.sqrt(dim),
             vector_seed_ranksvm=r.normal(size=dim) / np.sqrt(dim))
    layout.provenance.write_text(json.dumps({"vectors": {}}))
    layout.rater_dir.mkdir(parents=True)
    entry = {"available": True, "scale": 1.0}
    layout.rater.write_text(json.dumps({
        "encoder": {"encoder": "mobilenet_v2_mlsp", "image_size": 64, "pretrained": True},
        "duplicate_threshold": 0.6,
        "vectors": {"learned": {**entry, "description": "learned from preference pairs"},
                    "seed_ranksvm": {**entry, "description": "seed's RankSVM (baseline)"},
                    "prompt_appealing": {"available": False, "description": "prompt"}}}))


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    encoder = MlspEncoder(64)
    dim = encoder.encode_images([Image.new("RGB", (8, 8))]).shape[1]
    root = tmp_path_factory.mktemp("photobook")
    write_rater(root, dim)
    app = create_app(root, Limits(max_bytes=MAX_BYTES, max_photos=6), encoder=encoder)
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


def test_sniff_and_decode_judge_content_not_names():
    assert sniff(_jpeg(skdata.camera())) == "JPEG"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "WEBP"
    assert sniff(b"GIF89a") is None
    with pytest.raises(Exception, match="truncated or corrupt"):
        decode("x.jpg", _jpeg(skdata.camera())[:2000], Limits())


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
    shot = Path("test-artifacts") / "photobook_compare.png"
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
    cases = [("notes.jpg", "cat.jpg", 415, "not a JPEG, PNG or WebP"),
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
