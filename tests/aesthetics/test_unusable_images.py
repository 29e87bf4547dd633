"""Rated FLICKR-AES images the catalog quarantined are dropped, with the reason, not fatal."""

import pandas as pd
import pytest

from lenslab.aesthetics.splits import image_paths
from lenslab.errors import DataError


def _catalog() -> tuple[pd.DataFrame, pd.DataFrame]:
    catalog = pd.DataFrame({"image_id": ["flickr_aes:40K/a.jpg", "flickr_aes:40K/b.jpg"],
                            "source": "flickr_aes", "duplicate_of": None,
                            "normalised_path": ["catalog/images/aa.jpg", "catalog/images/bb.jpg"]})
    quarantine = pd.DataFrame({"image_id": ["flickr_aes:40K/bad.jpg"],
                               "reason": ["HTML page, not an image"]})
    return catalog, quarantine


def test_a_quarantined_rated_image_is_dropped_with_its_reason():
    catalog, quarantine = _catalog()
    ids = ["flickr_aes:40K/a.jpg", "flickr_aes:40K/bad.jpg", "flickr_aes:40K/b.jpg"]
    paths, dropped = image_paths(catalog, ids, quarantine)
    assert paths.to_dict() == {"flickr_aes:40K/a.jpg": "catalog/images/aa.jpg",
                               "flickr_aes:40K/b.jpg": "catalog/images/bb.jpg"}
    assert dropped == {"flickr_aes:40K/bad.jpg": "quarantined (HTML page, not an image)"}


def test_an_image_neither_catalogued_nor_quarantined_is_still_an_error():
    catalog, quarantine = _catalog()
    with pytest.raises(DataError, match="not in the catalog"):
        image_paths(catalog, ["flickr_aes:40K/new.jpg"], quarantine)
