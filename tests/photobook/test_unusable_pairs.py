"""Preference pairs naming a quarantined or byte-duplicate photo are dropped, counted by reason."""

import numpy as np
import pandas as pd
import pytest

from lenslab.catalog import unusable_images
from lenslab.photobook.rating import annotated_pairs


def _catalog() -> tuple[pd.DataFrame, pd.DataFrame]:
    catalog = pd.DataFrame({"image_id": ["a", "b", "c", "c2"],
                            "duplicate_of": [None, None, None, "c"]})
    quarantine = pd.DataFrame({"image_id": ["bad"], "reason": ["truncated file: 1200 bytes"]})
    return catalog, quarantine


def test_pairs_of_quarantined_or_duplicate_photos_are_dropped_with_a_reason():
    catalog, quarantine = _catalog()
    photos = pd.Series(["a", "b", "c"])  # what was embedded: first copies only
    table = pd.DataFrame({"left": ["a", "bad", "c2", "b"], "right": ["b", "a", "a", "c"],
                          "winner": ["left", "right", "left", "right"]})
    pairs = annotated_pairs(table, photos, unusable_images(catalog, quarantine))
    assert len(pairs) == 2
    assert pairs.first.tolist() == [0, 1] and pairs.second.tolist() == [1, 2]
    assert pairs.y.tolist() == [True, False]
    assert pairs.dropped == {"quarantined (truncated file)": 1, "byte-duplicate": 1}


def test_a_photo_nobody_knows_is_still_an_error():
    catalog, quarantine = _catalog()
    table = pd.DataFrame({"left": ["a"], "right": ["zz"], "winner": ["left"]})
    with pytest.raises(ValueError, match="not in the embeddings"):
        annotated_pairs(table, pd.Series(["a", "b"]), unusable_images(catalog, quarantine))
    assert np.array_equal(annotated_pairs(table.iloc[:0], pd.Series(["a"])).first, [])
