"""`lenslab selfie`: good or bad selfie."""

from __future__ import annotations

from pathlib import Path

import click

from lenslab.cli.common import (
    data_root_option,
    emit,
    find_images,
    finish,
    format_option,
    load_family,
    model_options,
)


@click.command()
@click.argument("photos", nargs=-1, required=True)
@data_root_option
@format_option
@model_options
def selfie(photos: tuple[str, ...], data_root: Path, fmt: str, batch_size: int,
           device: str, model_version: str) -> None:
    """Good or bad selfie, with the probability of good (no face detector needed).

    PHOTOS are image files, folders or glob patterns.

    \b
    Examples:
      lenslab selfie me.jpg
      lenslab selfie selfies/ --format csv > verdicts.csv
    """
    import torch

    from models.images import as_float, image_tensor

    model, card = load_family(data_root, "selfie", model_version, device)
    size = card["architecture"]["image_size"]
    inputs = find_images(photos)
    rows = []
    for chunk in inputs.batches(batch_size, "selfie"):
        x = torch.stack([image_tensor(im, size) for _, im in chunk])
        with torch.inference_mode():
            p = torch.softmax(model(as_float(x, next(model.parameters()).device)).float(), 1)
        for (path, _), p_good in zip(chunk, p[:, 1].tolist(), strict=True):
            rows.append({"photo": str(path), "verdict": "good" if p_good >= 0.5 else "bad",
                         "p_good": round(p_good, 4)})
    emit(rows, fmt)
    finish(inputs.rejected)
