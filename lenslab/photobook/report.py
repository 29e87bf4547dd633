"""The photobook report: every master vector's held-out figures, the prompt/learned cosines,
near-duplicate groups against the true bursts where known, the reliability diagram and an
example album with a reason per photo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from lenslab.atomic import write_text
from lenslab.photobook.figures import album_sheet, reliability_diagram
from lenslab.photobook.rating import (
    LEARNED,
    Pairs,
    PhotobookLayout,
    Rater,
    burst_agreement,
    ground_truth_rows,
    report_markdown,
    split_spread,
    vector_cosines,
)
from lenslab.seeding import rng


def build_report(layout: PhotobookLayout, photos: pd.DataFrame, e: np.ndarray, root: Path, *,
                 album_photos: int, album_places: int, seed: int, pairs: Pairs,
                 spread: dict, tier_gap: int, c_grid: list[float]
                 ) -> tuple[dict, pd.DataFrame, str]:
    """Write reports/photobook/; return (metrics, the example album, the markdown)."""
    out = layout.report
    rater_json = json.loads(layout.rater.read_text())
    rater = Rater.load(layout)
    splits = pd.read_parquet(layout.splits).set_index("image_id").loc[photos["image_id"]]
    split, groups = splits["split"].to_numpy(), splits["group"].to_numpy()
    test_photos = np.flatnonzero(split == "test")
    m = min(album_photos, len(test_photos))
    offered = np.sort(rng(seed, "photobook", "album").choice(test_photos, m, replace=False))
    # the offered photos plus every near-duplicate of them, so the album has bursts to skip
    offered = np.flatnonzero(np.isin(groups, groups[offered]) & (split == "test"))
    names = photos["image_id"].to_numpy()[offered].tolist()
    album = rater.album(e[offered], names, album_places, LEARNED)
    figures = {"reliability diagram": out / "reliability.png", "example album": out / "album.png"}
    reliability_diagram({n: v for n, v in rater_json["vectors"].items() if v["available"]},
                        figures["reliability diagram"])
    paths = dict(zip(photos["image_id"], photos["normalised_path"], strict=True))
    album_sheet(album, [root / paths[n] for n in album["photo"]], figures["example album"])
    truth = ground_truth_rows(layout, photos["image_id"])
    bursts = None if truth is None else burst_agreement(groups, truth["burst"].to_numpy())
    # the headline's spread over seeded group splits (repeated group k-fold), refitted per split
    spread_figures = split_spread(
        e, pairs, groups, photos["tier"].fillna(-1).to_numpy(dtype=int), tier_gap=tier_gap,
        cs=c_grid, folds=spread["folds"], repeats=spread["repeats"],
        seed=seed) if spread["repeats"] else None
    metrics = {"rater": rater_json, "cosines": vector_cosines(rater.vectors),
               "near_duplicates_vs_bursts": bursts, "split_spread": spread_figures,
               "album": album.to_dict(orient="records"),
               "album_offered": len(offered), "album_places": album_places}
    md = report_markdown(metrics, {k: v.relative_to(root).as_posix()
                                   for k, v in figures.items()})
    write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=float))
    write_text(out / "report.md", md)
    album.to_csv(out / "album.csv", index=False)
    return metrics, album, md
