"""An audit of a train/val/test split that trusts nothing the split function computed.

It reads the image files the models read, hashes their bytes (SHA-256) and their pixels (a
64-bit difference hash: a greyscale 9x8 thumbnail, one bit per horizontal neighbour pair), and
reports any two files in different splits with the same content or near-identical pixels.
A split drawn from groups that were wrong (a threshold that missed a burst, a site label that
was not the background) shows up here, where a check of the groups themselves cannot see it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

# Hamming distance (of 64 bits) at or below which two images count as near-duplicates. On the
# synthetic defaults the closest photos of different bursts differ by 10 bits and of different
# landmark sites by 8, while 71% of same-burst pairs are within 6 (a re-encode moves 0-2).
NEAR_DUPLICATE_BITS = 6


def dhash(image: Image.Image) -> int:
    """The 64-bit difference hash of an image (robust to size, re-encoding and small edits)."""
    grey = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=float)
    bits = (grey[:, 1:] > grey[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def fingerprints(paths: Sequence[Path]) -> pd.DataFrame:
    """sha256 of the bytes and dhash of the pixels of each file, in order."""
    rows = []
    for path in paths:
        data = Path(path).read_bytes()
        with Image.open(path) as im:
            rows.append({"sha256": hashlib.sha256(data).hexdigest(), "dhash": dhash(im)})
    return pd.DataFrame(rows, columns=["sha256", "dhash"])


def hamming(hashes: np.ndarray) -> np.ndarray:
    """(n, n) number of differing bits between every two 64-bit hashes."""
    h = np.asarray(hashes, dtype=np.uint64)
    x = h[:, None] ^ h[None, :]
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(-1)


def cross_split_leaks(files: pd.DataFrame, root: Path,
                      max_bits: int = NEAR_DUPLICATE_BITS) -> dict[str, object]:
    """``files``: image_id, path (relative to ``root``), split; an image used in two splits has
    a row for each. Returns the pairs of rows in different splits whose files have the same
    bytes (an image with itself included), and whose dhashes are at most ``max_bits`` apart
    (each pair once, closest first), and how many files were read."""
    files = files.drop_duplicates(["image_id", "split"]).reset_index(drop=True)
    paths = files["path"].drop_duplicates().tolist()
    prints = fingerprints([root / p for p in paths]).set_index(pd.Index(paths))
    sha = prints.loc[files["path"], "sha256"].to_numpy()
    hashes = prints.loc[files["path"], "dhash"].to_numpy(dtype=np.uint64)
    split = files["split"].to_numpy()
    ids = files["image_id"].to_numpy()
    other = split[:, None] != split[None, :]
    upper = np.triu(np.ones(other.shape, dtype=bool), k=1)
    same = (sha[:, None] == sha[None, :]) & other & upper
    dist = hamming(hashes)
    near = (dist <= max_bits) & other & upper & ~same
    i, j = np.nonzero(near)
    order = np.argsort(dist[i, j], kind="stable")
    return {
        "files": len(paths),
        "same_content": [(str(ids[a]), str(ids[b])) for a, b in zip(*np.nonzero(same),
                                                                    strict=True)],
        "near_duplicates": [(str(ids[i[k]]), str(ids[j[k]]), int(dist[i[k], j[k]]))
                            for k in order],
        "max_bits": max_bits,
        "closest_cross_split_bits": int(dist[other & ~same].min()) if (other & ~same).any()
        else None,
    }


def summary(leaks: dict[str, object]) -> list[str]:
    """The problems found, as lines for a check's description (empty: none)."""
    out = []
    same, near = leaks["same_content"], leaks["near_duplicates"]
    if same:
        out.append(f"{len(same)} pairs with the same content in two splits, e.g. {same[0]}")
    if near:
        out.append(f"{len(near)} near-duplicate pairs (dhash within {leaks['max_bits']} bits) "
                   f"in two splits, e.g. {near[0]}")
    return out
