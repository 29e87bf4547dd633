"""Errors that name what was wrong and where: the file, the line, or the URL."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad input that cannot be used. ``where`` is a path, ``path:line`` or a URL."""

    def __init__(self, where: str | Path, reason: str, line: int | None = None):
        self.where = str(where)
        self.line = line
        self.reason = reason
        loc = f"{self.where}:{line}" if line is not None else self.where
        super().__init__(f"{loc}: {reason}")
