"""Decide what an image file really is, reject what is not a usable photo, normalise the rest.

Validation decodes every pixel: Pillow reports truncation, and JPEGs (most photos) are decoded by
libjpeg-turbo through ``simplejpeg`` in strict mode, which turns libjpeg's "Corrupt JPEG data"
warnings into errors; Pillow swallows them, so bytes flipped in the scan decode "fine" there. The
usual symptom of such damage is "N extraneous bytes before marker 0xd9" (the Huffman decoder lost
sync and finished early), so that warning is an error too, although a few Oxford-IIIT Pet files
that TFDS re-encodes show it: they go to quarantine with libjpeg's message, not silently into the
catalog. A single flipped bit that still decodes cannot be caught: JPEG has no checksum.

The format comes from the content (Pillow restricted to an allow-list), never the file name.
Every rejection is a :class:`lenslab.errors.DataError` whose reason reads ``"kind: detail"`` so
the catalog can count reasons by kind.

Normalised copies are 8-bit RGB JPEGs (quality 92), upright (EXIF orientation applied), longest
side capped, written atomically. They are derived data, so they skip the fsync that
:mod:`lenslab.atomic` does for originals: this is the hot path of ingestion.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import struct
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image, UnidentifiedImageError

from lenslab.errors import DataError

# Decoders Pillow may use. Multi-picture JPEGs (MPO, from cameras) come through the JPEG decoder
# and are reported as "MPO".
ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
JPEG_QUALITY = 92
DEFAULT_MAX_PIXELS = 50_000_000
# Pillow's antialiased bilinear (torchvision's Resize default). Measured on 640x480 -> 512 photos:
# 38-45 dB PSNR from LANCZOS, closer than the JPEG q92 re-encode (36-41 dB), at half the cost;
# the resize is most of the per-image time on the ingestion hot path.
RESAMPLE = Image.Resampling.BILINEAR
WHITE = (255, 255, 255)
ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transpose that makes the image upright (EXIF 2.32, tag 0x0112).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# What Pillow raises on bad data, besides OSError (it uses all of these).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError,
                  struct.error, ZeroDivisionError)
# Magic numbers of the image formats lenslab reads (WebP's is in image_format), and of formats
# it names when rejecting them.
IMAGE_MAGIC = ((b"\xff\xd8\xff", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF8", "gif"),
               (b"BM", "bmp"), (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"))
_OTHER_MAGIC = ((b"%PDF", "PDF"), (b"8BPS", "PSD"), (b"\x00\x00\x01\x00", "ICO"),
                (b"qoif", "QOI"), (b"DDS ", "DDS"), (b"%!PS", "PostScript"),
                (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"\xff\x4f\xff\x51", "JPEG 2000"),
                (b"\xff\x0a", "JPEG XL"), (b"\x00\x00\x00\x0cJXL ", "JPEG XL"))
_FTYP_BRANDS = {b"heic": "HEIF", b"heix": "HEIF", b"mif1": "HEIF", b"msf1": "HEIF",
                b"avif": "AVIF", b"avis": "AVIF"}


@dataclass(frozen=True)
class ImageInfo:
    """The original file as found: format from content, size as stored (before orientation)."""

    format: str
    mode: str
    width: int
    height: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Processed:
    """One file's outcome in :func:`process_batch` (info, or the rejection reason)."""

    key: str
    info: ImageInfo | None
    reason: str | None
    sha256: str | None  # also set for rejected files that could be read
    written: bool  # a normalised copy was written (False: it existed, or the file was rejected)


def read_file(path: Path) -> bytes:
    """The file's bytes; missing, unreadable and empty files are DataErrors."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(path, "missing file: not found") from None
    except OSError as exc:
        raise DataError(path, f"unreadable file: {exc.strerror or exc}") from None
    if not data:
        raise DataError(path, "empty file: 0 bytes")
    return data


def inspect_image(path: Path, *, max_pixels: int) -> ImageInfo:
    """Validate ``path`` by decoding it fully; its format, mode, size, byte count and SHA-256."""
    data = read_file(path)
    with _bombs_are_errors():
        image = _open(path, data, max_pixels)
        info = _info(image, data, _sha256(data))
        _decode(path, image, data, max_side=None)
    return info


def normalise_image(src: Path, dest: Path, *, max_side: int,
                    max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """Write ``src`` as an upright 8-bit RGB JPEG of longest side <= max_side; its (w, h)."""
    data = read_file(src)
    with _bombs_are_errors():
        image = _normalised(src, _open(src, data, max_pixels), data, max_side)
    _write_jpeg(Path(dest), image)
    return image.size


def open_image(source: Path | bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               name: str | Path | None = None,
               check_size: Callable[[int, int], None] | None = None,
               max_side: int | None = None) -> Image.Image:
    """A fully decoded 8-bit RGB image, upright (EXIF orientation applied, as the catalog
    normalises it), from a file or bytes, or a DataError saying why not.

    The one way every entry point (catalog, ``lenslab`` commands, the web page) opens a photo:
    the same format allow-list (so no other decoder, Ghostscript included, ever runs), the same
    decompression-bomb limit, and strict JPEG decoding (corrupt scan data is an error, as the
    catalog rejects it). ``check_size(width, height)`` runs on the header, before any pixel is
    decoded (a per-request pixel budget raises there). With ``max_side`` the result is shrunk to
    fit it (big JPEGs decoded at a reduced scale, as the catalog's normalised copies are), so a
    caller holding many photos holds small ones.
    """
    where = Path(name if name is not None else
                 (source if isinstance(source, Path) else "<upload>"))
    data = read_file(source) if isinstance(source, Path) else source
    if not data:
        raise DataError(where, "empty file: 0 bytes")
    with _bombs_are_errors():
        image = _open(where, data, max_pixels)
        if check_size is not None:
            check_size(image.width, image.height)
        size = fitted_size(image.size, max_side) if max_side else image.size
        rgb = to_rgb(_decode(where, image, data, max_side=max_side))
        if rgb.size != size:
            rgb = rgb.resize(size, RESAMPLE, reducing_gap=3.0)
        orientation = _orientation(image)  # a phone photo stored sideways comes out upright
        if orientation in _UPRIGHT:
            rgb = rgb.transpose(_UPRIGHT[orientation])
    # RGBX (Pillow's 4-byte RGB, how JPEGs decode) becomes plain RGB for numpy and the models
    return rgb if rgb.mode == "RGB" else rgb.convert("RGB")


def process_image(src: Path, dest_for: Callable[[str], Path], *, max_side: int,
                  max_pixels: int) -> tuple[ImageInfo, bool]:
    """Inspect, hash and normalise ``src`` reading and decoding it once.

    ``dest_for(sha256)`` names the normalised copy. When that file exists the content was already
    validated and normalised (same hash, same bytes): only the header is read and nothing is
    written, which makes reruns cheap. Returns the info and whether a copy was written.
    """
    data = read_file(src)
    return _process(src, data, _sha256(data), dest_for, max_side, max_pixels)


def process_batch(items: Sequence[tuple[str, Path]], dest_for: Callable[[str], Path], *,
                  max_side: int, max_pixels: int) -> list[Processed]:
    """:func:`process_image` over ``(key, path)`` pairs; a rejection becomes a reason, not a raise.

    This is the unit of work a process pool runs; it lives here, not in the catalog, so worker
    processes import Pillow and numpy but not pandas.
    """
    out = []
    for key, path in items:
        sha = None
        try:
            data = read_file(path)
            sha = _sha256(data)
            info, written = _process(path, data, sha, dest_for, max_side, max_pixels)
            out.append(Processed(key, info, None, sha, written))
        except DataError as exc:
            out.append(Processed(key, None, exc.reason, sha, False))
    return out


def _process(src: Path, data: bytes, sha: str, dest_for: Callable[[str], Path], max_side: int,
             max_pixels: int) -> tuple[ImageInfo, bool]:
    with _bombs_are_errors():
        image = _open(src, data, max_pixels)
        info = _info(image, data, sha)
        dest = Path(dest_for(sha))
        if dest.exists():
            return info, False
        normalised = _normalised(src, image, data, max_side)
    _write_jpeg(dest, normalised)
    return info, True


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _info(image: Image.Image, data: bytes, sha: str) -> ImageInfo:
    return ImageInfo(image.format, image.mode, image.width, image.height, len(data), sha)


@contextlib.contextmanager
def _bombs_are_errors() -> Iterator[None]:
    """Pillow only *warns* between 1x and 2x its pixel limit; make that an error, locally."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _open(where: Path, data: bytes, max_pixels: int) -> Image.Image:
    """Identify the content (header only) and refuse decompression bombs before decoding."""
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise DataError(where, what_is(data)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(where, f"decompression bomb: {exc}") from None
    except _DECODE_ERRORS as exc:
        raise DataError(where, f"corrupt image: {exc}") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise DataError(where, f"corrupt image: size {width}x{height}")
    if width * height > max_pixels:
        raise DataError(where, f"decompression bomb: {width}x{height} = {width * height:,} "
                               f"pixels, over the limit of {max_pixels:,}")
    return image


def image_format(head: bytes) -> str | None:
    """The image format a file's first bytes announce (``jpeg``, ``png``, ``gif``, ``bmp``,
    ``tiff``, ``webp``), or None: the one content sniffer of the catalog, the downloads and the
    web page."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return next((kind for magic, kind in IMAGE_MAGIC if head.startswith(magic)), None)


def what_is(data: bytes) -> str:
    """The rejection reason for bytes that no allowed image decoder recognises."""
    head = data[:1024]
    kind = image_format(head)
    if kind is not None:
        return f"corrupt image: unreadable {kind.upper()} header"
    for magic, name in _OTHER_MAGIC:
        if head.startswith(magic):
            return f"unsupported format: {name}"
    if head[4:8] == b"ftyp" and head[8:12] in _FTYP_BRANDS:
        return f"unsupported format: {_FTYP_BRANDS[head[8:12]]}"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text:
        return "HTML page, not an image"
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "unsupported format: SVG"
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        decoded = ""
    if decoded and all(c.isprintable() or c.isspace() for c in decoded.rstrip("\x00")):
        return "not an image: text file"
    return "not an image: unrecognised content"


def _decode(where: Path, image: Image.Image, data: bytes, max_side: int | None) -> Image.Image:
    """Decode every pixel (so truncation and corruption surface); big JPEGs at a reduced scale."""
    if image.format in ("JPEG", "MPO") and image.mode in ("RGB", "L"):
        return _decode_jpeg(where, image, data, max_side)
    try:
        if image.format == "JPEG" and max_side:  # CMYK/YCCK JPEG: Pillow's DCT scaling
            image.draft(None, fitted_size(image.size, max_side))
        image.load()
    except Image.DecompressionBombError as exc:
        raise DataError(where, f"decompression bomb: {exc}") from None
    except _DECODE_ERRORS as exc:
        kind = "truncated image" if "truncated" in str(exc) else "corrupt image"
        raise DataError(where, f"{kind}: {exc}") from None
    return image


def _decode_jpeg(where: Path, image: Image.Image, data: bytes,
                 max_side: int | None) -> Image.Image:
    # RGBX is Pillow's own memory layout for RGB: the decoded pixels are used without a copy.
    mode = "RGBX" if image.mode == "RGB" else "L"
    scale = {}
    if max_side and max(image.size) >= 2 * max_side:  # let libjpeg decode at 1/2..1/8 scale
        scale["min_width"], scale["min_height"] = fitted_size(image.size, max_side)
    try:
        pixels = simplejpeg.decode_jpeg(data, colorspace=mode.replace("L", "GRAY"), strict=True,
                                        **scale)
    except ValueError as exc:
        kind = "truncated image" if "Premature end of JPEG" in str(exc) else "corrupt image"
        raise DataError(where, f"{kind}: {exc}") from None
    size = (pixels.shape[1], pixels.shape[0])
    return Image.frombuffer(mode, size, pixels, "raw", mode, 0, 1)


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(ORIENTATION_TAG, 1))
    except Exception:  # malformed EXIF must not reject a good photo: treat it as upright
        return 1


def _normalised(where: Path, image: Image.Image, data: bytes, max_side: int) -> Image.Image:
    orientation = _orientation(image)  # read from the header before decoding replaces `image`
    size = fitted_size(image.size, max_side)  # from the stored size, whatever scale is decoded
    pixels = to_rgb(_decode(where, image, data, max_side))
    if pixels.size != size:
        # reducing_gap: a box reduce() first when shrinking > 3x, then the filter (near-identical).
        pixels = pixels.resize(size, RESAMPLE, reducing_gap=3.0)
    if orientation in _UPRIGHT:
        pixels = pixels.transpose(_UPRIGHT[orientation])
    return pixels


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB, deliberately.

    "RGBX" (RGB in Pillow's 4-byte layout, as JPEGs are decoded) is kept: JPEG saves it as RGB.
    Transparency is composited on white; 16-bit and 32-bit integer grey ("I;16*", "I") is scaled
    from 0..65535 to 0..255 (Pillow's own conversion would clip at 255); float grey is clipped to
    0..255; CMYK uses Pillow's conversion (no colour management).
    """
    mode = image.mode
    if mode in ("RGB", "RGBX"):
        return image
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
            mode == "P" and ("transparency" in image.info
                              or getattr(image.palette, "mode", "") == "RGBA")):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, WHITE)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if mode == "I" or mode.startswith("I;16"):
        grey = np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8
        return Image.fromarray(grey.astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        grey = np.clip(np.asarray(image, dtype=np.float64), 0, 255) + 0.5
        return Image.fromarray(grey.astype(np.uint8), "L").convert("RGB")
    return image.convert("RGB")


def upright_rgb(image: Image.Image) -> Image.Image:
    """A decoded photo as the catalog normalises it, at its own size: 8-bit RGB (:func:`to_rgb`)
    with its EXIF orientation applied, so a phone photo stored sideways is upright."""
    orientation = _orientation(image)
    pixels = to_rgb(image)
    return pixels.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else pixels


def fitted_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``size`` shrunk so the longest side is at most ``max_side`` (never enlarged)."""
    width, height = size
    if max(width, height) <= max_side:
        return size
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _write_jpeg(dest: Path, image: Image.Image) -> None:
    """Encode, write to a temporary name beside ``dest``, rename (no fsync: derived data)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        try:
            tmp.write_bytes(buffer.getvalue())
        except FileNotFoundError:  # first file of its folder (mkdir only then: hot path)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(buffer.getvalue())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
