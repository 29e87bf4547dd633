"""The split audit reads the image files: copies and near-copies across splits are found."""

import shutil

import numpy as np
import pandas as pd
from PIL import Image
from skimage import data as skdata

from lenslab import split_audit as A


def _save(path, pixels, quality=90):
    Image.fromarray(pixels).save(path, quality=quality)
    return path.name


def test_copies_and_near_copies_in_two_splits_are_found_and_other_photos_are_not(tmp_path):
    astronaut = skdata.astronaut()
    names = {
        "astronaut": _save(tmp_path / "astronaut.jpg", astronaut),
        # a re-encoded, slightly brighter and smaller near-copy (a burst frame, an export)
        "again": _save(tmp_path / "again.jpg", np.asarray(Image.fromarray(
            np.clip(astronaut * 1.05, 0, 255).astype(np.uint8)).resize((300, 300))), 70),
        "coffee": _save(tmp_path / "coffee.jpg", skdata.coffee()),
        "chelsea": _save(tmp_path / "chelsea.jpg", skdata.chelsea()),
    }
    shutil.copy(tmp_path / "coffee.jpg", tmp_path / "coffee_copy.jpg")
    names["copy"] = "coffee_copy.jpg"

    def files(splits):
        return pd.DataFrame({"image_id": list(splits), "path": [names[k] for k in splits],
                             "split": list(splits.values())})

    clean = A.cross_split_leaks(files({"astronaut": "train", "again": "train",
                                       "coffee": "test", "copy": "test",
                                       "chelsea": "val"}), tmp_path)
    assert clean["same_content"] == [] and clean["near_duplicates"] == []
    assert clean["closest_cross_split_bits"] > A.NEAR_DUPLICATE_BITS and clean["files"] == 5
    assert A.summary(clean) == []

    leaky = A.cross_split_leaks(files({"astronaut": "train", "again": "test", "coffee": "train",
                                       "copy": "val", "chelsea": "val"}), tmp_path)
    assert leaky["same_content"] == [("coffee", "copy")]
    assert [p[:2] for p in leaky["near_duplicates"]] == [("astronaut", "again")]
    assert len(A.summary(leaky)) == 2

    # one image used by two splits is its own copy
    both = pd.concat([files({"chelsea": "train"}), files({"chelsea": "test"})])
    assert A.cross_split_leaks(both, tmp_path)["same_content"] == [("chelsea", "chelsea")]


def test_dhash_is_stable_under_resizing_and_differs_between_photos():
    a = Image.fromarray(skdata.astronaut())
    h = np.array([A.dhash(a), A.dhash(a.resize((128, 128))), A.dhash(Image.fromarray(
        skdata.coffee()))], dtype=np.uint64)
    d = A.hamming(h)
    assert d[0, 1] <= 2 and d[0, 2] > 16 and (np.diag(d) == 0).all()
