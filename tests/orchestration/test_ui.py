"""`dagster dev` serves the project's UI from pyproject.toml alone (no -m/-f flags); checked over
GraphQL and in a real headless browser, and one asset launched through the UI's GraphQL endpoint
materialises. Screenshots go to test-artifacts/."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lenslab.params import REPO_ROOT
from lenslab.paths import SOURCES
from tests.support.browser import SCREENSHOTS, free_port

pytestmark = pytest.mark.slow

ARTIFACTS = SCREENSHOTS
GROUPS = ("ingestion", "catalog", "style", "selfie", "photobook", "pose", "aesthetics", "reports")
NODES = "{ assetNodes { assetKey { path } groupName } }"
LOCATION = ("{ repositoriesOrError { ... on RepositoryConnection {"
            " nodes { name location { name } } } } }")
LAUNCH = """mutation($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
RUN = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
MATERIALISED = """query($key: AssetKeyInput!) { assetOrError(assetKey: $key) {
  ... on Asset { assetMaterializations(limit: 1) { runId } } } }"""


class Ui:
    def __init__(self, url: str) -> None:
        self.url = url

    def graphql(self, query: str, **variables) -> dict:
        resp = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables},
                          timeout=30)
        resp.raise_for_status()
        return resp.json()["data"]


@pytest.fixture(scope="module")
def ui(tmp_path_factory) -> Iterator[Ui]:
    """`dagster dev` on a free loopback port with a throwaway instance and data root."""
    tmp = tmp_path_factory.mktemp("ui")
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp), "LENSLAB_DATA_ROOT": str(tmp / "data"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    # the log goes to a file: a pipe nobody reads fills up and blocks dagster dev mid-run
    log = tmp / "dagster-dev.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(["dagster", "dev", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=REPO_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)
    ui = Ui(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dagster dev exited: {log.read_text()[-3000:]}")
            try:
                if ui.graphql(NODES)["assetNodes"]:
                    break
            except (httpx.HTTPError, KeyError, TypeError):
                pass
            assert time.monotonic() < deadline, "the UI did not answer within 180 s"
            time.sleep(1)
        yield ui
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a busy code server can outlive the polite request
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _dismiss_welcome(page) -> None:
    """A fresh instance greets the first visit with a community dialog; skip it."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=5_000)
        skip.click()
    except Exception:  # no dialog this time
        pass


def test_dagster_dev_serves_every_asset_in_its_stage_group(ui):
    keys = {"/".join(n["assetKey"]["path"]): n["groupName"]
            for n in ui.graphql(NODES)["assetNodes"]}
    assert {s: "ingestion" for s in SOURCES}.items() <= keys.items()
    assert keys["image_catalog"] == "catalog"
    assert set(GROUPS) <= set(keys.values())


def test_the_asset_graph_page_shows_the_stage_groups_in_a_browser(ui, page):
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{ui.url}/asset-groups", wait_until="networkidle")
    _dismiss_welcome(page)
    try:
        for group in GROUPS:
            page.get_by_text(group, exact=True).first.wait_for(timeout=60_000)
    finally:
        page.screenshot(path=str(ARTIFACTS / "dagster_asset_graph.png"), full_page=True)
    page.goto(f"{ui.url}/assets/image_catalog", wait_until="networkidle")
    page.get_by_text("image_catalog").first.wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "dagster_image_catalog.png"), full_page=True)


def test_an_asset_launched_through_the_ui_graphql_endpoint_materialises(ui, page):
    repo = ui.graphql(LOCATION)["repositoriesOrError"]["nodes"][0]
    params = {
        "selector": {"repositoryLocationName": repo["location"]["name"],
                     "repositoryName": repo["name"], "pipelineName": "__ASSET_JOB",
                     "assetSelection": [{"path": ["photo_preferences"]}]},
        "runConfigData": {"ops": {"photo_preferences": {"config": {"scale": 0.1}}}},
        "mode": "default",
    }
    launched = ui.graphql(LAUNCH, params=params)["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 300
    status = None
    while status not in ("SUCCESS", "FAILURE", "CANCELED"):
        assert time.monotonic() < deadline, f"run {run_id} still {status} after 300 s"
        time.sleep(2)
        status = ui.graphql(RUN, id=run_id)["runOrError"]["status"]
    assert status == "SUCCESS"
    asset = ui.graphql(MATERIALISED, key={"path": ["photo_preferences"]})["assetOrError"]
    assert asset["assetMaterializations"][0]["runId"] == run_id
    page.goto(f"{ui.url}/runs/{run_id}", wait_until="networkidle")
    page.get_by_text("Success").first.wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "dagster_run.png"), full_page=True)
