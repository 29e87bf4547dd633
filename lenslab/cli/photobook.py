"""`lenslab album` (the photobook pick with a reason per photo) and `lenslab compare` (each of
two photos' probability of being the better pick), with the registered photobook rater."""

from __future__ import annotations

from pathlib import Path

import click

from lenslab.cli.common import (
    Inputs,
    data_root_option,
    emit,
    fail,
    find_images,
    finish,
    format_option,
    load_family,
    model_options,
)


def _rater(data_root: Path, version: str, device: str):
    """(rater, encoder) of the registered photobook model, or exit 2 saying what is missing."""
    from models.photobook.rater import encoder_for

    model, card = load_family(data_root, "photobook", version, device)
    try:
        encoder = encoder_for(card["encoder"], model.vector.device)
    except (FileNotFoundError, ValueError) as err:
        fail(f"photobook model {card['version']}: {err}")
    return model.rater(card), encoder


def _embed(encoder, inputs: Inputs, batch_size: int, label: str):
    """(paths answered, their embeddings as float64), a decoded batch at a time."""
    import numpy as np

    paths, parts = [], []
    for chunk in inputs.batches(batch_size, label):
        paths += [path for path, _ in chunk]
        parts.append(encoder.encode_images([im for _, im in chunk], batch_size))
    return paths, np.concatenate(parts).astype(np.float64) if parts else None


@click.command()
@click.argument("photos", nargs=-1, required=True)
@click.option("--places", type=click.IntRange(min=1), required=True,
              help="Photos the album holds (N).")
@data_root_option
@format_option
@model_options
def album(photos: tuple[str, ...], places: int, data_root: Path, fmt: str, batch_size: int,
          device: str, model_version: str) -> None:
    """Pick the best N photos for a photobook: best score first, skipping a photo that is a
    near-duplicate of one already picked. Every photo gets a row with its score, rank, whether
    it is chosen and why.

    PHOTOS are image files, folders or glob patterns.

    \b
    Examples:
      lenslab album holiday/ --places 12
      lenslab album 'shoot/*.jpg' extra.png --places 4 --format csv > album.csv
    """
    from lenslab.photobook.rating import LEARNED

    rater, encoder = _rater(data_root, model_version, device)
    inputs = find_images(photos)
    paths, e = _embed(encoder, inputs, batch_size, "album")
    if paths:
        picks = rater.album(e, [str(p) for p in paths], places, LEARNED)
        emit(picks.to_dict(orient="records"), fmt)
    finish(inputs.rejected)


@click.command()
@click.argument("a")
@click.argument("b")
@data_root_option
@format_option
@model_options
def compare(a: str, b: str, data_root: Path, fmt: str, batch_size: int, device: str,
            model_version: str) -> None:
    """Each of two photos' probability of being the better photobook pick (the two add up to
    1; calibrated on held-out preference pairs).

    \b
    Examples:
      lenslab compare take1.jpg take2.jpg
      lenslab compare a.png b.png --format jsonl
    """
    from lenslab.photobook.rating import LEARNED

    rater, encoder = _rater(data_root, model_version, device)
    inputs = [find_images([arg]) for arg in (a, b)]
    for arg, got in zip((a, b), inputs, strict=True):
        if len(got.paths) > 1 or not (got.paths or got.rejected):
            fail(f"{arg}: compare takes two photos, this names {len(got.paths)}")
    both = Inputs([path for got in inputs for path in got.paths],
                  [r for got in inputs for r in got.rejected])
    paths, e = _embed(encoder, both, batch_size, "compare")
    if not both.rejected:
        p = rater.probabilities(e, LEARNED)
        emit([{"photo": str(path), "p_better": round(float(q), 4), "better_pick": bool(q > 0.5)}
              for path, q in zip(paths, p, strict=True)], fmt)
    finish(both.rejected)
