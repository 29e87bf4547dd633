"""Image validation and normalisation on real photos (scikit-image's) and bad files built here."""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from lenslab.errors import DataError
from lenslab.images import (
    ImageInfo,
    inspect_image,
    normalise_image,
    process_batch,
    process_image,
)

MAX_PIXELS = 50_000_000


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def write(path: Path, payload: bytes) -> Path:
    path.write_bytes(payload)
    return path


@pytest.fixture(scope="module")
def cat() -> Image.Image:
    return Image.fromarray(skdata.chelsea())  # 451 x 300 RGB


@pytest.fixture(scope="module")
def cat_jpeg(cat: Image.Image) -> bytes:
    return encode(cat, "JPEG", quality=90)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width x height``; the pixel data is tiny and irrelevant."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def test_jpeg_is_inspected_from_content(tmp_path: Path, cat_jpeg: bytes) -> None:
    path = write(tmp_path / "cat.jpg", cat_jpeg)
    info = inspect_image(path, max_pixels=MAX_PIXELS)
    assert info == ImageInfo("JPEG", "RGB", 451, 300, len(cat_jpeg),
                             hashlib.sha256(cat_jpeg).hexdigest())


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP", "BMP", "TIFF"])
def test_other_formats_named_jpg_are_accepted_with_their_real_format(
        tmp_path: Path, cat: Image.Image, fmt: str) -> None:
    path = write(tmp_path / "Abyssinian_34.jpg", encode(cat, fmt))
    info = inspect_image(path, max_pixels=MAX_PIXELS)
    assert (info.format, info.width, info.height) == (fmt, 451, 300)
    assert normalise_image(path, tmp_path / "out.jpg", max_side=100) == (100, 67)
    with Image.open(tmp_path / "out.jpg") as out:
        assert (out.format, out.mode) == ("JPEG", "RGB")


def flipped_scan(jpeg: bytes) -> bytes:
    """Invert 200 bytes in the middle of the entropy-coded scan (after the SOS marker)."""
    start = jpeg.index(b"\xff\xda") + 2000
    damaged = bytearray(jpeg)
    for i in range(start, start + 200):
        damaged[i] ^= 0xFF
    return bytes(damaged)


BAD_FILES = {
    "zero-byte": (lambda jpeg: b"", "empty file"),
    "text": (lambda jpeg: b"breed,species\nbeagle,dog\n", "not an image: text file"),
    "html": (lambda jpeg: b"<!DOCTYPE html>\n<html><body>404 Not Found</body></html>",
             "HTML page, not an image"),
    "truncated": (lambda jpeg: jpeg[: len(jpeg) // 2], "truncated image"),
    "no-end-marker": (lambda jpeg: jpeg[:-2], "truncated image"),
    "corrupt-scan": (flipped_scan, "corrupt image"),
    "pdf": (lambda jpeg: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "unsupported format: PDF"),
    "random": (lambda jpeg: bytes(range(256)) * 4, "not an image: unrecognised content"),
    "jpeg-header-only": (lambda jpeg: jpeg[:40], "corrupt image"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_are_rejected_with_a_clear_reason(tmp_path: Path, cat_jpeg: bytes,
                                                    case: str) -> None:
    make, reason = BAD_FILES[case]
    path = write(tmp_path / f"{case}.jpg", make(cat_jpeg))
    with pytest.raises(DataError) as caught:
        inspect_image(path, max_pixels=MAX_PIXELS)
    assert caught.value.reason.startswith(reason), caught.value.reason
    assert caught.value.where == str(path)
    with pytest.raises(DataError):  # normalising refuses it too, and writes nothing
        normalise_image(path, tmp_path / "out.jpg", max_side=64)
    assert not (tmp_path / "out.jpg").exists()


def test_truncated_png_is_rejected(tmp_path: Path, cat: Image.Image) -> None:
    png = encode(cat, "PNG")
    path = write(tmp_path / "cut.png", png[: len(png) * 2 // 3])
    with pytest.raises(DataError, match="truncated image"):
        inspect_image(path, max_pixels=MAX_PIXELS)


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing file"):
        inspect_image(tmp_path / "nope.jpg", max_pixels=MAX_PIXELS)


def test_decompression_bomb_over_our_limit(tmp_path: Path, cat_jpeg: bytes) -> None:
    path = write(tmp_path / "cat.jpg", cat_jpeg)
    with pytest.raises(DataError, match="decompression bomb: 451x300 = 135,300 pixels"):
        inspect_image(path, max_pixels=100_000)


def test_png_declaring_a_huge_size_is_a_bomb_without_decoding(tmp_path: Path) -> None:
    path = write(tmp_path / "bomb.png", png_header_only(100_000, 100_000))
    with pytest.raises(DataError, match="decompression bomb"):
        inspect_image(path, max_pixels=MAX_PIXELS)


def test_pillow_bomb_warning_is_an_error_only_inside_the_call(tmp_path: Path) -> None:
    # 10,000 x 10,000 is between Pillow's warning (89 MP) and error (179 MP) thresholds.
    path = write(tmp_path / "bomb.png", png_header_only(10_000, 10_000))
    filters_before = list(warnings.filters)
    with pytest.raises(DataError, match="decompression bomb"):
        inspect_image(path, max_pixels=10**9)
    assert warnings.filters == filters_before
    with warnings.catch_warnings(record=True) as seen:  # outside, Pillow still only warns
        warnings.simplefilter("always")
        Image.open(path).close()
    assert any(issubclass(w.category, Image.DecompressionBombWarning) for w in seen)


def test_exif_orientation_6_is_applied(tmp_path: Path) -> None:
    pixels = np.full((200, 300, 3), 80, np.uint8)
    pixels[:40, :40] = (255, 0, 0)  # stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = write(tmp_path / "phone.jpg", encode(Image.fromarray(pixels), "JPEG", exif=exif))
    assert inspect_image(path, max_pixels=MAX_PIXELS).width == 300  # stored size recorded
    assert normalise_image(path, tmp_path / "up.jpg", max_side=1000) == (200, 300)
    with Image.open(tmp_path / "up.jpg") as out:
        assert out.size == (200, 300)
        red, green, _ = out.getpixel((200 - 10, 10))  # displayed top-right
        assert red > 200 and green < 60


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path, cat: Image.Image) -> None:
    path = write(tmp_path / "print.jpg", encode(cat.convert("CMYK"), "JPEG", quality=95))
    assert inspect_image(path, max_pixels=MAX_PIXELS).mode == "CMYK"
    normalise_image(path, tmp_path / "out.jpg", max_side=512)
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.mode == "RGB"
        assert np.abs(np.asarray(out, np.int16) - np.asarray(cat, np.int16)).mean() < 12


def test_16_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (32, 1))
    path = write(tmp_path / "depth.png", encode(Image.fromarray(ramp), "PNG"))
    assert inspect_image(path, max_pixels=MAX_PIXELS).mode == "I;16"
    normalise_image(path, tmp_path / "out.jpg", max_side=512)
    with Image.open(tmp_path / "out.jpg") as out:
        grey = np.asarray(out)[:, :, 0].astype(int)
    assert out.mode == "RGB"
    assert grey[:, :8].mean() < 10 and grey[:, -8:].mean() > 245
    assert 100 < grey[:, 120:136].mean() < 156  # mid-grey in the middle: scaled, not clipped


def test_transparency_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[:, :20] = (0, 0, 255, 255)  # opaque blue left half, transparent right half
    palette = Image.fromarray(rgba, "RGBA").quantize(colors=4)
    palette.info["transparency"] = palette.getpixel((30, 5))
    cases = {"rgba.png": encode(Image.fromarray(rgba, "RGBA"), "PNG"),
             "palette.png": encode(palette, "PNG", transparency=palette.getpixel((30, 5))),
             "la.png": encode(Image.fromarray(rgba, "RGBA").convert("LA"), "PNG")}
    for name, payload in cases.items():
        path = write(tmp_path / name, payload)
        normalise_image(path, tmp_path / f"{name}.jpg", max_side=512)
        with Image.open(tmp_path / f"{name}.jpg") as out:
            assert out.mode == "RGB", name
            assert min(out.getpixel((35, 20))) > 245, name  # transparent -> white
            assert out.getpixel((5, 20))[0] < 60, name  # opaque stays blue (or dark grey)


@pytest.mark.parametrize("mode", ["L", "1", "P"])
def test_other_modes_become_rgb(tmp_path: Path, cat: Image.Image, mode: str) -> None:
    path = write(tmp_path / "x.png", encode(cat.convert(mode), "PNG"))
    assert normalise_image(path, tmp_path / "x.jpg", max_side=200) == (200, 133)
    with Image.open(tmp_path / "x.jpg") as out:
        assert out.mode == "RGB"


def test_small_images_are_not_enlarged(tmp_path: Path, cat_jpeg: bytes) -> None:
    path = write(tmp_path / "cat.jpg", cat_jpeg)
    assert normalise_image(path, tmp_path / "out.jpg", max_side=4096) == (451, 300)


def test_big_jpeg_is_decoded_at_reduced_scale_but_truncation_is_still_caught(
        tmp_path: Path) -> None:
    big = Image.fromarray(skdata.astronaut()).resize((2048, 2048))
    payload = encode(big, "JPEG", quality=85)
    path = write(tmp_path / "big.jpg", payload)
    assert normalise_image(path, tmp_path / "small.jpg", max_side=128) == (128, 128)
    for name, image in {"rgb.jpg": big, "cmyk.jpg": big.convert("CMYK")}.items():
        whole = encode(image, "JPEG", quality=85)
        cut = write(tmp_path / f"cut-{name}", whole[: len(whole) * 3 // 4])
        with pytest.raises(DataError, match="truncated image"):
            normalise_image(cut, tmp_path / "never.jpg", max_side=128)
    assert not (tmp_path / "never.jpg").exists()


def test_process_image_reads_once_and_skips_existing_copies(tmp_path: Path,
                                                           cat_jpeg: bytes) -> None:
    path = write(tmp_path / "cat.jpg", cat_jpeg)
    dest_for = lambda sha: tmp_path / "norm" / sha[:2] / f"{sha}.jpg"  # noqa: E731
    info, written = process_image(path, dest_for, max_side=64, max_pixels=MAX_PIXELS)
    assert written and info == inspect_image(path, max_pixels=MAX_PIXELS)
    out = dest_for(info.sha256)
    with Image.open(out) as im:
        assert im.size == (64, 43)
    stamp = out.stat().st_mtime_ns
    again, written_again = process_image(path, dest_for, max_side=64, max_pixels=MAX_PIXELS)
    assert (again, written_again) == (info, False)
    assert out.stat().st_mtime_ns == stamp
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary left behind


def test_process_batch_turns_rejections_into_reasons(tmp_path: Path, cat_jpeg: bytes) -> None:
    good = write(tmp_path / "good.jpg", cat_jpeg)
    html = write(tmp_path / "html.jpg", b"<html><head><title>Error</title></head></html>")
    results = process_batch([("g", good), ("h", html), ("m", tmp_path / "missing.jpg")],
                            lambda sha: tmp_path / f"{sha}.jpg", max_side=32,
                            max_pixels=MAX_PIXELS)
    assert [r.key for r in results] == ["g", "h", "m"]
    assert results[0].info is not None and results[0].written
    assert results[1].reason == "HTML page, not an image"
    assert results[1].sha256 == hashlib.sha256(html.read_bytes()).hexdigest()
    assert results[2].reason.startswith("missing file") and results[2].sha256 is None


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto showpage\n"


@pytest.mark.parametrize("case", sorted([*BAD_FILES, "eps"]))
def test_every_entry_point_refuses_the_same_bad_files(tmp_path: Path, cat_jpeg: bytes,
                                                      case: str) -> None:
    """The catalog, the `lenslab` commands and the web page open photos with one function:
    the same allow-list (an EPS file never reaches Ghostscript), the same strict JPEG decoding
    (corrupt scan data, which Pillow alone decodes "fine", is refused everywhere)."""
    from lenslab.cli.common import find_images
    from lenslab.images import open_image
    from lenslab.web.photobook import Limits, UploadError, decode

    data = EPS if case == "eps" else BAD_FILES[case][0](cat_jpeg)
    path = write(tmp_path / f"{case}.jpg", data)
    with pytest.raises(DataError) as catalog:
        inspect_image(path, max_pixels=MAX_PIXELS)
    with pytest.raises(DataError) as opened:
        open_image(path)
    assert opened.value.reason == catalog.value.reason
    inputs = find_images([str(path)])
    assert inputs.decode(inputs.paths) == []
    assert inputs.rejected[0][1].endswith(catalog.value.reason), inputs.rejected
    with pytest.raises(UploadError) as web:
        decode(path.name, data, Limits())
    assert 400 <= web.value.status < 500
    assert catalog.value.reason in web.value.message or case == "zero-byte"
    if case == "eps":
        assert catalog.value.reason == "unsupported format: PostScript"


def test_every_entry_point_opens_a_good_photo_alike(tmp_path: Path, cat_jpeg: bytes) -> None:
    from lenslab.cli.common import find_images
    from lenslab.images import open_image
    from lenslab.web.photobook import Limits, decode

    path = write(tmp_path / "cat.jpg", cat_jpeg)
    inputs = find_images([str(path)])
    (_, from_cli), = inputs.decode(inputs.paths)
    pixels = np.asarray(open_image(path))
    assert pixels.shape == (300, 451, 3) and from_cli.mode == "RGB"
    assert np.array_equal(np.asarray(from_cli), pixels)
    assert np.array_equal(np.asarray(decode("cat.jpg", cat_jpeg, Limits())), pixels)


def test_open_image_checks_the_size_before_decoding(tmp_path: Path) -> None:
    from lenslab.images import open_image

    seen = []
    with pytest.raises(DataError, match="decompression bomb"):
        open_image(png_header_only(20_000, 20_000), max_pixels=MAX_PIXELS)
    open_image(encode(Image.new("RGB", (30, 20)), "PNG"),
               check_size=lambda w, h: seen.append((w, h)))
    assert seen == [(30, 20)]
