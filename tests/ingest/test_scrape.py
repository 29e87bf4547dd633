"""scrape_manifest against a real loopback server: robots.txt, X-Robots-Tag, statuses, reruns."""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import Image

from lenslab.ingest.http import HttpSettings
from lenslab.ingest.scrape import scrape_manifest, x_robots_directives
from tests.support import Delay, Drop, FaultServer, Status
from tests.support.settings import fast_http_settings

pytestmark = pytest.mark.timeout(30)


def image_bytes(shade: int, fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 12), (shade, 255 - shade, 80)).save(out, format=fmt)
    return out.getvalue()


@pytest.fixture
def settings() -> HttpSettings:
    return fast_http_settings(retries=2, retry_after_cap_s=1)


def site_pose(row: Mapping[str, Any]) -> str:
    """Module-level, so worker processes can unpickle it (processes > 1)."""
    return f"{row['site']}/{row['pose']}"


def scrape(manifest: pd.DataFrame, tmp_path: Path, settings: HttpSettings, **kw) -> pd.DataFrame:
    kw.setdefault("target_dir", site_pose)
    return scrape_manifest(
        manifest, tmp_path / "images", status_path=tmp_path / "status.parquet",
        settings=settings, workers=4, progress=False, **kw,
    )


def manifest_of(urls: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"url": urls, "site": "eiffel", "pose": "front"})


def by_url(status: pd.DataFrame) -> dict[str, dict]:
    return {row["url"]: row for row in status.to_dict("records")}


def test_images_saved_by_hash_with_sniffed_extension(fault_server, settings, tmp_path):
    jpeg, png = image_bytes(10), image_bytes(200, "PNG")
    urls = [fault_server.add("/a.png", jpeg, content_type="image/jpeg"),  # URL lies about type
            fault_server.add("/b", png, content_type="image/png")]
    status = scrape(manifest_of(urls), tmp_path, settings)
    assert list(status["url"]) == urls and set(status["status"]) == {"ok"}
    rows = by_url(status)
    a, b = rows[urls[0]], rows[urls[1]]
    assert a["path"] == f"eiffel/front/{a['sha256']}.jpg"
    assert b["path"] == f"eiffel/front/{b['sha256']}.png"
    assert (tmp_path / "images" / a["path"]).read_bytes() == jpeg
    assert a["bytes"] == len(jpeg) and a["http_status"] == 200 and a["attempts"] == 1
    assert a["content_type"] == "image/jpeg" and a["final_url"] == urls[0]
    assert pd.notna(a["fetched_at"])
    # Only final files in the folder: no temporaries left.
    assert sorted(p.name for p in (tmp_path / "images/eiffel/front").iterdir()) == sorted(
        [Path(a["path"]).name, Path(b["path"]).name]
    )
    saved = pd.read_parquet(tmp_path / "status.parquet")
    pd.testing.assert_frame_equal(saved, status)


def test_robots_txt_disallow_is_honoured(fault_server, settings, tmp_path):
    fault_server.robots(
        "User-agent: *\nDisallow: /private/\n\nUser-agent: lenslab\nDisallow: /nolenslab/\n"
    )
    ok = fault_server.add("/public/a.jpg", image_bytes(1))
    private = fault_server.add("/private/b.jpg", image_bytes(2))
    ours = fault_server.add("/nolenslab/c.jpg", image_bytes(3))
    rows = by_url(scrape(manifest_of([ok, private, ours]), tmp_path, settings))
    assert rows[ok]["status"] == "ok"
    # The "lenslab" group applies to us, and replaces the "*" group.
    assert rows[ours]["status"] == "skipped_robots" and "robots.txt" in rows[ours]["reason"]
    assert rows[private]["status"] == "ok"
    assert fault_server.count("/nolenslab/c.jpg") == 0
    assert fault_server.count("/robots.txt") == 1  # fetched once per host, cached


def test_robots_txt_for_everyone_applies_to_us(fault_server, settings, tmp_path):
    fault_server.robots("User-agent: *\nDisallow: /private/\n")
    private = fault_server.add("/private/b.jpg", image_bytes(2))
    rows = by_url(scrape(manifest_of([private]), tmp_path, settings))
    assert rows[private]["status"] == "skipped_robots"
    assert fault_server.count("/private/b.jpg") == 0


@pytest.mark.parametrize(
    ("robots", "expected"),
    [
        (Status(503), "skipped_robots"),  # server trouble: stay away from the host
        (Status(404), "ok"),  # no robots.txt
        (Drop(after=0), "ok"),  # unreachable robots.txt
    ],
)
def test_robots_txt_unavailable(fault_server, settings, tmp_path, robots, expected):
    fault_server.add("/robots.txt", b"User-agent: *\nDisallow: /\n", faults=[robots])
    url = fault_server.add("/a.jpg", image_bytes(1))
    rows = by_url(scrape(manifest_of([url]), tmp_path, settings))
    assert rows[url]["status"] == expected
    assert fault_server.count("/a.jpg") == (expected == "ok")


def test_crawl_delay_spaces_requests(fault_server, settings, tmp_path):
    fault_server.robots("User-agent: *\nCrawl-delay: 0.25\n")
    urls = [fault_server.add(f"/{i}.jpg", image_bytes(i)) for i in range(4)]
    scrape(manifest_of(urls), tmp_path, settings)
    times = sorted(h.at for h in fault_server.hits() if h.path.endswith(".jpg"))
    assert times[-1] - times[0] >= 0.6  # 3 gaps of 0.25 s, generous bound


def test_x_robots_tag_opt_out_is_honoured(fault_server, settings, tmp_path):
    noai = fault_server.add("/noai.jpg", image_bytes(1), x_robots_tag="noai")
    ours = fault_server.add("/ours.jpg", image_bytes(2), x_robots_tag="lenslab: noimageai")
    other = fault_server.add("/other.jpg", image_bytes(3), x_robots_tag="otherbot: noai")
    noindex = fault_server.add("/noindex.jpg", image_bytes(4), x_robots_tag=["noindex", "nofollow"])
    rows = by_url(scrape(manifest_of([noai, ours, other, noindex]), tmp_path, settings))
    assert rows[noai]["status"] == "skipped_x_robots" and "noai" in rows[noai]["reason"]
    assert rows[ours]["status"] == "skipped_x_robots"
    assert rows[other]["status"] == "ok"
    assert rows[noindex]["status"] == "ok" and "noindex" in rows[noindex]["x_robots_tag"]
    assert pd.isna(rows[noai]["path"])
    assert fault_server.count("/noai.jpg") == 1  # refused, not retried


def test_x_robots_tag_is_checked_before_the_body_is_read(fault_server, settings, tmp_path):
    # Reading this body would take minutes; the headers alone must decide.
    url = fault_server.add("/noai.jpg", image_bytes(1), x_robots_tag="noai", drip_s=0.5)
    start = time.monotonic()
    rows = by_url(scrape(manifest_of([url]), tmp_path, settings))
    assert rows[url]["status"] == "skipped_x_robots" and time.monotonic() - start < 2


def test_robots_txt_of_a_redirect_target_is_honoured(fault_server, settings, tmp_path):
    with FaultServer() as other:  # another port: another host for robots.txt and the limits
        other.robots("User-agent: *\nDisallow: /private/\n")
        target = other.add("/private/a.jpg", image_bytes(1))
        url = fault_server.add("/a.jpg", redirect_to=target)
        rows = by_url(scrape(manifest_of([url]), tmp_path, settings))
        assert rows[url]["status"] == "skipped_robots"
        assert "hop 1" in rows[url]["reason"] and target in rows[url]["reason"]
        assert other.count("/private/a.jpg") == 0 and other.count("/robots.txt") == 1


def test_x_robots_tag_on_a_redirect_is_honoured(fault_server, settings, tmp_path):
    target = fault_server.add("/b.jpg", image_bytes(1))
    url = fault_server.add("/a.jpg", faults=[
        Status(302, headers={"Location": target, "X-Robots-Tag": "noai"})])
    rows = by_url(scrape(manifest_of([url]), tmp_path, settings))
    assert rows[url]["status"] == "skipped_x_robots" and "noai" in rows[url]["reason"]
    assert fault_server.count("/b.jpg") == 0


def test_per_host_limits_apply_to_the_redirect_target(fault_server, settings, tmp_path):
    settings = dataclasses.replace(settings, per_host_concurrency=1)
    with FaultServer() as a, FaultServer() as b, FaultServer() as c:
        urls = []
        for i, origin in enumerate((a, b, c)):
            target = fault_server.add(f"/{i}.jpg", image_bytes(i), faults=[Delay(0.3)])
            urls.append(origin.add(f"/{i}.jpg", redirect_to=target))
        status = scrape(manifest_of(urls), tmp_path, settings)
    assert set(status["status"]) == {"ok"}
    assert fault_server.max_in_flight == 1  # three origins, one connection to the target


def test_x_robots_directives_parsing():
    assert x_robots_directives(["noindex, noai"], "lenslab") == {"noindex", "noai"}
    assert x_robots_directives(["googlebot: noai", "lenslab: noimageai"], "lenslab") == {
        "noimageai"
    }
    assert x_robots_directives(["max-snippet: 20, noai"], "lenslab") == {"max-snippet", "noai"}


def test_statuses_and_rerun_retries_only_failures(fault_server, settings, tmp_path):
    good = fault_server.add("/good.jpg", image_bytes(1))
    missing = fault_server.add("/missing.jpg", b"", status=404)
    broken = fault_server.add("/broken.jpg", b"", status=500)
    html = fault_server.add("/html.jpg", b"<html>login</html>", content_type="text/html")
    manifest = manifest_of([good, missing, broken, html])
    rows = by_url(scrape(manifest, tmp_path, settings))
    assert [rows[u]["status"] for u in (good, missing, broken, html)] == ["ok"] + ["failed"] * 3
    assert rows[missing]["http_status"] == 404 and rows[missing]["attempts"] == 1
    assert rows[broken]["http_status"] == 500 and rows[broken]["attempts"] == settings.retries + 1
    assert "HTML page, not an image" in rows[html]["reason"]
    counts = {p: fault_server.count(p) for p in ("/good.jpg", "/missing.jpg", "/broken.jpg")}

    fault_server.add("/broken.jpg", image_bytes(9))  # the server got fixed
    rows = by_url(scrape(manifest, tmp_path, settings))
    assert rows[broken]["status"] == "ok" and rows[good]["status"] == "ok"
    assert fault_server.count("/good.jpg") == counts["/good.jpg"]  # kept, not fetched again
    assert fault_server.count("/missing.jpg") == counts["/missing.jpg"] + 1
    assert fault_server.count("/broken.jpg") == counts["/broken.jpg"] + 1


def test_rerun_refetches_a_file_that_went_missing(fault_server, settings, tmp_path):
    url = fault_server.add("/a.jpg", image_bytes(1))
    first = scrape(manifest_of([url]), tmp_path, settings)
    (tmp_path / "images" / first.loc[0, "path"]).unlink()
    again = scrape(manifest_of([url]), tmp_path, settings)
    assert again.loc[0, "status"] == "ok" and fault_server.count("/a.jpg") == 2
    assert (tmp_path / "images" / again.loc[0, "path"]).is_file()


def test_per_host_rate_limit_and_user_agent(fault_server, settings, tmp_path):
    settings = dataclasses.replace(settings, per_host_rate_per_s=10, per_host_concurrency=2)
    urls = [fault_server.add(f"/{i}.jpg", image_bytes(i), faults=[Delay(0.05)]) for i in range(6)]
    status = scrape(manifest_of(urls), tmp_path, settings)
    assert set(status["status"]) == {"ok"}
    hits = fault_server.hits()  # robots.txt + 6 images, all from one host
    assert len(hits) == 7
    assert hits[-1].at - hits[0].at >= 0.5  # 6 gaps of 0.1 s, generous bound
    assert fault_server.max_in_flight <= 2
    assert {h.headers["user-agent"] for h in hits} == {settings.user_agent}


def test_bad_urls_are_recorded_as_failures(fault_server, settings, tmp_path):
    urls = ["ftp://example.invalid/a.jpg", "not a url"]
    rows = by_url(scrape(manifest_of(urls), tmp_path, settings))
    assert {rows[u]["status"] for u in urls} == {"failed"}
    assert fault_server.hits() == []


def test_duplicate_urls_fetched_once(fault_server, settings, tmp_path):
    url = fault_server.add("/a.jpg", image_bytes(1))
    status = scrape(manifest_of([url, url]), tmp_path, settings)
    assert len(status) == 1 and fault_server.count("/a.jpg") == 1


def test_target_dir_must_stay_inside(fault_server, settings, tmp_path):
    url = fault_server.add("/a.jpg", image_bytes(1))
    manifest = pd.DataFrame({"url": [url], "site": "..", "pose": "x"})
    with pytest.raises(ValueError, match="target_dir"):
        scrape(manifest, tmp_path, settings)


# --------------------------------------------------------------------------- processes > 1
# Each call with processes=2 starts two worker processes (about a second): keep these few.

COMPARED = ["url", "status", "http_status", "reason", "sha256", "path", "bytes", "content_type",
            "final_url", "attempts", "x_robots_tag"]


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_processes_fetch_the_same_as_one_process(fault_server, settings, tmp_path):
    fault_server.robots("User-agent: *\nDisallow: /private/\n")
    urls = [fault_server.add(f"/{i}.jpg", image_bytes(i * 20)) for i in range(7)]
    urls += [
        fault_server.add("/b.png", image_bytes(7, "PNG")),
        fault_server.add("/missing.jpg", b"", status=404),
        fault_server.add("/noai.jpg", image_bytes(8), x_robots_tag="noai"),
        fault_server.add("/private/c.jpg", image_bytes(9)),
    ]
    manifest = pd.concat([manifest_of(urls), manifest_of(urls[:2])])  # duplicates: fetched once
    one = scrape(manifest, tmp_path / "one", settings)
    fault_server.reset_hits()
    two = scrape(manifest, tmp_path / "two", settings, processes=2)
    pd.testing.assert_frame_equal(one[COMPARED], two[COMPARED])
    assert list(two["url"]) == urls  # manifest order, not completion order
    assert files_under(tmp_path / "one/images") == files_under(tmp_path / "two/images")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "two/status.parquet"), two)
    assert all(fault_server.count(p) == 1 for p in ("/0.jpg", "/1.jpg", "/missing.jpg"))


def test_processes_rerun_retries_only_failures(fault_server, settings, tmp_path):
    goods = [fault_server.add(f"/good{i}.jpg", image_bytes(i)) for i in range(4)]
    broken = fault_server.add("/broken.jpg", b"", status=500)
    manifest = manifest_of([*goods, broken])
    rows = by_url(scrape(manifest, tmp_path, settings, processes=2))
    assert [rows[u]["status"] for u in [*goods, broken]] == ["ok"] * 4 + ["failed"]
    fault_server.add("/broken.jpg", image_bytes(9))  # the server got fixed
    fault_server.reset_hits()
    rows = by_url(scrape(manifest, tmp_path, settings, processes=2))
    assert {r["status"] for r in rows.values()} == {"ok"}
    assert [h.path for h in fault_server.hits() if h.path != "/robots.txt"] == ["/broken.jpg"]


def test_processes_need_a_picklable_target_dir(fault_server, settings, tmp_path):
    url = fault_server.add("/a.jpg", image_bytes(1))
    with pytest.raises(TypeError, match="target_dir must be picklable"):
        scrape(manifest_of([url]), tmp_path, settings, processes=2,
               target_dir=lambda row: "images")
    assert fault_server.hits() == []


@pytest.mark.parametrize("concurrency", [1, 2])
def test_processes_keep_per_host_concurrency_overall(fault_server, settings, tmp_path, concurrency):
    settings = dataclasses.replace(settings, per_host_concurrency=concurrency)
    urls = [fault_server.add(f"/{i}.jpg", image_bytes(i), faults=[Delay(0.1)]) for i in range(8)]
    status = scrape(manifest_of(urls), tmp_path, settings, processes=2)  # 4 threads each
    assert set(status["status"]) == {"ok"}
    assert fault_server.max_in_flight <= concurrency


def test_a_scrape_logs_its_retries_with_the_wait_and_a_summary(fault_server, settings, tmp_path,
                                                                caplog):
    urls = [fault_server.add("/busy.jpg", image_bytes(30), content_type="image/jpeg",
                             faults=[Status(503, {"Retry-After": "1"})]),
            fault_server.add("/fine.jpg", image_bytes(90), content_type="image/jpeg"),
            fault_server.add("/dead.jpg", status=404)]
    with caplog.at_level("INFO", logger="lenslab.ingest"):
        scrape(manifest_of(urls), tmp_path, settings)
    lines = [r.getMessage() for r in caplog.records if r.levelname in ("INFO", "WARNING")]
    assert lines[0].startswith("scraping 3 URL(s)"), lines
    retries = [line for line in lines if "retrying in" in line]
    assert len(retries) == 1 and urls[0] in retries[0] and "retrying in 1.0 s" in retries[0]
    summary = next(line for line in lines if line.startswith("scraped 3 URL(s)"))
    assert "2 ok" in summary and "1 failed" in summary and "/s)" in summary
    assert any(line.startswith(f"failed {urls[2]}") for line in lines), lines
