"""A real HTTP/1.1 server on 127.0.0.1 that serves registered payloads, with faults on demand.

Usage (the ``fault_server`` fixture in ``tests/conftest.py`` does the starting and stopping)::

    with FaultServer() as srv:
        url = srv.add("/a.tar.gz", payload, faults=[Status(500), Drop(after=1000)])
        ...
        assert srv.count("/a.tar.gz") == 3

Per path it can answer with a status, fail the first requests (``faults`` are consumed one per
request, in order), drop the connection mid-body, drip bytes slowly, redirect, mislabel or apply
gzip, serve byte ranges with ETag/Last-Modified, and send X-Robots-Tag headers. ``serve_dir``
serves a whole folder (e.g. thousands of JPEGs for a benchmark). Every request is recorded.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import re
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"


@dataclass(frozen=True)
class Status:
    """One-shot fault: answer with this status (and headers/body) instead of the payload."""

    code: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Drop:
    """One-shot fault: promise the whole body (Content-Length), send ``after`` bytes, hang up."""

    after: int


@dataclass(frozen=True)
class Delay:
    """One-shot fault: wait ``seconds`` before answering normally."""

    seconds: float


Fault = Status | Drop | Delay


@dataclass
class Route:
    """What one path serves. ``faults`` are consumed one per request before normal service."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/octet-stream"
    headers: list[tuple[str, str]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    drip_s: float = 0.0  # pause between pieces of ``drip_bytes`` (slow-drip server)
    drip_bytes: int = 1
    redirect_to: str | None = None  # answer 302 with this Location
    content_encoding: str | None = None  # header only, body unchanged (a mislabelled file)
    gzip: Literal["never", "accepted", "always"] = "never"  # on-the-fly compression
    etag: bool | str = True  # True: a strong ETag from the body's hash
    last_modified: bool | str = True
    ranges: bool = True
    content_length: bool = True  # False: no Content-Length, the body ends when we hang up
    x_robots_tag: str | list[str] | None = None


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    at: float  # time.monotonic() on arrival


class FaultServer:
    """Threaded loopback server; start/stop it or use it as a context manager."""

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self._lock = threading.Lock()
        self._routes: dict[str, Route] = {}
        self._dirs: list[tuple[str, Path, dict[str, Any]]] = []
        self._hits: list[Hit] = []
        self._in_flight = 0
        self.max_in_flight = 0
        self.stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> FaultServer:
        self._httpd = _Server((self.host, 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base_url + path

    # -- registering content
    def add(self, path: str, body: bytes = b"", **options: Any) -> str:
        """Serve ``body`` at ``path`` with the given ``Route`` options; returns the URL."""
        with self._lock:
            route = Route(body=body, **options)
            route.faults = list(route.faults)  # consumed here, not in the caller's list
            self._routes[path] = route
        return self.url(path)

    def route(self, path: str) -> Route:
        """The live route, to change it between requests."""
        return self._routes[path]

    def serve_dir(self, prefix: str, directory: Path, **options: Any) -> str:
        """Serve the files under ``directory`` at ``prefix/<relative path>``; returns that URL."""
        prefix = "/" + prefix.strip("/") + "/"
        with self._lock:
            self._dirs.append((prefix, Path(directory).resolve(), options))
        return self.url(prefix)

    def robots(self, text: str, status: int = 200) -> str:
        return self.add("/robots.txt", text.encode(), status=status, content_type="text/plain")

    # -- what happened
    def hits(self, path: str | None = None) -> list[Hit]:
        with self._lock:
            return [h for h in self._hits if path is None or h.path == path]

    def count(self, path: str) -> int:
        return len(self.hits(path))

    def reset_hits(self) -> None:
        with self._lock:
            self._hits.clear()
            self.max_in_flight = 0

    # -- used by the handler
    def _arrive(self, hit: Hit) -> tuple[Route | None, Fault | None]:
        with self._lock:
            self._hits.append(hit)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            route = self._routes.get(hit.path)
            if route is not None:
                return route, (route.faults.pop(0) if route.faults else None)
            for prefix, folder, options in self._dirs:
                if hit.path.startswith(prefix):
                    return _file_route(folder, hit.path[len(prefix):], options), None
            return None, None

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


def _file_route(folder: Path, rel: str, options: dict[str, Any]) -> Route | None:
    path = (folder / unquote(rel)).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        return None
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return replace(Route(content_type=kind), body=path.read_bytes(), **options)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: FaultServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # dropped and reset connections are the point of this server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # idle keep-alive connections end on their own

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def _serve(self, send_body: bool) -> None:
        owner = self.server.owner  # type: ignore[attr-defined]
        path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        route, fault = owner._arrive(Hit(self.command, path, query, headers, time.monotonic()))
        try:
            self._respond(owner, route, fault, send_body)
        except OSError:  # the client went away
            self.close_connection = True
        finally:
            owner._leave()

    def _head(self, code: int, headers: list[tuple[str, str]], length: int | None) -> None:
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        if length is None:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send(self, code: int, headers: list[tuple[str, str]], body: bytes, send_body: bool):
        self._head(code, headers, len(body))
        if send_body:
            self.wfile.write(body)

    def _respond(
        self, owner: FaultServer, route: Route | None, fault: Fault | None, send_body: bool
    ) -> None:
        if route is None:
            self._send(404, [("Content-Type", "text/plain")], b"not found\n", send_body)
            return
        if isinstance(fault, Delay):
            owner.stopping.wait(fault.seconds)
        if isinstance(fault, Status):
            self._send(fault.code, list(fault.headers.items()), fault.body, send_body)
            return
        if route.redirect_to is not None:
            self._send(302, [("Location", route.redirect_to)], b"", send_body)
            return
        headers = [("Content-Type", route.content_type), *route.headers]
        tags = [route.x_robots_tag] if isinstance(route.x_robots_tag, str) else route.x_robots_tag
        headers += [("X-Robots-Tag", tag) for tag in tags or []]
        if route.status != 200:
            self._send(route.status, headers, route.body, send_body)
            return

        body, code = route.body, 200
        etag = route.etag
        if etag is True:
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        modified = LAST_MODIFIED if route.last_modified is True else route.last_modified
        headers += [("ETag", etag)] if etag else []
        headers += [("Last-Modified", modified)] if modified else []
        accepts = _accepts_gzip(self.headers.get("Accept-Encoding", ""))
        if route.gzip == "always" or (route.gzip == "accepted" and accepts):
            body = gzip.compress(body, mtime=0)
            headers.append(("Content-Encoding", "gzip"))
        else:
            if route.content_encoding:
                headers.append(("Content-Encoding", route.content_encoding))
            if route.ranges:
                headers.append(("Accept-Ranges", "bytes"))
                wanted = self._range(len(body), etag, modified)
                if wanted == "unsatisfiable":
                    headers.append(("Content-Range", f"bytes */{len(body)}"))
                    self._send(416, headers, b"", send_body)
                    return
                if wanted is not None:
                    start, end = wanted
                    headers.append(("Content-Range", f"bytes {start}-{end}/{len(body)}"))
                    body, code = body[start : end + 1], 206

        if isinstance(fault, Drop):
            self._head(code, headers, len(body))
            self.wfile.write(body[: fault.after])
            self.wfile.flush()
            self.close_connection = True
            return
        length = len(body) if route.content_length else None
        if route.drip_s <= 0 or not send_body:
            self._head(code, headers, length)
            if send_body:
                self.wfile.write(body)
            return
        self._head(code, headers, length)
        for i in range(0, len(body), route.drip_bytes):
            self.wfile.write(body[i : i + route.drip_bytes])
            self.wfile.flush()
            if owner.stopping.wait(route.drip_s):
                self.close_connection = True
                return

    def _range(
        self, size: int, etag: str | bool | None, modified: str | bool | None
    ) -> tuple[int, int] | Literal["unsatisfiable"] | None:
        """The single byte range asked for, honouring If-Range; None means the whole body."""
        asked = self.headers.get("Range")
        if not asked:
            return None
        if_range = self.headers.get("If-Range")
        if if_range and if_range not in (etag, modified):
            return None  # the representation changed: send it all
        found = re.fullmatch(r"bytes=(\d*)-(\d*)", asked.strip())
        if not found or found.groups() == ("", ""):
            return None
        first, last = found.groups()
        if first == "":  # a suffix: the last N bytes
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
        if start >= size or start > end:
            return "unsatisfiable"
        return start, end


def _accepts_gzip(header: str) -> bool:
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            quality = re.search(r"q=([0-9.]+)", params)
            return quality is None or float(quality.group(1)) > 0
    return False
