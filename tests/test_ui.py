"""`dagster dev` serves the project's UI from pyproject.toml alone (no -m/-f flags)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from lenslab.params import REPO_ROOT
from lenslab.paths import SOURCES

pytestmark = pytest.mark.slow

QUERY = "{ assetNodes { assetKey { path } groupName } }"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dagster_dev_serves_every_asset(tmp_path: Path):
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(["dagster", "dev", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        nodes = None
        while time.monotonic() < deadline and nodes is None:
            if proc.poll() is not None:
                pytest.fail(f"dagster dev exited: {proc.stderr.read()[-3000:]}")
            try:
                resp = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": QUERY},
                                  timeout=5)
                nodes = resp.json()["data"]["assetNodes"] if resp.status_code == 200 else None
            except (httpx.HTTPError, KeyError, TypeError):
                time.sleep(1)
        assert nodes is not None, "the UI did not answer within 120 s"
        keys = {"/".join(n["assetKey"]["path"]): n["groupName"] for n in nodes}
        assert {s: "ingestion" for s in SOURCES}.items() <= keys.items()
        assert keys["image_catalog"] == "catalog"
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
