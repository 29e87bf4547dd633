"""`lenslab photographer` and `lenslab similar-photographers`: who edited this photo."""

from __future__ import annotations

from pathlib import Path

import click

from lenslab.cli.common import (
    data_root_option,
    emit,
    fail,
    find_images,
    finish,
    format_option,
    load_family,
    model_options,
)


@click.command()
@click.argument("photos", nargs=-1, required=True)
@click.option("--top-k", default=3, show_default=True, type=click.IntRange(min=1),
              help="How many photographers to list per photo.")
@data_root_option
@format_option
@model_options
def photographer(photos: tuple[str, ...], top_k: int, data_root: Path, fmt: str,
                 batch_size: int, device: str, model_version: str) -> None:
    """The most likely photographers of each photo, with their probabilities.

    PHOTOS are image files, folders or glob patterns. The model is the registry's promoted
    `photographer` entry (see `lenslab models`).

    \b
    Examples:
      lenslab photographer portrait.jpg
      lenslab photographer shoot/ 'edits/*.jpg' --top-k 5 --format jsonl
    """
    import torch

    from models.images import as_float, image_tensor

    model, card = load_family(data_root, "photographer", model_version, device)
    arch = card["architecture"]
    names = arch["photographers"]
    where = next(model.parameters()).device
    inputs = find_images(photos)
    rows = []
    for chunk in inputs.batches(batch_size, "photographer"):
        big = as_float(torch.stack([image_tensor(im, arch["feature_size"]) for _, im in chunk]),
                       where)
        small = (as_float(torch.stack([image_tensor(im, arch["ae_size"]) for _, im in chunk]),
                          where) if arch["ae_embedding_dim"] else None)
        with torch.inference_mode():
            p = torch.softmax(model(big, small).float(), 1)
        top = p.topk(min(top_k, p.shape[1]), dim=1)
        for (path, _), scores, idx in zip(chunk, top.values.tolist(), top.indices.tolist(),
                                          strict=True):
            rows += [{"photo": str(path), "rank": rank + 1, "photographer": names[i],
                      "probability": round(s, 4)}
                     for rank, (s, i) in enumerate(zip(scores, idx, strict=True))]
    emit(rows, fmt)
    finish(inputs.rejected)


@click.command("similar-photographers")
@click.argument("name")
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(min=1),
              help="How many photographers to list.")
@data_root_option
@format_option
@click.option("--model-version", default="promoted", show_default=True,
              help="A registry version (see `lenslab models`).")
def similar_photographers(name: str, k: int, data_root: Path, fmt: str,
                          model_version: str) -> None:
    """Photographers whose learned embeddings are closest (cosine) to NAME's. NAME is a
    photographer's name or a number (its position, from 0, in the model's list: `lenslab
    models`); synthetic photographers' names are numbers already.

    \b
    Examples:
      lenslab similar-photographers 7
      lenslab similar-photographers expert_C -k 2
      lenslab similar-photographers 2 -k 10 --format csv
    """
    import pandas as pd

    from models.style.photographer import similar_photographers as nearest

    model, card = load_family(data_root, "photographer", model_version, "cpu")
    vectors = model.model.photographers.weight.detach().numpy()
    table = pd.DataFrame(vectors, index=pd.Index(card["architecture"]["photographers"]))
    try:
        result = nearest(table, name, k)
    except KeyError as err:
        fail(str(err.args[0]))
    emit([{"photographer": p, "cosine": round(float(c), 4)}
          for p, c in zip(result["photographer"], result["cosine"], strict=True)], fmt)
