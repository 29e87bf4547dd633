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
