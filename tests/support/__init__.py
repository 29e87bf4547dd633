"""Test helpers shared by several test files (import as ``tests.support``)."""

from tests.support.fault_server import Delay, Drop, FaultServer, Hit, Route, Status

__all__ = ["Delay", "Drop", "FaultServer", "Hit", "Route", "Status"]
