"""Fetch a user-supplied manifest of image URLs, responsibly (research D).

No crawling: only the URLs given. Per URL, in this order:

1. robots.txt of the host (fetched once per host with protego, cached). As common crawlers do:
   unreachable (network error) → allowed; 4xx → allowed (no robots.txt); 429 or 5xx → the whole
   host is treated as disallowed. A ``Crawl-delay`` slows the host's rate further.
2. The image is downloaded with ``download_file(expect="image", max_bytes=max_image_bytes)``;
   its response headers are checked *before the body is read*: an ``X-Robots-Tag`` carrying
   ``noai`` or ``noimageai`` (for everyone or for our product token) skips it. ``noindex`` and
   the rest are recorded in ``x_robots_tag`` but do not skip: we do not index anything.
   Redirects are followed by hand (``open_following``): at most ``max_redirects`` hops, each
   hop's URL checked against its own host's robots.txt, each redirect response's X-Robots-Tag
   checked like the final one's, each request counted against its own host's limits, and no hop
   from another host to a loopback, private or link-local address.
3. The file is saved as ``dest_root / target_dir(row) / f"{sha256}{ext}"`` with the extension of
   the sniffed content, not of the URL.

Requests carry the configured User-Agent and go through one shared ``HostLimiter`` (per-host
concurrency and rate). A status row per URL is written atomically to Parquet; a rerun keeps the
rows that ended ``ok`` with their file present and retries every other row.

Python's share of each download (httpx, hashing, bookkeeping) holds the GIL, so one process tops
out at a few hundred files a second whatever its thread count; ``processes > 1`` shards the URLs
over worker processes that split the per-host limits between them.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import pickle
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import httpx
import pandas as pd
from protego import Protego
from tqdm import tqdm

from lenslab.atomic import write_parquet
from lenslab.errors import DataError
from lenslab.ingest.http import (
    IMAGE_EXTENSIONS,
    DownloadError,
    HostLimiter,
    HttpSettings,
    download_file,
    fsync_dir,
    human_bytes,
    make_client,
    open_following,
)

log = logging.getLogger(__name__)

OK = "ok"
SKIPPED_ROBOTS = "skipped_robots"
SKIPPED_X_ROBOTS = "skipped_x_robots"
FAILED = "failed"

STATUS_DTYPES: dict[str, str] = {
    "url": "string",
    "status": "string",
    "http_status": "Int64",
    "reason": "string",
    "sha256": "string",
    "path": "string",  # relative to dest_root, POSIX separators
    "bytes": "Int64",
    "content_type": "string",
    "fetched_at": "datetime64[us, UTC]",
    "final_url": "string",
    "attempts": "Int64",
    "x_robots_tag": "string",
}
OPT_OUT_DIRECTIVES = frozenset({"noai", "noimageai"})
# X-Robots-Tag directives that take a value after a colon (anything else before a colon is a
# user-agent token, as in "googlebot: noindex").
_VALUED_DIRECTIVES = frozenset(
    {"max-snippet", "max-image-preview", "max-video-preview", "unavailable_after"}
)
ROBOTS_MAX_BYTES = 512 * 1024  # what Google reads of a robots.txt
CHECKPOINT_EVERY_S = 30.0


class OptOutError(DownloadError):
    """The publisher opted out of AI use with an X-Robots-Tag header."""


class RobotsRefusal(DownloadError):
    """A redirect led to a URL that its host's robots.txt disallows."""


def ua_token(user_agent: str) -> str:
    """The product token of a User-Agent ("lenslab/0.1 (+...)" → "lenslab"), for robots rules."""
    return user_agent.split("/", 1)[0].split()[0].lower()


def x_robots_directives(values: list[str], token: str) -> set[str]:
    """Directives in X-Robots-Tag header values that apply to us (everyone's or ``token``'s)."""
    found: set[str] = set()
    for value in values:
        applies = True
        for item in value.split(","):
            item = item.strip().lower()
            name, colon, rest = item.partition(":")
            if colon and name.strip() not in _VALUED_DIRECTIVES:  # "agent: directive"
                applies = name.strip() in (token, "*")
                item = rest.strip()
            if applies and item:
                found.add(item.split(":")[0].strip())
    return found


class RobotsPolicy:
    """robots.txt per scheme+host, fetched once (thread-safe) and cached."""

    def __init__(self, client: httpx.Client, settings: HttpSettings, limiter: HostLimiter):
        self.client = client
        self.settings = settings
        self.limiter = limiter
        self.token = ua_token(settings.user_agent)
        self._lock = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}
        self._rules: dict[str, Protego | str | None] = {}  # str: why the whole host is off

    def disallowed(self, url: str) -> str | None:
        """None if ``url`` may be fetched, else the reason."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        with self._lock:
            host_lock = self._host_locks.setdefault(origin, threading.Lock())
        with host_lock:
            if origin not in self._rules:
                self._rules[origin] = self._fetch(origin)
        rules = self._rules[origin]
        if isinstance(rules, str):
            return rules
        if rules is not None and not rules.can_fetch(url, self.token):
            return f"robots.txt disallows this URL for {self.token!r}"
        return None

    def _fetch(self, origin: str) -> Protego | str | None:
        robots_url = origin + "/robots.txt"
        settings = self.settings
        timeout = httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
        try:
            with open_following(
                self.client, robots_url, headers={"User-Agent": self.settings.user_agent},
                timeout=timeout, limiter=self.limiter, max_redirects=settings.max_redirects,
            ) as resp:
                code = resp.status_code
                if code == 429 or code >= 500:
                    return f"robots.txt answered HTTP {code}: host treated as disallowed"
                if code >= 300:  # 4xx (or a redirect left over): no robots.txt
                    return None
                body = bytearray()
                give_up_at = time.monotonic() + settings.read_timeout_s
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) >= ROBOTS_MAX_BYTES:
                        break
                    if time.monotonic() > give_up_at:  # a slow drip counts as unreachable
                        return None
        except (httpx.HTTPError, DownloadError):
            # unreachable robots.txt (or a redirect refused): allowed, as "no robots.txt"; a
            # refused hop can't reach an internal address this way, the image fetch will tell
            return None
        rules = Protego.parse(bytes(body[:ROBOTS_MAX_BYTES]).decode("utf-8", errors="replace"))
        delay = rules.crawl_delay(self.token)
        if delay:
            self.limiter.set_min_interval(origin, float(delay))
        return rules


def _safe_rel_dir(value: str, url: str) -> PurePosixPath:
    rel = PurePosixPath(str(value).replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts:
        raise DataError(url, f"target_dir {value!r} must be a relative path without '..'")
    return rel


def _url_key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:20]


def _fetch_one(
    url: str,
    row: Mapping[str, Any],
    dest_root: Path,
    target_dir: Callable[[Mapping[str, Any]], str],
    settings: HttpSettings,
    client: httpx.Client,
    limiter: HostLimiter,
    robots: RobotsPolicy,
    on_fetched: Callable[[Path], object] | None = None,
) -> dict[str, Any]:
    record: dict[str, Any] = {"url": url, "fetched_at": pd.Timestamp.now(tz="UTC")}
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        return {**record, "status": FAILED, "reason": "not an http(s) URL"}
    reason = robots.disallowed(url)
    if reason:
        return {**record, "status": SKIPPED_ROBOTS, "reason": reason}
    rel_dir = _safe_rel_dir(target_dir(row), url)
    folder = dest_root / rel_dir
    tmp = folder / f".{_url_key(url)}.download"
    seen: dict[str, Any] = {}

    def check_headers(resp: httpx.Response) -> None:
        values = resp.headers.get_list("X-Robots-Tag")
        seen["x_robots_tag"] = ", ".join(values) or None
        seen["http_status"] = resp.status_code
        opted_out = x_robots_directives(values, robots.token) & OPT_OUT_DIRECTIVES
        if opted_out:
            reason = f"X-Robots-Tag opts out: {', '.join(sorted(opted_out))}"
            raise OptOutError(url, reason, status=resp.status_code)

    def check_hop(current: str, target: str, hop: int) -> None:
        reason = robots.disallowed(target)
        if reason:
            raise RobotsRefusal(url, f"redirect hop {hop} to {target}: {reason}")

    try:
        # No MD5 (nothing pins one) and no folder fsync: the file is renamed once more below,
        # and scrape_manifest syncs each folder once before a status row vouches for it.
        result = download_file(
            url, tmp, settings=settings, client=client, progress=False,
            max_bytes=settings.max_image_bytes, expect="image", limiter=limiter,
            check_headers=check_headers, check_hop=check_hop, hash_md5=False, sync_dir=False,
            log_level=logging.DEBUG,  # one line per image would drown the run's log
        )
    except DownloadError as exc:
        status = (SKIPPED_X_ROBOTS if isinstance(exc, OptOutError)
                  else SKIPPED_ROBOTS if isinstance(exc, RobotsRefusal) else FAILED)
        return {
            **record, **seen, "status": status, "reason": exc.reason,
            "http_status": exc.status, "attempts": exc.attempts,
        }
    ext = IMAGE_EXTENSIONS[str(result.kind)]  # download_file(expect="image") sniffed it
    final = folder / f"{result.sha256}{ext}"
    os.replace(tmp, final)
    if on_fetched is not None:
        on_fetched(final)
    return {
        **record, **seen, "status": OK, "sha256": result.sha256,
        "path": (rel_dir / final.name).as_posix(), "bytes": result.bytes,
        "content_type": result.content_type, "final_url": result.final_url,
        "attempts": result.attempts,
    }


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(STATUS_DTYPES))
    return frame.astype(STATUS_DTYPES)


def _previous(status_path: Path, dest_root: Path) -> dict[str, dict[str, Any]]:
    """Earlier status rows by URL, with rows whose file went missing marked failed."""
    if not status_path.is_file():
        return {}
    old = pd.read_parquet(status_path)
    rows = {}
    for row in old.to_dict("records"):
        row = {k: (None if pd.isna(v) else v) for k, v in row.items() if k in STATUS_DTYPES}
        if row.get("status") == OK:
            path = dest_root / str(row.get("path"))
            if not path.is_file() or path.stat().st_size != row.get("bytes"):
                row |= {"status": FAILED, "reason": "file missing or changed since last run"}
        rows[row["url"]] = row
    return rows


Row = dict[str, Any]


def _scrape_rows(
    todo: list[Row],
    dest_root: Path,
    target_dir: Callable[[Mapping[str, Any]], str],
    settings: HttpSettings,
    workers: int,
    client: httpx.Client | None,
    on_fetched: Callable[[Path], object] | None,
    on_row: Callable[[str, Row], None],
    shares: int = 1,
) -> None:
    """Fetch ``todo`` on a thread pool, handing each URL's status row to ``on_row`` (in this
    thread) as it completes. ``shares``: how many processes split the per-host limits."""
    limiter = HostLimiter(
        settings.per_host_concurrency, settings.per_host_rate_per_s, shares=shares
    )
    own_client = client is None
    client = client or make_client(settings, max_connections=max(workers, 1) * 2)
    robots = RobotsPolicy(client, settings, limiter)
    pool = ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix="scrape")
    try:
        futures: dict[Future, str] = {
            pool.submit(
                _fetch_one, r["url"], r, dest_root, target_dir, settings, client, limiter, robots,
                on_fetched,
            ): r["url"]
            for r in todo
        }
        # as_completed waits on all futures once; a wait() per completion is quadratic
        for future in as_completed(futures):
            on_row(futures[future], future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if own_client:
            client.close()


# In a worker process: where to send rows, and the parent's signal to stop early.
_shard_channel: tuple[Any, Any] | None = None


class _Stopped(Exception):
    """The parent asked this shard to stop (another shard failed)."""


def _init_shard(rows: Any, stop: Any) -> None:
    global _shard_channel
    _shard_channel = (rows, stop)
    # Don't let exit wait on rows nobody will read (the parent gave up); when all went well the
    # parent has read everything, end marks included, before it lets a worker exit.
    rows.cancel_join_thread()


def _portable(exc: Exception) -> Exception:
    """``exc`` if it survives pickling, else its nearest built-in base class with its message
    (``DataError`` takes two arguments, so it can't be rebuilt from its pickle)."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # whatever the failure, it won't reach the parent intact
        pass
    base = next(c for c in type(exc).__mro__ if c.__module__ == "builtins")
    return base(str(exc)) if issubclass(base, Exception) else RuntimeError(str(exc))


def _scrape_shard(
    todo: list[Row],
    dest_root: Path,
    target_dir: Callable[[Mapping[str, Any]], str],
    settings: HttpSettings,
    workers: int,
    on_fetched: Callable[[Path], object] | None,
    shares: int,
) -> None:
    """Worker process: scrape one shard, streaming (url, row) to the parent, then None."""
    assert _shard_channel is not None, "run by scrape_manifest's process pool only"
    rows, stop = _shard_channel

    def send(url: str, row: Row) -> None:
        if stop.is_set():
            raise _Stopped
        rows.put((url, row))

    try:
        _scrape_rows(todo, dest_root, target_dir, settings, workers, None, on_fetched, send,
                     shares)
    except _Stopped:
        pass
    except Exception as exc:
        raise _portable(exc) from exc
    finally:
        rows.put(None)  # this shard's end mark: everything it sent is ahead of it


def _require_picklable(**values: object) -> None:
    for name, value in values.items():
        try:
            pickle.dumps(value)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise TypeError(
                f"{name} must be picklable when processes > 1 (it runs in worker processes): "
                f"use a module-level function or a functools.partial of one, not a lambda or a "
                f"nested function ({exc})"
            ) from exc


def _scrape_in_processes(
    shards: list[list[Row]],
    dest_root: Path,
    target_dir: Callable[[Mapping[str, Any]], str],
    settings: HttpSettings,
    workers: int,
    on_fetched: Callable[[Path], object] | None,
    on_row: Callable[[str, Row], None],
) -> None:
    """One worker process per shard; their rows reach ``on_row`` here as they complete."""
    # Never fork: the caller may have threads (Dagster's do), and a forked lock stays locked.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    rows, stop = ctx.Queue(), ctx.Event()
    error: BaseException | None = None
    with ProcessPoolExecutor(
        len(shards), mp_context=ctx, initializer=_init_shard, initargs=(rows, stop)
    ) as pool:
        futures = [
            pool.submit(_scrape_shard, shard, dest_root, target_dir, settings, workers,
                        on_fetched, len(shards))
            for shard in shards
        ]
        ended = 0
        try:
            # Drain until every shard's end mark, even after an error, so that no row a shard
            # finished is lost from the status table.
            while ended < len(shards):
                try:
                    item = rows.get(timeout=0.2)
                except queue.Empty:
                    failed = [f.exception() for f in futures if f.done() and f.exception()]
                    if failed and error is None:
                        error = failed[0]
                        stop.set()
                    if any(isinstance(e, BrokenProcessPool) for e in failed):
                        break  # a worker died: no end marks will come
                    continue
                if item is None:
                    ended += 1
                else:
                    on_row(*item)
        except BaseException:
            stop.set()
            raise
    error = error or next((f.exception() for f in futures if f.exception()), None)
    if error is not None:
        raise error


def scrape_manifest(
    manifest: pd.DataFrame,
    dest_root: Path,
    *,
    status_path: Path,
    target_dir: Callable[[Mapping[str, Any]], str],
    settings: HttpSettings | None = None,
    workers: int = 8,
    progress: bool = True,
    client: httpx.Client | None = None,
    on_fetched: Callable[[Path], object] | None = None,
    processes: int = 1,
) -> pd.DataFrame:
    """Fetch every ``url`` of ``manifest`` not already fetched; return one status row per URL.

    ``target_dir(row)`` gets the manifest row as a dict and names the sub-folder of ``dest_root``.
    Duplicate URLs are fetched once (the first row's ``target_dir`` wins); rows without a URL
    are ignored. The status table is written to ``status_path`` at the end and every
    ``CHECKPOINT_EVERY_S`` seconds, so an interrupted run loses little.

    ``on_fetched(path)``, if given, runs in the worker thread right after each file lands, so
    CPU work on the image (validating, normalising) overlaps with the other downloads.

    ``processes > 1`` deals the URLs still to fetch round-robin to that many worker processes
    (started with forkserver or spawn, never fork), each running ``workers`` threads with its
    own HTTP client and robots.txt cache (so robots.txt is fetched once per host per process).
    They split the per-host limits: each gets ``per_host_concurrency // processes`` connections
    and ``per_host_rate_per_s / processes`` requests per second (see ``HostLimiter``), and no
    more processes start than ``per_host_concurrency`` allows. ``target_dir`` and
    ``on_fetched`` must then be picklable (module-level functions or ``functools.partial``s of
    them; not lambdas) and ``client`` must be None.
    """
    if "url" not in manifest.columns:
        raise DataError("manifest", "no 'url' column")
    if processes > 1:
        _require_picklable(target_dir=target_dir, on_fetched=on_fetched)
        if client is not None:
            raise ValueError("client can't be shared with worker processes: pass None")
    settings = settings or HttpSettings.default()
    dest_root, status_path = Path(dest_root), Path(status_path)
    manifest = manifest[manifest["url"].notna()].drop_duplicates("url")
    order = list(manifest["url"])
    wanted = set(order)
    rows = {u: r for u, r in _previous(status_path, dest_root).items() if u in wanted}
    todo = [r for r in manifest.to_dict("records") if rows.get(r["url"], {}).get("status") != OK]
    unsynced: set[Path] = set()  # folders with new files whose renames aren't durable yet

    def save() -> None:
        for folder in unsynced:
            fsync_dir(folder)
        unsynced.clear()
        write_parquet(status_path, _frame([rows[u] for u in order if u in rows]))

    log.info("scraping %d URL(s) into %s (%d kept from an earlier run)", len(todo), dest_root,
             len(order) - len(todo))
    started = time.monotonic()
    show = progress and sys.stderr.isatty()
    saved_at = time.monotonic()
    with tqdm(total=len(todo), unit="url", disable=not show) as bar:

        def take(url: str, row: Row) -> None:
            nonlocal saved_at
            rows[url] = row
            if row["status"] == OK:
                unsynced.add((dest_root / row["path"]).parent)
            bar.update()
            if time.monotonic() - saved_at > CHECKPOINT_EVERY_S:
                save()
                saved_at = time.monotonic()

        processes = min(processes, len(todo), settings.per_host_concurrency)
        try:
            if processes > 1:
                shards = [todo[i::processes] for i in range(processes)]
                _scrape_in_processes(shards, dest_root, target_dir, settings, workers,
                                     on_fetched, take)
            else:
                _scrape_rows(todo, dest_root, target_dir, settings, workers, client, on_fetched,
                             take)
        finally:
            save()
    table = _frame([rows[u] for u in order])
    _log_summary(table, {r["url"] for r in todo}, time.monotonic() - started)
    return table


def _log_summary(table: pd.DataFrame, fetched: set[str], seconds: float) -> None:
    """One line for the URLs this run tried: statuses, bytes and rate; one per failure."""
    mine = table[table["url"].isin(fetched)]
    statuses = ", ".join(f"{n} {s}" for s, n in mine["status"].value_counts().items())
    size = float(mine.loc[mine["status"] == OK, "bytes"].fillna(0).sum()) if len(mine) else 0.0
    log.info("scraped %d URL(s) in %.1f s: %s; %s bytes (%s/s)", len(mine), seconds,
             statuses or "nothing to do", f"{size:,.0f}", human_bytes(size / max(seconds, 1e-3)))
    for row in mine[mine["status"] == FAILED].itertuples():
        log.warning("failed %s: %s", row.url, row.reason)
