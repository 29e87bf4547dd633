"""Every synthetic generator by source name: ``GENERATORS[source](distributed, ground_truth, ...)``.

Entries import their module on first call, so listing them costs nothing and a generator that is
not written yet only fails when it is used; ``available()`` names those that exist.
"""

from __future__ import annotations

from lenslab.lazy import LazyFunction

GENERATORS: dict[str, LazyFunction] = {
    "oxford_pets": LazyFunction("lenslab.synthetic.oxford_pets", "generate"),
    "selfies": LazyFunction("lenslab.synthetic.selfies", "generate"),
    "landmark_photos": LazyFunction("lenslab.synthetic.landmarks", "generate"),
    "flickr_aes": LazyFunction("lenslab.synthetic.flickr_aes", "generate"),
    "photo_preferences": LazyFunction("lenslab.synthetic.photo_preferences", "generate"),
    "photographer_folders": LazyFunction("lenslab.synthetic.photographer_folders", "generate"),
}


def available() -> list[str]:
    """Sources whose generator module exists."""
    return [name for name, fn in GENERATORS.items() if fn.available()]
