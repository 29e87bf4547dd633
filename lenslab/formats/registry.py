"""Every dataset parser by source name (``PARSERS[source](extracted, data_root) -> ParseResult``),
and the files each dataset is distributed as (``distribution(source)``).

Entries import their module on first call (see lenslab.lazy); ``available()`` names those that
exist.
"""

from __future__ import annotations

import importlib

from lenslab.formats.reading import Distribution
from lenslab.lazy import LazyFunction

PARSERS: dict[str, LazyFunction] = {
    "oxford_pets": LazyFunction("lenslab.formats.oxford_pets", "parse"),
    "selfies": LazyFunction("lenslab.formats.selfies", "parse"),
    "landmark_photos": LazyFunction("lenslab.formats.landmark_photos", "parse"),
    "flickr_aes": LazyFunction("lenslab.formats.flickr_aes", "parse"),
    "photo_preferences": LazyFunction("lenslab.formats.photo_preferences", "parse"),
    "photographer_folders": LazyFunction("lenslab.formats.photographer_folders", "parse"),
}


def available() -> list[str]:
    """Sources whose parser module exists."""
    return [name for name, fn in PARSERS.items() if fn.available()]


def distribution(source: str) -> Distribution:
    """What a local copy of ``source`` takes from the user's folder (its format module says)."""
    return importlib.import_module(PARSERS[source].module).DISTRIBUTION
