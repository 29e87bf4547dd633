"""The rater from master vectors: each vector's scale calibrated on validation pairs, scored on
the test pairs (accuracy with grouped intervals, ECE, reliability), written as rater.json and the
test-pair predictions the web page, the album and the report read."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from lenslab.atomic import write_parquet, write_text
from lenslab.photobook.rating import (
    Pairs,
    PhotobookLayout,
    differences,
    evaluate_vector,
    fit_scale,
    sigmoid,
    split_pairs,
    true_quality,
)


def calibrate_rater(layout: PhotobookLayout, photos: pd.DataFrame, e: np.ndarray, info: dict,
                    pairs: Pairs, *, duplicate_threshold: float, bins: int, resamples: int,
                    seed: int) -> dict:
    """Write rater.json and the test-pair predictions; return the rater's json."""
    provenance = json.loads(layout.provenance.read_text())
    arrays = np.load(layout.vectors)
    splits = pd.read_parquet(layout.splits).set_index("image_id").loc[photos["image_id"]]
    split, units = splits["split"], splits["group"].to_numpy()
    by_split = split_pairs(pairs, split.to_numpy())
    val, test = by_split.val, by_split.test
    truth = true_quality(layout, photos["image_id"])
    rater = {"encoder": info, "duplicate_threshold": duplicate_threshold, "vectors": {}}
    ids = photos["image_id"].to_numpy()
    predictions = pd.DataFrame({"first": ids[test.first], "second": ids[test.second],
                                "first_won": test.y, "strict": by_split.strict_test})
    for name, prov in provenance["vectors"].items():
        entry = {"available": prov["available"], "description": prov["description"]}
        if prov["available"]:
            vector = arrays[f"vector_{name}"]
            scale = fit_scale(differences(e, val) @ vector, val.y)
            entry.update(scale=scale, **evaluate_vector(
                e, vector, scale, test, predictions["strict"].to_numpy(), truth, units=units,
                bins=bins, seed=seed, resamples=resamples, name=name))
            predictions[f"p_{name}"] = sigmoid(scale * (differences(e, test) @ vector))
        rater["vectors"][name] = entry
    rater["test_pairs"] = len(test)
    rater["strict_test_pairs"] = int(predictions["strict"].sum())
    rater["val_pairs"] = len(val)
    write_text(layout.rater, json.dumps(rater, indent=2, default=float))
    write_parquet(layout.predictions, predictions)
    return rater
