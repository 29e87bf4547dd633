"""Generic fixtures shared by the whole test suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import FaultServer
from tests.support.browser import browser, page  # noqa: F401  (real headless Chromium fixtures)


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    """A fresh loopback HTTP server with faults on demand (see tests/support/fault_server.py)."""
    with FaultServer() as server:
        yield server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding slow end-to-end tests first (in their own order): with `pytest -n`, the
    long runs start at once and the quick files fill the other workers around them."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: file order kept
