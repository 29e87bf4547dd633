"""A function imported on first call, so a registry can name modules that may not exist yet."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LazyFunction:
    """``module.name``, imported when called (keeps registries cheap and import cycles away)."""

    module: str
    name: str

    def load(self) -> Callable[..., Any]:
        return getattr(importlib.import_module(self.module), self.name)

    def available(self) -> bool:
        """True when the module exists (without importing it)."""
        try:
            return importlib.util.find_spec(self.module) is not None
        except ModuleNotFoundError:
            return False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)
