"""The photobook web page: compare two photos, or let the rater pick an album from a set.

Run it with ``python -m lenslab.web.photobook`` (``--help`` for options). It binds 127.0.0.1 by
default, never runs in debug mode, and loads what the pipeline wrote (``photobook_rater``) from
the data root. Uploads are checked as they stream in, before any decoding: the request body is
counted as it arrives (``Content-Length`` is not trusted, and a chunked body past the cap is cut
off with a 413, so no more than the cap reaches memory or disk), each photo's bytes are counted
while its part is read, and the photo count is capped. Photos are then opened with
:func:`lenslab.images.open_image`, as everywhere else (format from content within one allow-list,
the bomb limit, strict JPEG decoding), under a per-request budget of decoded pixels, one at a
time and shrunk at once to the catalog's normalised size, and at most ``decode_slots`` requests
decode at once, so memory stays bounded however many clients send. A refused body is drained
(bounded) so the client reads its 413, else the connection is closed.
Every refusal is a page with a clear message and a 4xx status; the server keeps serving.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route

from lenslab.errors import DataError
from lenslab.images import DEFAULT_MAX_PIXELS, open_image
from lenslab.photobook.rating import LEARNED, PhotobookLayout, Rater

MAX_PIXELS = DEFAULT_MAX_PIXELS
FORMATS_TEXT = "JPEG, PNG, GIF, WebP, BMP or TIFF"
FRAMING = 64 * 1024  # form fields and multipart framing, beside the photos' own bytes
DRAIN_BYTES = 16 * 2**20  # of a refused body, read and dropped so the client sees its 413
DRAIN_SECONDS = 2.0


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 10 * 1024 * 1024  # per photo
    max_photos: int = 40  # per album request
    max_pixels: int = MAX_PIXELS  # per photo
    max_request_pixels: int = 2 * MAX_PIXELS  # decoded per request (two full-size photos)
    decode_slots: int = 2  # requests decoding and embedding at once, whatever the client count
    # photos are held at the catalog's normalised size (what the rater was trained on), so a
    # request's memory is one full decode at a time plus small copies
    work_side: int = 512

    def request_cap(self, photos: int) -> int:
        """The most bytes a request carrying ``photos`` photos may send."""
        return self.max_bytes * photos + FRAMING

    @property
    def max_request(self) -> int:
        return self.request_cap(self.max_photos)


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


class UploadError(Exception):
    """A refused upload. ``unread``: raised before the request body was read to its end."""

    def __init__(self, status: int, message: str, *, unread: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.unread = status, message, unread


async def drain(request: Request) -> bool:
    """Read and drop the rest of a refused body, up to DRAIN_BYTES and DRAIN_SECONDS; True when
    it came to its end. A client still sending when the server closes gets a reset and may lose
    the 413; one that has finished reads it. Nothing drained is kept."""
    dropped = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while dropped <= DRAIN_BYTES:
                message = await request.receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return True
                dropped += len(message.get("body", b""))
    except TimeoutError:
        pass
    return False


class PixelBudget:
    """Decoded pixels left to one request; taken from each photo's header before it decodes."""

    def __init__(self, pixels: int) -> None:
        self.total = self.left = pixels

    def take(self, name: str, width: int, height: int) -> None:
        if width * height > self.left:
            raise UploadError(413, f"{name}: its {width}x{height} pixels would take this request "
                              f"over its budget of {self.total:,} decoded pixels; send fewer or "
                              "smaller photos")
        self.left -= width * height


def decode(name: str, data: bytes, limits: Limits,
           budget: PixelBudget | None = None) -> Image.Image:
    """A fully decoded RGB photo, or an UploadError naming the file and what is wrong."""
    if not data:
        raise UploadError(400, f"{name}: the file is empty")
    if len(data) > limits.max_bytes:
        raise UploadError(413, f"{name}: {len(data):,} bytes is over the limit of "
                          f"{limits.max_bytes:,} bytes per photo")

    def check(width: int, height: int) -> None:
        if width * height > limits.max_pixels:
            raise UploadError(413, f"{name}: {width}x{height} pixels is over the limit of "
                              f"{limits.max_pixels:,}")
        if budget is not None:
            budget.take(name, width, height)

    try:
        return open_image(data, max_pixels=limits.max_pixels, name=name, check_size=check,
                          max_side=limits.work_side)
    except DataError as exc:
        kind = exc.reason.split(":")[0]
        if kind == "decompression bomb":
            raise UploadError(413, f"{name}: {exc.reason}") from None
        if kind in ("not an image", "unsupported format", "HTML page, not an image"):
            raise UploadError(415, f"{name}: not a {FORMATS_TEXT} image (checked by content: "
                              f"{exc.reason})") from None
        raise UploadError(422, f"{name}: the file is truncated or corrupt ({exc.reason})") \
            from None


class CappedBody:
    """A request body as it streams, refused with a 413 once more than ``cap`` bytes have come,
    before that chunk is used (so a chunked body, which has no Content-Length, cannot spool more
    than ``cap``). ``finished``: the body was read to its end."""

    def __init__(self, request: Request, cap: int) -> None:
        self.receive, self.cap, self.total, self.finished = request.receive, cap, 0, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while not self.finished:
            message = await self.receive()
            if message["type"] != "http.request":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            self.finished = not message.get("more_body", False)
            self.total += len(chunk)
            if self.total > self.cap:
                raise UploadError(413, f"the request is over the limit of {self.cap:,} bytes "
                                  "for its photos")
            if chunk:
                yield chunk


class CappedMultiPartParser(MultiPartParser):
    """Starlette's multipart parser, counting each file's bytes as they arrive."""

    def __init__(self, *args, max_file_bytes: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_file_bytes = max_file_bytes
        self._file_bytes = 0

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self._file_bytes = 0

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        upload = self._current_part.file
        if upload is not None:
            self._file_bytes += end - start
            if self._file_bytes > self.max_file_bytes:
                raise UploadError(413, f"{upload.filename or 'photo'}: over the limit of "
                                  f"{self.max_file_bytes:,} bytes per photo")
        super().on_part_data(data, start, end)


class PhotobookApp:
    """The rater and encoder, loaded once; requests are scored one at a time."""

    def __init__(self, data_root: Path, limits: Limits | None = None, *,
                 encoder=None) -> None:
        from models.photobook.rater import encoder_for

        self.rater = Rater.load(PhotobookLayout(Path(data_root)))
        self.limits = limits or Limits()
        self.encoder = encoder or encoder_for(self.rater.encoder)
        self._lock = threading.Lock()
        self._slots: asyncio.Semaphore | None = None

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
                                        max_photos=self.limits.max_photos,
                                        formats=FORMATS_TEXT), status_code=status)

    async def error(self, request: Request, exc: UploadError) -> HTMLResponse:
        """The refusal page; a body left unread is drained (bounded) or the connection closed."""
        response = self.page(f'<p id="error" class="error" role="alert">'
                             f"{html.escape(exc.message)}</p>", exc.status)
        if exc.unread and not await drain(request):
            # the rest is never read: closing stops the client sending it (else the server
            # would read and drop it, however long it is)
            response.headers["connection"] = "close"
        return response

    async def form(self, request: Request, photos: int) -> FormData:
        """The multipart form of a request carrying up to ``photos`` photos, read under caps."""
        cap = self.limits.request_cap(photos)
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > cap):
            raise UploadError(413, f"the request ({length} bytes) is over the limit of "
                              f"{cap:,} bytes ({photos} photos of at most "
                              f"{_size(self.limits.max_bytes)} each)", unread=True)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise UploadError(415, "send the photos as multipart/form-data (the page's forms do)")
        body = CappedBody(request, cap)
        parser = CappedMultiPartParser(request.headers, body.__aiter__(), max_files=photos,
                                       max_fields=20, max_file_bytes=self.limits.max_bytes)
        try:
            return await parser.parse()
        except UploadError as exc:
            exc.unread = not body.finished
            raise
        except MultiPartException as exc:  # malformed multipart, too many files
            raise UploadError(400, f"the upload could not be read: {exc.message}",
                              unread=not body.finished) from exc
        except ClientDisconnect as exc:
            raise UploadError(400, "the upload was interrupted") from exc

    def vector(self, form) -> str:
        name = str(form.get("vector") or LEARNED)
        if name not in self.rater.vectors:
            raise UploadError(400, f"unknown master vector {name!r}")
        return name

    async def photos(self, uploads: list) -> tuple[list[str], list[Image.Image]]:
        """Each upload decoded in turn (its bytes dropped once decoded), within the pixel
        budget; call it holding a decode slot."""
        budget = PixelBudget(self.limits.max_request_pixels)
        names, images = [], []
        for upload in uploads:
            name = upload.filename or "photo"
            data = await upload.read(self.limits.max_bytes + 1)
            images.append(await run_in_threadpool(decode, name, data, self.limits, budget))
            names.append(name)
        return names, images

    async def embeddings(self, uploads: list) -> tuple[list[str], np.ndarray]:
        """Names and embeddings of the uploads; decoded pixels live only inside a decode slot."""
        if self._slots is None:  # made here so it belongs to the server's event loop
            self._slots = asyncio.Semaphore(self.limits.decode_slots)
        async with self._slots:
            names, images = await self.photos(uploads)
            return names, await run_in_threadpool(self.embed, images)

    async def index(self, request: Request) -> HTMLResponse:
        return self.page("")

    async def compare(self, request: Request) -> HTMLResponse:
        form = None
        try:
            form = await self.form(request, 2)
            vector = self.vector(form)
            uploads = [form.get(k) for k in ("photo_a", "photo_b")]
            missing = [label for label, u in zip(("first", "second"), uploads, strict=True)
                       if not isinstance(u, UploadFile) or not u.filename]
            if missing:
                raise UploadError(400, f"the {' and '.join(missing)} photo is missing: choose "
                                  "two photos to compare")
            names, e = await self.embeddings(uploads)
            p = self.rater.probabilities(e, vector)
        except UploadError as exc:
            return await self.error(request, exc)
        finally:
            if form is not None:
                await form.close()
        rows = "".join(
            f'<tr><td>{html.escape(n)}</td><td class="prob" id="p{k}">{q:.3f}</td></tr>'
            for k, (n, q) in enumerate(zip(names, p, strict=True)))
        better = html.escape(names[int(np.argmax(p))])
        return self.page(f'<h2>Comparison ({html.escape(vector)})</h2><table id="result">'
                         f"<tr><th>photo</th><th>probability of being the better pick</th></tr>"
                         f"{rows}</table><p>Better pick: <b>{better}</b></p>")

    async def album(self, request: Request) -> HTMLResponse:
        form = None
        try:
            form = await self.form(request, self.limits.max_photos)
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
            names, e = await self.embeddings(uploads)
            album = self.rater.album(e, names, places, vector)
        except UploadError as exc:
            return await self.error(request, exc)
        finally:
            if form is not None:
                await form.close()
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
<p><small>{formats}; at most {max_size} per photo and {max_photos} photos.
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
