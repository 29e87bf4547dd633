"""The photobook web page: compare two photos, or let the rater pick an album from a set.

Run it with ``python -m lenslab.web.photobook`` (``--help`` for options). It binds 127.0.0.1 by
default, never runs in debug mode, and loads what the pipeline wrote (``photobook_rater``) from
the data root. Uploads are checked before any decoding: request size, photos per request, bytes
per photo, the type sniffed from the first bytes (JPEG, PNG or WebP, whatever the file name says),
the pixel count, and a full decode (a truncated JPEG is refused, not silently padded). Every
refusal is a page with a clear message and a 4xx status; the server keeps serving.
"""

from __future__ import annotations

import argparse
import html
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route

from lenslab.photobook.rating import LEARNED, PhotobookLayout, Rater

SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}
MAX_PIXELS = 50_000_000


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 10 * 1024 * 1024  # per photo
    max_photos: int = 40  # per album request
    max_pixels: int = MAX_PIXELS

    @property
    def max_request(self) -> int:
        return self.max_bytes * self.max_photos + 64 * 1024  # form fields and multipart framing


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


class UploadError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def sniff(data: bytes) -> str | None:
    """The image type from its first bytes: JPEG, PNG or WebP, else None."""
    for magic, kind in SIGNATURES.items():
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def decode(name: str, data: bytes, limits: Limits) -> Image.Image:
    """A fully decoded RGB photo, or an UploadError naming the file and what is wrong."""
    if not data:
        raise UploadError(400, f"{name}: the file is empty")
    if len(data) > limits.max_bytes:
        raise UploadError(413, f"{name}: {len(data):,} bytes is over the limit of "
                          f"{limits.max_bytes:,} bytes per photo")
    kind = sniff(data)
    if kind is None:
        raise UploadError(415, f"{name}: not a JPEG, PNG or WebP image (checked by content)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > limits.max_pixels:
                raise UploadError(413, f"{name}: {im.width}x{im.height} pixels is over the "
                                  f"limit of {limits.max_pixels:,}")
            im.load()  # decodes every byte: a truncated file raises here
            return im.convert("RGB")
    except UploadError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UploadError(422, f"{name}: the {kind} file is truncated or corrupt ({exc})") from exc


class PhotobookApp:
    """The rater and encoder, loaded once; requests are scored one at a time."""

    def __init__(self, data_root: Path, limits: Limits | None = None, *,
                 encoder=None) -> None:
        from models.photobook.rater import encoder_for

        self.rater = Rater.load(PhotobookLayout(Path(data_root)))
        self.limits = limits or Limits()
        self.encoder = encoder or encoder_for(self.rater.encoder)
        self._lock = threading.Lock()

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        with self._lock:
            return self.encoder.encode_images(images).astype(np.float64)

    # -------------------------------------------------------------------------------- pages

    def page(self, body: str, status: int = 200) -> HTMLResponse:
        options = "".join(
            f'<option value="{html.escape(n)}"{" selected" if n == LEARNED else ""}>'
            f"{html.escape(n)}: {html.escape(self.rater.descriptions[n])}</option>"
            for n in self.rater.vectors)
        return HTMLResponse(PAGE.format(options=options, body=body,
                                        max_size=_size(self.limits.max_bytes),
                                        max_photos=self.limits.max_photos), status_code=status)

    def error(self, exc: UploadError) -> HTMLResponse:
        return self.page(f'<p id="error" class="error" role="alert">{html.escape(exc.message)}'
                         "</p>", exc.status)

    async def form(self, request: Request):
        length = request.headers.get("content-length")
        if length is not None and int(length) > self.limits.max_request:
            raise UploadError(413, f"the request ({int(length):,} bytes) is over the limit of "
                              f"{self.limits.max_request:,} bytes")
        try:
            return await request.form(max_files=self.limits.max_photos, max_fields=20)
        except HTTPException as exc:  # malformed multipart, too many files
            raise UploadError(400, f"the upload could not be read: {exc.detail}") from exc

    def vector(self, form) -> str:
        name = str(form.get("vector") or LEARNED)
        if name not in self.rater.vectors:
            raise UploadError(400, f"unknown master vector {name!r}")
        return name

    async def photos(self, uploads: list) -> tuple[list[str], list[Image.Image]]:
        names, images = [], []
        for upload in uploads:
            data = await upload.read()
            name = upload.filename or "photo"
            images.append(await run_in_threadpool(decode, name, data, self.limits))
            names.append(name)
        return names, images

    async def index(self, request: Request) -> HTMLResponse:
        return self.page("")

    async def compare(self, request: Request) -> HTMLResponse:
        try:
            form = await self.form(request)
            vector = self.vector(form)
            uploads = [form.get(k) for k in ("photo_a", "photo_b")]
            missing = [label for label, u in zip(("first", "second"), uploads, strict=True)
                       if not isinstance(u, UploadFile) or not u.filename]
            if missing:
                raise UploadError(400, f"the {' and '.join(missing)} photo is missing: choose "
                                  "two photos to compare")
            names, images = await self.photos(uploads)
            p = self.rater.probabilities(await run_in_threadpool(self.embed, images), vector)
        except UploadError as exc:
            return self.error(exc)
        rows = "".join(
            f'<tr><td>{html.escape(n)}</td><td class="prob" id="p{k}">{q:.3f}</td></tr>'
            for k, (n, q) in enumerate(zip(names, p, strict=True)))
        better = html.escape(names[int(np.argmax(p))])
        return self.page(f'<h2>Comparison ({html.escape(vector)})</h2><table id="result">'
                         f"<tr><th>photo</th><th>probability of being the better pick</th></tr>"
                         f"{rows}</table><p>Better pick: <b>{better}</b></p>")

    async def album(self, request: Request) -> HTMLResponse:
        try:
            form = await self.form(request)
            vector = self.vector(form)
            uploads = [u for u in form.getlist("photos") if isinstance(u, UploadFile)
                       and u.filename]
            if len(uploads) < 2:
                raise UploadError(400, "choose at least two photos for an album")
            try:
                places = int(str(form.get("places") or "0"))
            except ValueError:
                places = 0
            if not 1 <= places <= len(uploads):
                raise UploadError(400, f"places must be between 1 and {len(uploads)}")
            names, images = await self.photos(uploads)
            e = await run_in_threadpool(self.embed, images)
            album = self.rater.album(e, names, places, vector)
        except UploadError as exc:
            return self.error(exc)
        rows = "".join(
            f'<tr class="{"chosen" if r.chosen else "skipped"}"><td>{html.escape(r.photo)}</td>'
            f"<td>{r.score:.3f}</td><td>{'yes' if r.chosen else 'no'}</td>"
            f"<td>{html.escape(r.reason)}</td></tr>" for r in album.itertuples())
        return self.page(f"<h2>Album: {int(album['chosen'].sum())} of {len(album)} photos "
                         f'({html.escape(vector)})</h2><table id="album"><tr><th>photo</th>'
                         f"<th>score</th><th>chosen</th><th>why</th></tr>{rows}</table>")

    def starlette(self) -> Starlette:
        async def on_error(request: Request, exc: Exception) -> HTMLResponse:
            return self.page('<p id="error" class="error">internal error; the request was '
                             "not processed</p>", 500)

        async def health(request: Request) -> PlainTextResponse:
            return PlainTextResponse("ok")

        return Starlette(debug=False, routes=[
            Route("/", self.index), Route("/health", health),
            Route("/compare", self.compare, methods=["POST"]),
            Route("/album", self.album, methods=["POST"]),
        ], exception_handlers={500: on_error})


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lenslab photobook rater</title>
<style>body{{font-family:sans-serif;max-width:52em;margin:2em auto}} .error{{color:#b00020}}
td,th{{padding:.2em .6em;text-align:left}} tr.skipped{{color:#777}}</style></head><body>
<h1>Photobook rater</h1>
<form action="/compare" method="post" enctype="multipart/form-data" id="compare-form">
<fieldset><legend>Compare two photos</legend>
<label>First photo <input type="file" name="photo_a" id="photo_a" accept="image/*"></label><br>
<label>Second photo <input type="file" name="photo_b" id="photo_b" accept="image/*"></label><br>
<label>Master vector <select name="vector" id="vector">{options}</select></label>
<button type="submit" id="compare">Compare</button></fieldset></form>
<form action="/album" method="post" enctype="multipart/form-data" id="album-form">
<fieldset><legend>Choose an album from a set</legend>
<label>Photos <input type="file" name="photos" id="photos" multiple accept="image/*"></label>
<label>Places <input type="number" name="places" id="places" value="4" min="1"></label>
<label>Master vector <select name="vector">{options}</select></label>
<button type="submit" id="make-album">Choose</button></fieldset></form>
<p><small>JPEG, PNG or WebP; at most {max_size} per photo and {max_photos} photos.
</small></p>
{body}
</body></html>
"""


def create_app(data_root: Path, limits: Limits | None = None, *, encoder=None) -> Starlette:
    return PhotobookApp(data_root, limits, encoder=encoder).starlette()


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from lenslab.params import REPO_ROOT

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path(
        os.environ.get("LENSLAB_DATA_ROOT", REPO_ROOT / "data")),
        help="data tree holding photobook/ (default: $LENSLAB_DATA_ROOT or the repo's data/)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--max-mb", type=float, default=10.0, help="per photo (MiB)")
    parser.add_argument("--max-photos", type=int, default=40, help="per album request")
    args = parser.parse_args(argv)
    limits = Limits(max_bytes=int(args.max_mb * 2**20), max_photos=args.max_photos)
    uvicorn.run(create_app(args.data_root, limits), host=args.host, port=args.port,
                log_level="info")


if __name__ == "__main__":
    main()
