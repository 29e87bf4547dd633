"""download_file against a real loopback server that misbehaves on demand."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import tarfile
import threading
import time
from pathlib import Path

import pytest

from lenslab.ingest.http import (
    ChecksumError,
    DeadlineExceeded,
    DownloadError,
    HostLimiter,
    HttpSettings,
    download_file,
    hop_allowed,
    parse_retry_after,
)
from lenslab.params import load_params
from tests.support import Delay, Drop, Status
from tests.support.settings import fast_http_settings

BODY = bytes(range(256)) * 800  # 200 KiB: several chunks, so a drop leaves a resumable .part
SHA = hashlib.sha256(BODY).hexdigest()

pytestmark = pytest.mark.timeout(30)  # a regression must fail, not hang on a dripping server


@pytest.fixture
def settings() -> HttpSettings:
    return fast_http_settings()


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def make_tar_gz() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("images/a.txt")
        data = b"hello " * 1000
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def test_download_verifies_and_identifies_itself(fault_server, settings, tmp_path):
    url = fault_server.add("/data.bin", BODY)
    result = download_file(url, tmp_path / "data.bin", sha256=SHA, settings=settings)
    assert (tmp_path / "data.bin").read_bytes() == BODY
    assert (result.sha256, result.bytes, result.attempts) == (SHA, len(BODY), 1)
    assert not result.resumed
    assert result.md5 == hashlib.md5(BODY).hexdigest()
    assert result.etag and result.last_modified and result.content_type
    assert files_in(tmp_path) == ["data.bin"]  # no .part / sidecar left behind
    (hit,) = fault_server.hits("/data.bin")
    assert hit.headers["user-agent"] == settings.user_agent
    assert hit.headers["accept-encoding"] == "identity"


@pytest.mark.parametrize("code", [403, 404, 410])
def test_client_errors_are_not_retried(fault_server, settings, tmp_path, code):
    url = fault_server.add("/gone", b"nope", status=code)
    with pytest.raises(DownloadError) as err:
        download_file(url, tmp_path / "gone", settings=settings)
    assert url in str(err.value) and str(code) in str(err.value)
    assert err.value.status == code
    assert fault_server.count("/gone") == 1
    assert files_in(tmp_path) == []


def test_429_retry_after_is_honoured(fault_server, settings, tmp_path):
    url = fault_server.add("/busy", BODY, faults=[Status(429, {"Retry-After": "1"})])
    start = time.monotonic()
    result = download_file(url, tmp_path / "busy", sha256=SHA, settings=settings)
    assert time.monotonic() - start >= 0.9  # waited as told, not the 10 ms backoff
    assert result.attempts == 2 and fault_server.count("/busy") == 2


def test_retry_after_is_capped(fault_server, settings, tmp_path):
    settings = dataclasses.replace(settings, retry_after_cap_s=0.2)
    url = fault_server.add("/busy", BODY, faults=[Status(503, {"Retry-After": "3600"})])
    start = time.monotonic()
    download_file(url, tmp_path / "busy", sha256=SHA, settings=settings)
    assert time.monotonic() - start < 2


def test_parse_retry_after_forms():
    assert parse_retry_after("7") == 7.0
    now = 1_700_000_000.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:40 GMT", now=now) == pytest.approx(20.0)
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:00 GMT", now=now) == 0.0  # in the past
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_500_then_success(fault_server, settings, tmp_path):
    url = fault_server.add("/flaky", BODY, faults=[Status(500), Status(502)])
    result = download_file(url, tmp_path / "flaky", sha256=SHA, settings=settings)
    assert result.attempts == 3 and fault_server.count("/flaky") == 3


def test_persistent_503_gives_up_after_the_retries(fault_server, settings, tmp_path):
    url = fault_server.add("/down", b"", status=503)
    with pytest.raises(DownloadError, match="gave up after 4 attempts") as err:
        download_file(url, tmp_path / "down", settings=settings)
    assert url in str(err.value) and err.value.status == 503
    assert fault_server.count("/down") == settings.retries + 1


def test_dropped_connection_resumes_with_range(fault_server, settings, tmp_path):
    url = fault_server.add("/big", BODY, faults=[Drop(after=150_000)])
    result = download_file(url, tmp_path / "big", sha256=SHA, settings=settings)
    first, second = fault_server.hits("/big")
    assert "range" not in first.headers
    assert second.headers["range"].startswith("bytes=") and second.headers["range"] != "bytes=0-"
    assert second.headers["if-range"] == result.etag
    assert result.resumed and result.sha256 == SHA
    assert (tmp_path / "big").read_bytes() == BODY


def test_a_later_call_resumes_the_part_of_an_earlier_one(fault_server, settings, tmp_path):
    url = fault_server.add("/big", BODY, faults=[Drop(after=150_000)])
    with pytest.raises(DownloadError):
        download_file(url, tmp_path / "big", settings=dataclasses.replace(settings, retries=0))
    assert not (tmp_path / "big").exists() and (tmp_path / "big.part").stat().st_size > 0
    result = download_file(url, tmp_path / "big", sha256=SHA, settings=settings)
    assert result.resumed and "range" in fault_server.hits("/big")[-1].headers
    assert files_in(tmp_path) == ["big"]


def test_changed_file_restarts_instead_of_splicing(fault_server, settings, tmp_path):
    url = fault_server.add("/big", BODY, faults=[Drop(after=150_000)])
    with pytest.raises(DownloadError):
        download_file(url, tmp_path / "big", settings=dataclasses.replace(settings, retries=0))
    new = BODY[::-1]
    fault_server.route("/big").body = new  # new ETag: the If-Range no longer holds
    result = download_file(url, tmp_path / "big", sha256=hashlib.sha256(new).hexdigest(),
                           settings=settings)
    assert not result.resumed and (tmp_path / "big").read_bytes() == new


def test_416_on_a_complete_part_finishes_it(fault_server, settings, tmp_path):
    url = fault_server.add("/big", BODY)
    etag = '"' + SHA[:16] + '"'  # what the server sends
    (tmp_path / "big.part").write_bytes(BODY)
    (tmp_path / "big.part.json").write_text(json.dumps({"url": url, "validator": etag}))
    result = download_file(url, tmp_path / "big", sha256=SHA, settings=settings)
    (hit,) = fault_server.hits("/big")
    assert hit.headers["range"] == f"bytes={len(BODY)}-"
    assert result.sha256 == SHA and files_in(tmp_path) == ["big"]


def test_slow_drip_fails_at_the_deadline(fault_server, settings, tmp_path):
    settings = dataclasses.replace(settings, deadline_s=1.0, read_timeout_s=5)
    url = fault_server.add("/drip", BODY, drip_s=0.05)  # would take hours; each byte < timeout
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="deadline") as err:
        download_file(url, tmp_path / "drip", settings=settings)
    assert 0.9 <= time.monotonic() - start < 3
    assert url in str(err.value) and not (tmp_path / "drip").exists()
    assert (tmp_path / "drip.part").stat().st_size > 0  # kept: a rerun resumes it


def test_silent_server_fails_at_the_deadline_not_the_read_timeout(fault_server, settings, tmp_path):
    settings = dataclasses.replace(settings, deadline_s=1.0, read_timeout_s=30)
    url = fault_server.add("/stall", BODY, faults=[Delay(20)])
    start = time.monotonic()
    with pytest.raises(DownloadError, match="deadline"):
        download_file(url, tmp_path / "stall", settings=settings)
    assert time.monotonic() - start < 3


def test_redirects_are_followed(fault_server, settings, tmp_path):
    url = fault_server.add("/old", redirect_to="/new")
    fault_server.add("/new", BODY)
    result = download_file(url, tmp_path / "f", sha256=SHA, settings=settings)
    assert result.final_url.endswith("/new") and result.url == url


def test_redirect_loop_is_a_clear_error(fault_server, settings, tmp_path):
    url = fault_server.add("/loop", redirect_to="/loop")
    with pytest.raises(DownloadError, match="redirect loop") as err:
        download_file(url, tmp_path / "loop", settings=settings)
    assert url in str(err.value)
    assert fault_server.count("/loop") == settings.max_redirects + 1  # one chain, not retried


def test_a_redirect_chain_longer_than_max_redirects_is_refused_with_the_hop_named(
        fault_server, settings, tmp_path):
    settings = dataclasses.replace(settings, max_redirects=3)
    for i in range(5):  # /r0 -> /r1 -> ... -> /r4 -> /end: five hops
        fault_server.add(f"/r{i}", redirect_to=f"/r{i + 1}" if i < 4 else "/end")
    fault_server.add("/end", BODY)
    url = fault_server.url("/r0")
    with pytest.raises(DownloadError, match="hop 4") as err:
        download_file(url, tmp_path / "far", settings=settings)
    assert url in str(err.value) and "more than 3 redirects" in str(err.value)
    assert fault_server.count("/r4") == 0 and fault_server.count("/end") == 0
    # Exactly max_redirects hops are followed.
    result = download_file(fault_server.url("/r2"), tmp_path / "near", sha256=SHA,
                           settings=settings)
    assert result.final_url.endswith("/end")


def test_hop_allowed_keeps_redirects_away_from_internal_addresses():
    public, other_public = ["93.184.216.34"], ["2606:2800:220:1:248:1893:25c8:1946"]
    assert hop_allowed(public, other_public)
    for internal in (["127.0.0.1"], ["10.1.2.3"], ["192.168.0.7"], ["172.16.5.5"],
                     ["169.254.169.254"], ["::1"], ["fe80::1"], ["fd00::5"],
                     ["::ffff:127.0.0.1"], ["0.0.0.0"], ["93.184.216.35", "127.0.0.1"]):
        assert not hop_allowed(public, internal), internal
        # A manifest that already lives on such an address may redirect within them.
        assert hop_allowed(["127.0.0.1"], internal), internal
    assert hop_allowed(["10.0.0.2"], public)


def test_a_redirect_from_a_public_host_to_loopback_is_refused(
        fault_server, settings, tmp_path, monkeypatch):
    import lenslab.ingest.http as http

    real = http.resolve_addresses

    def resolve(host: str, port: int) -> list[str]:  # "localhost" plays a public host
        return ["93.184.216.34"] if host == "localhost" else real(host, port)

    monkeypatch.setattr(http, "resolve_addresses", resolve)
    fault_server.add("/secret", BODY)
    fault_server.add("/hop", redirect_to=fault_server.url("/secret"))  # to 127.0.0.1
    url = fault_server.url("/hop").replace("127.0.0.1", "localhost")
    with pytest.raises(DownloadError, match="hop 1") as err:
        download_file(url, tmp_path / "f", settings=settings)
    assert url in str(err.value) and "loopback, private or link-local" in str(err.value)
    assert fault_server.count("/secret") == 0 and fault_server.count("/hop") == 1


def test_a_download_resumes_after_a_cross_host_redirect(fault_server, settings, tmp_path):
    # 127.0.0.1 and localhost are two hosts to the client; both are loopback, as is the origin.
    fault_server.add("/big", BODY, faults=[Drop(after=150_000)])
    url = fault_server.add("/old", redirect_to=fault_server.url("/big").replace(
        "127.0.0.1", "localhost"))
    result = download_file(url, tmp_path / "big", sha256=SHA, settings=settings)
    first, second = fault_server.hits("/big")
    assert "range" not in first.headers and first.headers["host"].startswith("localhost")
    assert second.headers["range"].startswith("bytes=") and second.headers["range"] != "bytes=0-"
    assert second.headers["if-range"] == result.etag
    assert result.resumed and result.final_url.startswith("http://localhost")
    assert (tmp_path / "big").read_bytes() == BODY


@pytest.mark.parametrize("expect", ["archive", "image"])
def test_html_page_with_200_is_rejected(fault_server, settings, tmp_path, expect):
    page = b"<!DOCTYPE html><html><body>Quota exceeded</body></html>"
    url = fault_server.add("/file", page, content_type="text/html")
    with pytest.raises(DownloadError, match=f"HTML page, not an {expect}") as err:
        download_file(url, tmp_path / "file", settings=settings, expect=expect)
    assert url in str(err.value) and files_in(tmp_path) == []
    assert fault_server.count("/file") == 1


def test_expected_kinds_are_accepted(fault_server, settings, tmp_path):
    url = fault_server.add("/a.tar.gz", make_tar_gz())
    download_file(url, tmp_path / "a.tar.gz", settings=settings, expect="archive")
    with pytest.raises(DownloadError, match="not an image"):
        download_file(url, tmp_path / "a.jpg", settings=settings, expect="image")


def test_mislabelled_gzip_encoding_keeps_the_published_bytes(fault_server, settings, tmp_path):
    archive = make_tar_gz()
    url = fault_server.add("/a.tar.gz", archive, content_encoding="gzip")  # Apache AddEncoding
    sha = hashlib.sha256(archive).hexdigest()
    result = download_file(url, tmp_path / "a.tar.gz", sha256=sha, settings=settings,
                           expect="archive")
    assert result.sha256 == sha and (tmp_path / "a.tar.gz").read_bytes() == archive
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        assert tar.getnames() == ["images/a.txt"]


def test_compliant_server_does_not_gzip_on_the_fly(fault_server, settings, tmp_path):
    url = fault_server.add("/f.bin", BODY, gzip="accepted")
    result = download_file(url, tmp_path / "f.bin", sha256=SHA, settings=settings)
    assert result.sha256 == SHA


def test_on_the_fly_gzip_despite_identity_matches_decoded(fault_server, settings, tmp_path):
    url = fault_server.add("/f.bin", BODY, gzip="always")
    result = download_file(url, tmp_path / "f.bin", sha256=SHA, settings=settings)
    assert result.sha256 == SHA and (tmp_path / "f.bin").read_bytes() == BODY
    assert files_in(tmp_path) == ["f.bin"]


def test_on_the_fly_gzip_without_a_pin_keeps_the_decoded_body(fault_server, settings, tmp_path):
    url = fault_server.add("/f.bin", BODY, gzip="always")
    download_file(url, tmp_path / "f.bin", settings=settings)
    assert (tmp_path / "f.bin").read_bytes() == BODY


def test_sha256_mismatch_leaves_no_file(fault_server, settings, tmp_path):
    url = fault_server.add("/f.bin", BODY)
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as err:
        download_file(url, tmp_path / "f.bin", sha256=wrong, settings=settings)
    message = str(err.value)
    assert url in message and wrong in message and SHA in message
    assert files_in(tmp_path) == [] and fault_server.count("/f.bin") == 1


def test_md5_cross_check(fault_server, settings, tmp_path):
    url = fault_server.add("/f.bin", BODY)
    with pytest.raises(ChecksumError, match="md5"):
        download_file(url, tmp_path / "f.bin", sha256=SHA, md5="0" * 32, settings=settings)
    result = download_file(url, tmp_path / "f.bin", sha256=SHA,
                           md5=hashlib.md5(BODY).hexdigest(), settings=settings)
    assert result.bytes == len(BODY)


def test_content_length_over_the_cap_is_refused(fault_server, settings, tmp_path):
    url = fault_server.add("/huge", BODY)
    with pytest.raises(DownloadError, match="exceeds the cap"):
        download_file(url, tmp_path / "huge", settings=settings, max_bytes=1000)
    assert files_in(tmp_path) == [] and fault_server.count("/huge") == 1


def test_running_count_over_the_cap_aborts(fault_server, settings, tmp_path):
    url = fault_server.add("/huge", BODY, content_length=False)
    with pytest.raises(DownloadError, match="exceeds the cap"):
        download_file(url, tmp_path / "huge", settings=settings, max_bytes=100_000)
    assert files_in(tmp_path) == []


def test_gzip_bomb_is_capped_after_decoding(fault_server, settings, tmp_path):
    url = fault_server.add("/bomb", bytes(5_000_000), gzip="always")  # ~5 KB on the wire
    with pytest.raises(DownloadError, match="exceeds the cap"):
        download_file(url, tmp_path / "bomb", settings=settings, max_bytes=1_000_000)
    assert files_in(tmp_path) == []


def test_idempotent_rerun_makes_no_request(fault_server, settings, tmp_path):
    url = fault_server.add("/f.bin", BODY)
    download_file(url, tmp_path / "f.bin", sha256=SHA, settings=settings)
    again = download_file(url, tmp_path / "f.bin", sha256=SHA, settings=settings)
    assert again.attempts == 0 and fault_server.count("/f.bin") == 1


def test_wrong_existing_file_is_replaced(fault_server, settings, tmp_path):
    url = fault_server.add("/f.bin", BODY)
    (tmp_path / "f.bin").write_bytes(b"stale")
    download_file(url, tmp_path / "f.bin", sha256=SHA, settings=settings)
    assert (tmp_path / "f.bin").read_bytes() == BODY


def test_failed_download_never_touches_the_final_file(fault_server, settings, tmp_path):
    (tmp_path / "f.bin").write_bytes(b"previous good copy")
    url = fault_server.add("/f.bin", BODY, faults=[Drop(after=70_000)])
    with pytest.raises(DownloadError):
        download_file(url, tmp_path / "f.bin", settings=dataclasses.replace(settings, retries=0))
    assert (tmp_path / "f.bin").read_bytes() == b"previous good copy"
    url = fault_server.add("/g.bin", BODY, faults=[Drop(after=70_000)])
    with pytest.raises(DownloadError):
        download_file(url, tmp_path / "g.bin", settings=dataclasses.replace(settings, retries=0))
    assert not (tmp_path / "g.bin").exists()  # only the resumable g.bin.part


def test_not_http_is_refused(settings, tmp_path):
    with pytest.raises(DownloadError, match="not an http"):
        download_file("file:///etc/hosts", tmp_path / "x", settings=settings)


def test_host_limiter_caps_concurrency(fault_server, settings, tmp_path):
    limiter = HostLimiter(concurrency=2, rate_per_s=0)
    urls = [fault_server.add(f"/f{i}", BODY, faults=[Delay(0.2)]) for i in range(6)]

    def fetch(i: int) -> None:
        download_file(urls[i], tmp_path / f"f{i}", settings=settings, limiter=limiter)

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert fault_server.max_in_flight == 2
    assert len(files_in(tmp_path)) == 6


def test_host_limiter_spaces_requests(fault_server, settings, tmp_path):
    limiter = HostLimiter(concurrency=4, rate_per_s=10)
    for i in range(5):
        url = fault_server.add(f"/f{i}", b"x")
        download_file(url, tmp_path / f"f{i}", settings=settings, limiter=limiter)
    times = [h.at for h in fault_server.hits()]
    assert times[-1] - times[0] >= 0.35  # 4 gaps of 0.1 s, generous bound


def test_settings_from_params():
    settings = HttpSettings.from_params(load_params())
    assert settings.user_agent.startswith("lenslab/") and settings.retries >= 0
    with pytest.raises(ValueError, match="unknown keys"):
        HttpSettings.from_params({**load_params()["http"], "retires": 3})


def test_fault_server_serves_a_directory(fault_server, settings, tmp_path):
    served = tmp_path / "served"
    (served / "sub").mkdir(parents=True)
    (served / "sub" / "a.bin").write_bytes(gzip.compress(b"a"))
    (tmp_path / "secret.bin").write_bytes(b"outside the served folder")
    base = fault_server.serve_dir("/files", served)
    result = download_file(base + "sub/a.bin", tmp_path / "a.bin", settings=settings)
    assert result.bytes == len(gzip.compress(b"a"))
    with pytest.raises(DownloadError, match="404"):
        download_file(base + "%2e%2e/secret.bin", tmp_path / "x", settings=settings)


def test_a_download_logs_its_start_each_retry_with_the_wait_and_its_end(
        fault_server, settings, tmp_path, caplog):
    url = fault_server.add("/logged", BODY, faults=[Status(503, {"Retry-After": "1"})])
    with caplog.at_level("INFO", logger="lenslab.ingest"):
        download_file(url, tmp_path / "logged", sha256=SHA, settings=settings, progress=False)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("lenslab.ingest")]
    assert len(lines) == 3, lines
    started, retried, finished = lines
    assert started.startswith("downloading") and url in started
    assert "503" in retried and "retrying in 1.0 s" in retried and "attempt 2 of 4" in retried
    assert url in finished and f"{len(BODY):,} bytes" in finished and "/s" in finished


def test_a_failed_download_logs_why(fault_server, settings, tmp_path, caplog):
    url = fault_server.add("/gone", status=404)
    with caplog.at_level("INFO", logger="lenslab.ingest"), pytest.raises(DownloadError):
        download_file(url, tmp_path / "gone", settings=settings)
    failed = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(failed) == 1 and url in failed[0].getMessage() and "404" in failed[0].getMessage()
