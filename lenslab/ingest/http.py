"""Robust single-file downloads over HTTP(S) with httpx.

One primitive, ``download_file``, that every source with an ``http`` mode uses:

* streams into ``<dest>.part`` beside the destination, then fsync + ``os.replace`` (a reader never
  sees a half file under the final name);
* asks for ``Accept-Encoding: identity`` and hashes the bytes *as sent* (``iter_raw``); if a
  ``Content-Encoding`` still arrives, the decoded body is accepted only when that is what matches
  the pinned hash (a mislabelled ``.tar.gz`` versus on-the-fly gzip, research C3);
* resumes a ``.part`` with ``Range`` + ``If-Range`` (the validator is kept in ``<dest>.part.json``,
  written up front for large bodies and, for small ones, only if the body is cut short);
* retries transient failures with exponential backoff and jitter, honouring ``Retry-After``;
* enforces a total deadline per file (the read timeout is per chunk, so a slow drip never trips it)
  and a byte cap;
* shares a per-host concurrency and rate limit between threads (``HostLimiter``);
* follows redirects itself (``open_following``), at most ``max_redirects`` hops, taking each
  hop's host's slot in the limiter, refusing a hop from another host to a loopback, private or
  link-local address unless the original URL's host is one, and letting the caller vet each hop
  (robots.txt, X-Robots-Tag on the redirect);
* logs (Python logging, logger ``lenslab.ingest.http``, which Dagster captures) each download
  started, each retry with its wait, and each download finished (bytes, rate) or failed: the
  progress bar shows only on a terminal.

Every failure is a ``DownloadError`` (a ``lenslab.errors.DataError``) naming the URL and reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import hashlib
import ipaddress
import json
import logging
import os
import random
import re
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx
from tqdm import tqdm

from lenslab.errors import DataError

Expect = Literal["archive", "image"] | None
log = logging.getLogger(__name__)

# Statuses worth another try: timeouts, "too early", rate limiting and server-side trouble.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
CHUNK = 64 * 1024
PROGRESS_MIN_BYTES = 8 * 1024 * 1024  # smaller files download too fast for a bar to help
# Bodies at least this big (or of unknown length) get their resume sidecar before the first byte,
# so even a killed process can resume them; smaller ones write it only when cut short.
SIDECAR_UP_FRONT_BYTES = 1024 * 1024
MAX_BACKOFF_S = 60.0


class DownloadError(DataError):
    """A download that failed. ``status`` is the HTTP status when one was received."""

    def __init__(self, url: str, reason: str, *, status: int | None = None, attempts: int = 0):
        super().__init__(url, reason)
        self.url = url
        self.status = status
        self.attempts = attempts


class ChecksumError(DownloadError):
    """The body does not match the pinned SHA-256 / MD5."""


class DeadlineExceeded(DownloadError):
    """The file took longer than ``deadline_s`` in all; its ``.part`` is kept for a rerun."""


@dataclass(frozen=True)
class HttpSettings:
    """The ``http:`` section of params.yaml, plus two knobs that rarely need changing."""

    user_agent: str
    connect_timeout_s: float
    read_timeout_s: float
    deadline_s: float
    max_bytes: int
    max_image_bytes: int
    retries: int  # retries after the first attempt
    backoff_s: float
    per_host_concurrency: int
    per_host_rate_per_s: float  # <= 0 means no rate limit
    retry_after_cap_s: float = 120.0  # never sleep longer than this for one Retry-After
    max_redirects: int = 10

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> HttpSettings:
        """Build from the ``http:`` section (or the whole params dict holding one)."""
        section = params.get("http", params)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(section) - names
        if unknown:
            raise DataError("params.yaml:http", f"unknown keys {sorted(unknown)}")
        try:
            settings = cls(**section)
        except TypeError as exc:  # a required key is missing
            raise DataError("params.yaml:http", str(exc)) from exc
        if settings.deadline_s <= 0 or settings.max_bytes <= 0 or settings.retries < 0:
            raise DataError("params.yaml:http", "need deadline_s > 0, max_bytes > 0, retries >= 0")
        if settings.per_host_concurrency < 1:
            raise DataError("params.yaml:http", "per_host_concurrency must be >= 1")
        return settings

    @classmethod
    def default(cls) -> HttpSettings:
        """The settings in the project's params.yaml."""
        from lenslab.params import load_params

        return cls.from_params(load_params()["http"])


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    url: str
    final_url: str
    sha256: str
    md5: str | None  # None when no MD5 was pinned and hash_md5=False
    bytes: int
    etag: str | None
    last_modified: str | None
    content_type: str | None
    attempts: int  # 0 when the file was already there with the pinned hash
    resumed: bool
    kind: str | None = None  # the sniffed format when ``expect`` was given, e.g. "jpeg"


# --------------------------------------------------------------------------- politeness


@dataclass
class _HostState:
    semaphore: threading.Semaphore
    next_at: float = 0.0
    min_interval_s: float = 0.0


class HostLimiter:
    """Per-host concurrency (a semaphore) and request rate, shared by all threads.

    The rate is a token bucket holding one token (requests are spaced ``1/rate`` apart): a polite
    crawler has no use for bursts. The host is ``host[:port]`` of the URL.
    """

    def __init__(self, concurrency: int, rate_per_s: float, *, shares: int = 1):
        """``shares`` > 1 makes this one of that many limiters (one per process) that together
        keep the limits: it allows ``concurrency // shares`` connections per host (so callers
        need ``concurrency >= shares``), ``rate_per_s / shares`` requests per second, and spaces
        a Crawl-delay ``shares`` times as far apart. The overall rate then holds on average; the
        processes do not coordinate, so two of their requests may still come close together.
        """
        self.shares = max(1, int(shares))
        self.concurrency = max(1, int(concurrency) // self.shares)
        self.rate_per_s = rate_per_s / self.shares
        self._lock = threading.Lock()
        self._hosts: dict[str, _HostState] = {}

    def _state(self, url: str) -> _HostState:
        host = urlsplit(url).netloc.lower()
        with self._lock:
            if host not in self._hosts:
                self._hosts[host] = _HostState(threading.Semaphore(self.concurrency))
            return self._hosts[host]

    def set_min_interval(self, url: str, seconds: float) -> None:
        """Space requests to this URL's host at least ``seconds`` apart (robots.txt Crawl-delay)."""
        state = self._state(url)
        with self._lock:
            state.min_interval_s = max(state.min_interval_s, seconds * self.shares)

    @contextlib.contextmanager
    def slot(self, url: str) -> Iterator[None]:
        """Hold one of the host's connections for one request, after waiting for its turn."""
        state = self._state(url)
        with state.semaphore:
            interval = 1.0 / self.rate_per_s if self.rate_per_s > 0 else 0.0
            with self._lock:
                now = time.monotonic()
                at = max(now, state.next_at)
                state.next_at = at + max(interval, state.min_interval_s)
            if at > now:
                time.sleep(at - now)
            yield


_shared_limiters: dict[tuple[int, float], HostLimiter] = {}
_shared_lock = threading.Lock()


def shared_limiter(settings: HttpSettings) -> HostLimiter:
    """One process-wide limiter per (concurrency, rate), so separate calls still share hosts."""
    key = (settings.per_host_concurrency, settings.per_host_rate_per_s)
    with _shared_lock:
        if key not in _shared_limiters:
            _shared_limiters[key] = HostLimiter(*key)
        return _shared_limiters[key]


def make_client(settings: HttpSettings, *, max_connections: int = 100) -> httpx.Client:
    """A client that identifies itself and uses the configured timeouts. It follows no redirect:
    ``open_following`` does, checking every hop."""
    return httpx.Client(
        headers={"User-Agent": settings.user_agent},
        timeout=httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
        follow_redirects=False,
        limits=httpx.Limits(max_connections=max_connections),
    )


# --------------------------------------------------------------------------- redirects

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Called before a hop is followed with (from_url, to_url, hop number); raises to refuse it.
HopCheck = Callable[[str, str, int], None]


def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (a literal address resolves to itself)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        # What the request itself would meet: a connection error, retried like one.
        raise httpx.ConnectError(f"cannot resolve {host}: {exc}") from exc
    return sorted({str(info[4][0]) for info in infos})


def internal_address(address: str) -> bool:
    """Loopback, private, link-local or unspecified (0.0.0.0 reaches this machine)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1 to the kernel
    return ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified


def hop_allowed(origin_addresses: list[str], target_addresses: list[str]) -> bool:
    """Whether a redirect may lead to a host at ``target_addresses`` when the original URL's host
    is at ``origin_addresses``: not to an internal address, unless the origin is one itself (a
    manifest served from this machine or the local network may point within it)."""
    if not any(internal_address(a) for a in target_addresses):
        return True
    return any(internal_address(a) for a in origin_addresses)


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return (parts.hostname or ""), parts.port or (443 if parts.scheme == "https" else 80)


def _check_hop(url: str, current: str, target: str, hop: int, max_redirects: int) -> None:
    """Refuse hop ``hop`` from ``current`` to ``target`` of a chain that began at ``url``."""
    where = f"redirect hop {hop} from {current} to {target}"
    if hop > max_redirects:
        raise DownloadError(url, f"redirect loop or more than {max_redirects} redirects ({where})")
    if urlsplit(target).scheme not in ("http", "https") or not urlsplit(target).hostname:
        raise DownloadError(url, f"{where}: not an http(s) URL")
    origin_host, target_host = _host_port(url)[0], _host_port(target)[0]
    if target_host.lower() == origin_host.lower():
        return
    if not hop_allowed(resolve_addresses(*_host_port(url)), resolve_addresses(*_host_port(target))):
        raise DownloadError(
            url, f"{where}: refused, it leads to a loopback, private or link-local address"
        )


@contextlib.contextmanager
def open_following(
    client: httpx.Client,
    url: str,
    *,
    headers: Mapping[str, str],
    timeout: httpx.Timeout,
    limiter: HostLimiter,
    max_redirects: int,
    check_hop: HopCheck | None = None,
    check_response: Callable[[httpx.Response], None] | None = None,
) -> Iterator[httpx.Response]:
    """GET ``url`` as a stream, following redirects by hand; yield the final response.

    Each request holds its own host's slot in ``limiter`` (never two at once, so chains between
    hosts cannot deadlock). Before a hop is followed: the hop count, the scheme and the address
    rule (``hop_allowed``), then ``check_response`` on the redirect itself and ``check_hop``
    (both may raise a ``DownloadError``). ``headers`` go with every hop (``Range``/``If-Range``
    included, so a resumed download resumes at the redirect's target).
    """
    current, hop = url, 0
    while True:
        with limiter.slot(current), client.stream(
            "GET", current, headers=dict(headers), timeout=timeout, follow_redirects=False
        ) as resp:
            location = resp.headers.get("Location")
            if resp.status_code not in REDIRECT_STATUSES or not location:
                yield resp
                return
            if check_response is not None:
                check_response(resp)
        hop += 1
        target = urljoin(current, location.strip())
        _check_hop(url, current, target, hop, max_redirects)
        if check_hop is not None:
            check_hop(current, target, hop)
        current = target


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


# --------------------------------------------------------------------------- content sniffing

IMAGE_EXTENSIONS = {
    "jpeg": ".jpg", "png": ".png", "gif": ".gif", "webp": ".webp", "bmp": ".bmp", "tiff": ".tif",
}
ARCHIVE_KINDS = frozenset({"gzip", "bzip2", "xz", "zip", "zstd", "7z", "tar"})


ARCHIVE_MAGIC = (
    (b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"7z\xbc\xaf\x27\x1c", "7z"),
)


def sniff(head: bytes) -> str | None:
    """Name the format of a body from its first bytes (at least 512 for tar), or None: an image
    format as `lenslab.images.image_format` names it, an archive, or an HTML page."""
    from lenslab.images import image_format

    kind = image_format(head) or next(
        (kind for magic, kind in ARCHIVE_MAGIC if head.startswith(magic)), None)
    if kind is not None:
        return kind
    if head[257:262] == b"ustar":
        return "tar"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text:
        return "html"
    return None


def _check_expected(url: str, path: Path, expect: Expect, head: bytes | None = None) -> str | None:
    """The sniffed kind of the body in ``path`` (``head``: its first bytes, if already in hand)."""
    if expect is None:
        return None
    if head is None or len(head) < 512:  # too short to rule out tar: read the file
        with open(path, "rb") as fh:
            head = fh.read(512)
    kind = sniff(head)
    wanted = IMAGE_EXTENSIONS.keys() if expect == "image" else ARCHIVE_KINDS
    if kind in wanted:
        return kind
    if kind == "html":
        raise DownloadError(url, f"HTML page, not an {expect}")
    raise DownloadError(url, f"not an {expect}: body starts with {head[:12]!r}")


# --------------------------------------------------------------------------- hashing / files


class _Hashes:
    def __init__(self, md5: bool = True) -> None:
        self.sha = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self.size = 0
        self.head = b""  # the first bytes, to sniff the format without reading the file back

    def update(self, chunk: bytes) -> None:
        if len(self.head) < 512:
            self.head += chunk[: 512 - len(self.head)]
        self.sha.update(chunk)
        if self.md5 is not None:
            self.md5.update(chunk)
        self.size += len(chunk)

    def md5_hex(self) -> str | None:
        return self.md5.hexdigest() if self.md5 is not None else None

    def feed_file(self, path: Path) -> _Hashes:
        with open(path, "rb") as fh:
            while chunk := fh.read(1024 * 1024):
                self.update(chunk)
        return self

    def matches(self, sha256: str | None, md5: str | None) -> bool:
        return (sha256 is None or self.sha.hexdigest() == sha256) and (
            md5 is None or self.md5_hex() == md5
        )


def _digest(value: str | None, length: int, name: str) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if not re.fullmatch(f"[0-9a-f]{{{length}}}", value):
        raise DataError(name, f"not a {length}-hex-digit {name}: {value!r}")
    return value


def fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform, hence best effort.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _decode_file(
    src: Path, dst: Path, encoding: str, cap: int, url: str, md5: bool
) -> _Hashes | None:
    """Undo a gzip/deflate content coding; None if unsupported or not validly encoded."""
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        wbits = 31
    elif encoding == "deflate":
        wbits = 15
    else:
        return None
    hashes = _Hashes(md5)
    decoder = zlib.decompressobj(wbits)
    try:
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            pending = b""
            while pending or (pending := fin.read(CHUNK)):
                out = decoder.decompress(pending, CHUNK)  # bounded: a bomb can't balloon memory
                pending = decoder.unconsumed_tail
                if decoder.eof and decoder.unused_data:  # a further gzip member follows
                    pending, decoder = decoder.unused_data, zlib.decompressobj(wbits)
                hashes.update(out)
                if hashes.size > cap:
                    raise DownloadError(url, f"decoded body exceeds the cap of {cap} bytes")
                fout.write(out)
            tail = decoder.flush()  # output zlib still holds once all input is in (small)
            hashes.update(tail)
            fout.write(tail)
            fout.flush()
            os.fsync(fout.fileno())
    except zlib.error:
        return None
    return hashes if decoder.eof else None


# --------------------------------------------------------------------------- the download


class _Transient(Exception):
    """An attempt failed in a way another attempt may fix."""

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


@dataclass
class _Job:
    url: str
    dest: Path
    sha256: str | None
    md5: str | None
    cap: int
    expect: Expect
    settings: HttpSettings
    deadline: float
    check_headers: Callable[[httpx.Response], None] | None
    check_hop: HopCheck | None
    progress: bool
    hash_md5: bool
    sync_dir: bool
    log_level: int = logging.INFO
    started: float = dataclasses.field(default_factory=time.monotonic)

    def hashes(self) -> _Hashes:
        return _Hashes(self.hash_md5 or self.md5 is not None)

    @property
    def part(self) -> Path:
        return self.dest.with_name(self.dest.name + ".part")

    @property
    def meta(self) -> Path:
        return self.dest.with_name(self.dest.name + ".part.json")

    @property
    def decoded(self) -> Path:
        return self.dest.with_name(self.dest.name + ".decoded.part")

    def discard(self) -> None:
        for path in (self.part, self.meta, self.decoded):
            path.unlink(missing_ok=True)

    def left_s(self) -> float:
        return self.deadline - time.monotonic()

    def deadline_error(self, detail: str) -> DeadlineExceeded:
        return DeadlineExceeded(
            self.url, f"deadline of {self.settings.deadline_s:g} s exceeded {detail}"
        )


def download_file(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    settings: HttpSettings | None = None,
    client: httpx.Client | None = None,
    progress: bool = True,
    max_bytes: int | None = None,
    expect: Expect = None,
    limiter: HostLimiter | None = None,
    check_headers: Callable[[httpx.Response], None] | None = None,
    check_hop: HopCheck | None = None,
    hash_md5: bool = True,
    sync_dir: bool = True,
    log_level: int = logging.INFO,
) -> DownloadResult:
    """Download ``url`` to ``dest`` atomically, verified against the pinned hash(es) if given.

    ``expect`` ("archive" / "image") rejects a body of another kind (an HTML error page served
    with 200). ``check_headers`` sees the response, and each redirect on the way, before its body
    is read and may raise a ``DownloadError`` to refuse it; ``check_hop(from_url, to_url, hop)``
    may refuse a redirect hop the same way (see ``open_following`` for the checks it adds to).
    A ``.part`` is kept after transient failures, so a rerun resumes; it is removed after
    permanent ones. Without a pinned hash an existing ``dest`` is
    fetched again. Two calls must not share one ``dest`` at once.

    ``hash_md5=False`` skips the MD5 unless one is pinned (``DownloadResult.md5`` is then None).
    ``sync_dir=False`` skips the fsync of ``dest``'s folder after the rename (the file itself is
    always fsynced): for callers that rename the file again and sync the folder once themselves.
    ``log_level`` is that of the started, finished and failed lines (a scrape of thousands of
    images passes DEBUG and logs its own summary); a retry is always a WARNING.
    """
    settings = settings or HttpSettings.default()
    dest = Path(dest)
    sha256 = _digest(sha256, 64, "sha256")
    md5 = _digest(md5, 32, "md5")
    if urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError(url, "not an http(s) URL")
    if (sha256 or md5) and dest.is_file():
        have = _Hashes(hash_md5 or md5 is not None).feed_file(dest)
        if have.matches(sha256, md5):  # idempotent rerun: nothing to fetch
            return DownloadResult(
                dest, url, url, have.sha.hexdigest(), have.md5_hex(), have.size,
                None, None, None, attempts=0, resumed=False,
                kind=sniff(have.head) if expect else None,
            )
    dest.parent.mkdir(parents=True, exist_ok=True)
    job = _Job(
        url, dest, sha256, md5, max_bytes if max_bytes is not None else settings.max_bytes,
        expect, settings, time.monotonic() + settings.deadline_s, check_headers, check_hop,
        progress,
        hash_md5, sync_dir, log_level,
    )
    log.log(log_level, "downloading %s to %s", url, dest.name)
    own_client = client is None
    client = client or make_client(settings, max_connections=settings.per_host_concurrency)
    try:
        result = _with_retries(job, client, limiter or shared_limiter(settings))
    except DownloadError as exc:
        failed_level = logging.ERROR if log_level >= logging.INFO else log_level
        log.log(failed_level, "download failed after %d attempt(s): %s", exc.attempts, exc)
        raise
    else:
        seconds = time.monotonic() - job.started
        log.log(log_level, "downloaded %s: %s bytes in %.1f s (%s/s)%s", url,
                f"{result.bytes:,}", seconds, human_bytes(result.bytes / max(seconds, 1e-3)),
                ", resumed" if result.resumed else "")
        return result
    finally:
        if own_client:
            client.close()


def _with_retries(job: _Job, client: httpx.Client, limiter: HostLimiter) -> DownloadResult:
    settings = job.settings
    attempt = 0
    while True:
        attempt += 1
        try:
            return _attempt(job, client, limiter, attempt)
        except _Transient as exc:
            last = exc
        except DownloadError as exc:
            exc.attempts = attempt
            if not isinstance(exc, DeadlineExceeded):
                job.discard()
            raise
        if attempt > settings.retries:
            raise DownloadError(
                job.url, f"gave up after {attempt} attempts: {last.reason}",
                status=last.status, attempts=attempt,
            )
        if last.retry_after is not None:
            delay = min(last.retry_after, settings.retry_after_cap_s)
        else:  # exponential backoff with "equal jitter": never less than half the step
            step = min(settings.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
            delay = step / 2 + random.uniform(0, step / 2)
        if job.left_s() <= delay:
            err = job.deadline_error(f"after {attempt} attempts (last: {last.reason})")
            err.status, err.attempts = last.status, attempt
            raise err
        log.warning("%s: %s; retrying in %.1f s (attempt %d of %d)", job.url, last.reason, delay,
                    attempt + 1, settings.retries + 1)
        time.sleep(delay)


def human_bytes(n: float) -> str:
    """``n`` bytes as "812 B", "3.4 MB" (decimal units, as rates are usually quoted)."""
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("KB", "MB", "GB"):
        n /= 1000
        if n < 1000 or unit == "GB":
            break
    return f"{n:.1f} {unit}"


def _resume_point(job: _Job) -> tuple[int, dict[str, Any]]:
    """Bytes already in ``.part`` that can be resumed safely (else 0), and any sidecar found."""
    try:
        meta = json.loads(job.meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0, {}
    try:
        size = job.part.stat().st_size
    except OSError:
        size = 0
    if meta.get("url") != job.url or not meta.get("validator") or size == 0:
        return 0, meta
    return size, meta


def _attempt(
    job: _Job, client: httpx.Client, limiter: HostLimiter, attempt: int
) -> DownloadResult:
    left = job.left_s()
    if left <= 0:
        raise job.deadline_error("before the request")
    offset, meta = _resume_point(job)
    headers = {"User-Agent": job.settings.user_agent, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        headers["If-Range"] = meta["validator"]
    # No single wait may outlive the deadline.
    timeout = httpx.Timeout(
        min(job.settings.read_timeout_s, left), connect=min(job.settings.connect_timeout_s, left)
    )
    try:
        with open_following(
            client, job.url, headers=headers, timeout=timeout, limiter=limiter,
            max_redirects=job.settings.max_redirects, check_hop=job.check_hop,
            check_response=job.check_headers,
        ) as resp:
            return _receive(job, resp, offset, meta, attempt)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise DownloadError(job.url, f"bad URL: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise _Transient(f"timeout ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise _Transient(f"{type(exc).__name__}: {exc}") from exc


def _content_range(resp: httpx.Response) -> tuple[int | None, int | None]:
    """(start, total) of ``Content-Range: bytes a-b/n`` or ``bytes */n``."""
    value = resp.headers.get("Content-Range", "")
    found = re.fullmatch(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value.strip())
    if not found:
        return None, None
    start, total = found.groups()
    return (int(start) if start else None), (int(total) if total != "*" else None)


def _receive(
    job: _Job, resp: httpx.Response, offset: int, meta: dict[str, Any], attempt: int
) -> DownloadResult:
    status = resp.status_code
    if status in RETRY_STATUSES:
        raise _Transient(
            f"HTTP {status} {resp.reason_phrase}", status,
            parse_retry_after(resp.headers.get("Retry-After")),
        )
    if status == 416 and offset:
        _, total = _content_range(resp)
        if total == offset:  # the .part was complete already
            return _finish(job, job.hashes().feed_file(job.part), meta, attempt, resumed=True)
        job.discard()
        raise _Transient(f"HTTP 416 for a {offset}-byte .part of a {total}-byte file", status)
    if status not in (200, 206):
        raise DownloadError(job.url, f"HTTP {status} {resp.reason_phrase}", status=status)
    if job.check_headers:
        job.check_headers(resp)

    hashes = job.hashes()
    if status == 206:
        if not offset:
            raise DownloadError(job.url, "HTTP 206 to a request without Range", status=status)
        start, _ = _content_range(resp)
        if start != offset:
            job.discard()
            raise _Transient(f"Content-Range starts at {start}, expected {offset}", status)
        hashes.feed_file(job.part)
        mode = "ab"
    length = resp.headers.get("Content-Length")
    total = offset + int(length) if length and length.isdigit() else None
    if total is not None and total > job.cap:
        raise DownloadError(
            job.url, f"Content-Length {total} exceeds the cap of {job.cap} bytes", status=status
        )
    sidecar_later = False  # a small full body writes its sidecar only if it gets cut short
    if status == 200:  # start over, remembering how to resume it
        offset, mode = 0, "wb"
        if meta:  # an older response's sidecar must not vouch for the new bytes
            job.meta.unlink(missing_ok=True)
        meta = _response_meta(job.url, resp)
        sidecar_later = total is not None and total < SIDECAR_UP_FRONT_BYTES
        if not sidecar_later:
            job.meta.write_text(json.dumps(meta), encoding="utf-8")
    show = job.progress and sys.stderr.isatty() and (total is None or total >= PROGRESS_MIN_BYTES)
    # Only build a bar that will show: a disabled tqdm still costs time on every small file.
    bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=job.dest.name,
               leave=False) if show else None
    try:
        with open(job.part, mode) as fh:
            for chunk in resp.iter_raw():  # as read: a chunk size would hide a slow drip
                if hashes.size + len(chunk) > job.cap:
                    raise DownloadError(job.url, f"body exceeds the cap of {job.cap} bytes")
                if job.left_s() < 0:
                    raise job.deadline_error(f"after {hashes.size} bytes")
                fh.write(chunk)
                hashes.update(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        if sidecar_later and hashes.size:  # cut short: keep what came resumable
            job.meta.write_text(json.dumps(meta), encoding="utf-8")
        raise
    finally:
        if bar is not None:
            bar.close()
    return _finish(job, hashes, meta, attempt, resumed=status == 206)


def _response_meta(url: str, resp: httpx.Response) -> dict[str, Any]:
    etag = resp.headers.get("ETag")
    last_modified = resp.headers.get("Last-Modified")
    strong_etag = etag if etag and not etag.startswith("W/") else None  # weak ones can't If-Range
    return {
        "url": url,
        "final_url": str(resp.url),
        "validator": strong_etag or last_modified,
        "etag": etag,
        "last_modified": last_modified,
        "content_type": resp.headers.get("Content-Type"),
        "content_encoding": resp.headers.get("Content-Encoding"),
    }


def _finish(
    job: _Job, raw: _Hashes, meta: dict[str, Any], attempt: int, *, resumed: bool
) -> DownloadResult:
    """Pick raw or decoded body by the pinned hash, check its kind, move it into place."""
    encoding = (meta.get("content_encoding") or "").strip().lower()
    pinned = job.sha256 is not None or job.md5 is not None
    decoded = None
    if encoding not in ("", "identity") and not (pinned and raw.matches(job.sha256, job.md5)):
        decoded = _decode_file(
            job.part, job.decoded, encoding, job.cap, job.url, job.hash_md5 or job.md5 is not None
        )
    if pinned and raw.matches(job.sha256, job.md5):
        chosen, path = raw, job.part
    elif decoded is not None and decoded.matches(job.sha256, job.md5):
        chosen, path = decoded, job.decoded  # without a pin, HTTP semantics: the decoded body
    elif not pinned:
        chosen, path = raw, job.part
    else:
        job.discard()
        if resumed:  # the appended bytes may be what's wrong: one more try from scratch
            raise _Transient("checksum mismatch after resuming; restarting")
        expected = f"sha256 {job.sha256}" if job.sha256 else f"md5 {job.md5}"
        got = f"sha256 {raw.sha.hexdigest()} md5 {raw.md5_hex()}"
        if decoded is not None:
            got += f" (after {encoding} decoding: sha256 {decoded.sha.hexdigest()})"
        raise ChecksumError(job.url, f"checksum mismatch: expected {expected}, got {got}")
    # The head in memory is the file's only when the whole raw body came in this attempt.
    head = chosen.head if path == job.part and not resumed else None
    kind = _check_expected(job.url, path, job.expect, head)
    os.replace(path, job.dest)
    if job.sync_dir:
        fsync_dir(job.dest.parent)
    job.discard()
    return DownloadResult(
        path=job.dest,
        url=job.url,
        final_url=meta.get("final_url") or job.url,
        sha256=chosen.sha.hexdigest(),
        md5=chosen.md5_hex(),
        bytes=chosen.size,
        etag=meta.get("etag"),
        last_modified=meta.get("last_modified"),
        content_type=meta.get("content_type"),
        attempts=attempt,
        resumed=resumed,
        kind=kind,
    )
