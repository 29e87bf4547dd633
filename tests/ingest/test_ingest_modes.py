"""Every source's three ways in, through real Dagster materialisations.

local: a real-format folder with broken files in it; http: archives served with faults by a
loopback server, pinned by SHA-256; manifest: landmark photos scraped from URLs with robots.txt,
X-Robots-Tag and a dead link. The asset finishes, the good files are all there, every bad one is
reported with its reason.
"""

import hashlib
import json
import tarfile

import dagster as dg
import pandas as pd
import pytest

from lenslab.paths import SOURCES, DataLayout
from lenslab.synthetic.registry import GENERATORS
from orchestration.definitions import all_assets, all_checks
from orchestration.kit.http import HttpClient
from orchestration.kit.resources import DataRoot, TorchDevice
from tests.support import Drop, Status

pytestmark = pytest.mark.slow
SCALE = 0.2
FAST_HTTP = HttpClient(connect_timeout_s=2, read_timeout_s=2, deadline_s=30, retries=3,
                       backoff_s=0.01, per_host_rate_per_s=0, per_host_concurrency=4)


def _materialize(root, selection, ops_config):
    config = {"ops": {s: {"config": {"scale": SCALE}} for s in SOURCES
                      if selection is None or s in selection}}
    for op, extra in ops_config.items():
        config["ops"][op]["config"].update(extra)
    return dg.materialize(
        [*all_assets, *all_checks], selection=selection,
        resources={"data_root": DataRoot(path=str(root)), "http": FAST_HTTP,
                   "device": TorchDevice()},
        run_config=config, raise_on_error=False,
    )


def _synthetic(source, dest):
    GENERATORS[source](dest / "distributed", dest / "truth", seed=3, scale=SCALE)
    return dest / "distributed"


def test_local_oxford_with_broken_files_quarantines_them_and_keeps_the_rest(tmp_path):
    tree = tmp_path / "oxford-iiit-pet"
    for archive in sorted(_synthetic("oxford_pets", tmp_path / "gen").glob("*.tar.gz")):
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
    images = sorted((tree / "images").glob("[a-z]*.jpg"))
    truncated, html = images[0], images[1]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    html.write_bytes(b"<!DOCTYPE html><html><body>503 Service Unavailable</body></html>")
    with open(tree / "annotations" / "list.txt", "a") as fh:
        fh.write("not_a_valid_row 1 2\n")
    lines = (tree / "annotations" / "list.txt").read_text().splitlines()

    root = tmp_path / "data"
    result = _materialize(root, [*SOURCES, "image_catalog"],
                          {"oxford_pets": {"mode": "local", "path": str(tree)}})
    assert result.success
    layout = DataLayout(root)
    report = json.loads(layout.ingest_report("oxford_pets").read_text())
    bad_row = [r for r in report["rejected"] if r["line"] == len(lines)]
    assert bad_row and "list.txt" in bad_row[0]["file"], report["rejected"]

    quarantine = pd.read_parquet(layout.quarantine).set_index("image_id")
    reasons = {i.split("/")[-1]: r for i, r in quarantine["reason"].items()}
    assert "truncated" in reasons[truncated.name].lower() or "corrupt" in reasons[
        truncated.name].lower(), reasons[truncated.name]
    assert reasons[html.name] == "HTML page, not an image"
    for path in quarantine["quarantined_path"]:
        assert (root / path).is_file()
    catalog = pd.read_parquet(layout.catalog)
    oxford = catalog[catalog["source"] == "oxford_pets"]
    assert len(oxford) == len(pd.read_parquet(layout.records("oxford_pets"))) - 2


def test_http_oxford_survives_faults_and_verifies_pinned_hashes(tmp_path, fault_server):
    dist = _synthetic("oxford_pets", tmp_path / "gen")
    files = {}
    for name, faults in (("images.tar.gz", [Status(500), Drop(after=20_000)]),
                         ("annotations.tar.gz", [Status(429, {"Retry-After": "1"})])):
        body = (dist / name).read_bytes()
        url = fault_server.add(f"/pets/{name}", body, faults=faults)
        files[name] = {"url": url, "sha256": hashlib.sha256(body).hexdigest()}

    root = tmp_path / "data"
    result = _materialize(root, ["oxford_pets"],
                          {"oxford_pets": {"mode": "http", "files": files}})
    assert result.success
    assert fault_server.count("/pets/images.tar.gz") == 3  # 500, dropped mid-body, resumed
    assert any("range" in h.headers for h in fault_server.hits("/pets/images.tar.gz"))
    assert fault_server.count("/pets/annotations.tar.gz") == 2
    layout = DataLayout(root)
    for name, spec in files.items():
        got = hashlib.sha256((layout.distributed("oxford_pets") / name).read_bytes()).hexdigest()
        assert got == spec["sha256"]
    assert len(pd.read_parquet(layout.records("oxford_pets"))) > 0

    # a rerun with the same spec downloads nothing
    fault_server.reset_hits()
    assert _materialize(root, ["oxford_pets"],
                        {"oxford_pets": {"mode": "http", "files": files}}).success
    assert fault_server.hits() == []


def test_http_404_fails_the_asset_naming_the_url(tmp_path, fault_server):
    url = fault_server.add("/gone/images.tar.gz", status=404)
    files = {"images.tar.gz": {"url": url, "sha256": "0" * 64}}
    result = _materialize(tmp_path / "data", ["oxford_pets"],
                          {"oxford_pets": {"mode": "http", "files": files}})
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    message = error.cause.message if error.cause else error.message  # the DownloadError
    assert url in message and "404" in message, message
    assert fault_server.count("/gone/images.tar.gz") == 1  # 404 is not retried


def test_landmark_manifest_scrape_honours_opt_outs_and_retries_only_failures(
    tmp_path, fault_server
):
    dist = _synthetic("landmark_photos", tmp_path / "gen")
    base = fault_server.serve_dir("/photos", dist)
    manifest = pd.read_csv(dist / "manifest.csv", skipinitialspace=True)
    manifest["url"] = base + manifest["url"].str.replace(" ", "%20")
    blocked, opted_out, dead = manifest["url"].iloc[0], manifest["url"].iloc[1], "/dead.png"
    fault_server.robots(f"User-agent: *\nDisallow: {blocked.removeprefix(fault_server.base_url)}\n")
    fault_server.add(opted_out.removeprefix(fault_server.base_url),
                     (dist / manifest["url"].iloc[1].split("/photos/")[1].replace("%20", " "))
                     .read_bytes(), content_type="image/png", x_robots_tag="noai")
    dead_row = manifest.iloc[[2]].assign(url=fault_server.url(dead))
    fault_server.add(dead, status=500)
    manifest = pd.concat([manifest, dead_row], ignore_index=True)
    manifest_path = tmp_path / "manifest.csv"
    manifest.to_csv(manifest_path, index=False)

    root = tmp_path / "data"
    config = {"landmark_photos": {"mode": "http", "manifest_url": str(manifest_path)}}
    result = _materialize(root, ["landmark_photos"], config)
    assert result.success
    layout = DataLayout(root)
    status = pd.read_parquet(layout.distributed("landmark_photos") / "scrape_status.parquet")
    by_url = status.set_index("url")["status"]
    assert by_url[blocked] == "skipped_robots"
    assert by_url[opted_out] == "skipped_x_robots"
    assert by_url[fault_server.url(dead)] == "failed"
    assert (by_url == "ok").sum() == len(manifest) - 3
    records = pd.read_parquet(layout.records("landmark_photos"))
    assert len(records) == len(manifest) - 3

    # the rerun asks again only for what did not end ok
    fault_server.reset_hits()
    fault_server.route(dead).status = 200
    fault_server.route(dead).body = (dist / manifest["url"].iloc[2].split("/photos/")[1]
                                     .replace("%20", " ")).read_bytes()
    assert _materialize(root, ["landmark_photos"], config).success
    asked = {h.path for h in fault_server.hits() if h.path != "/robots.txt"}
    ok_before = {u.removeprefix(fault_server.base_url) for u in by_url[by_url == "ok"].index}
    assert dead in asked and not (asked & ok_before)


def test_skipped_archive_members_are_in_the_materialisation_metadata(tmp_path):
    from tests.ingest.test_local_source import _hostile_selfies

    mine = _hostile_selfies(tmp_path / "mine", tmp_path)
    result = _materialize(tmp_path / "data", ["selfies"],
                          {"selfies": {"mode": "local", "path": str(mine)}})
    assert result.success
    metadata = result.asset_materializations_for_node("selfies")[0].metadata
    assert metadata["skipped_archive_members"].value == 3
    table = metadata["skipped_members"].value
    assert "../evil.txt" in table and "path escapes the destination" in table, table
    assert "Selfie-dataset/passwd" in table and "Selfie-dataset.tar.gz" in table
    assert "macOS AppleDouble" in metadata["skipped_by_reason"].value


def test_download_start_retry_and_end_are_in_the_run_log(tmp_path, fault_server):
    dist = _synthetic("selfies", tmp_path / "gen")
    body = (dist / "Selfie-dataset.tar.gz").read_bytes()
    url = fault_server.add("/selfies.tar.gz", body, faults=[Status(503, {"Retry-After": "1"})])
    files = {"Selfie-dataset.tar.gz": {"url": url, "sha256": hashlib.sha256(body).hexdigest()}}
    instance = dg.DagsterInstance.ephemeral()
    config = {"ops": {"selfies": {"config": {"scale": SCALE, "mode": "http", "files": files}}}}
    result = dg.materialize(
        [*all_assets, *all_checks], selection=["selfies"], instance=instance,
        resources={"data_root": DataRoot(path=str(tmp_path / "data")), "http": FAST_HTTP,
                   "device": TorchDevice()}, run_config=config)
    messages = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any(m.startswith(f"downloading {url}") for m in messages), messages
    assert any(url in m and "retrying in 1.0 s" in m for m in messages), messages
    assert any(m.startswith(f"downloaded {url}: {len(body):,} bytes") for m in messages)
