"""`lenslab`: apply the trained models to photos.

Every subcommand takes image files, folders or globs, reports unreadable inputs by name and
reason (never a traceback), and exits 0 when every input was answered, 1 when some were rejected,
2 on a usage error.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}
FORMATS = ("table", "jsonl", "csv")


@dataclass
class Inputs:
    images: list[tuple[Path, object]]  # (path, PIL image in RGB)
    rejected: list[tuple[str, str]]  # (what was asked, why it was rejected)


def expand(args: Sequence[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files as given, folders' images (recursively, sorted), glob patterns; missing ones named."""
    paths: list[Path] = []
    missing: list[tuple[str, str]] = []
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            paths += sorted(p for p in path.rglob("*")
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            paths.append(path)
        elif glob.has_magic(arg):
            matches = sorted(Path(p) for p in glob.glob(arg, recursive=True))
            paths += [p for p in matches if p.is_file()]
            if not matches:
                missing.append((arg, "no file matches this pattern"))
        else:
            missing.append((arg, "no such file or folder"))
    return list(dict.fromkeys(paths)), missing


def read_images(args: Sequence[str]) -> Inputs:
    """Decode every input fully (truncated files fail here, not mid-batch)."""
    from PIL import Image, UnidentifiedImageError

    paths, rejected = expand(args)
    images = []
    for path in paths:
        try:
            with Image.open(path) as im:
                im.load()
                images.append((path, im.convert("RGB")))
        except UnidentifiedImageError:
            rejected.append((str(path), "not an image"))
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            rejected.append((str(path), f"unreadable image: {err}"))
    return Inputs(images, rejected)


def batches(items: list, size: int, label: str) -> Iterable[list]:
    from tqdm import tqdm

    with tqdm(total=len(items), desc=label, unit="photo", file=sys.stderr,
              disable=len(items) < size or not sys.stderr.isatty()) as bar:
        for i in range(0, len(items), size):
            chunk = items[i:i + size]
            yield chunk
            bar.update(len(chunk))


def emit(rows: list[dict], fmt: str) -> None:
    if fmt == "jsonl":
        for row in rows:
            click.echo(json.dumps(row, default=str))
    elif fmt == "csv":
        buffer = io.StringIO()
        if rows:
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        click.echo(buffer.getvalue(), nl=False)
    else:
        from tabulate import tabulate

        click.echo(tabulate(rows, headers="keys", floatfmt=".3f") if rows else "(nothing)")


def finish(rejected: list[tuple[str, str]]) -> None:
    for what, why in rejected:
        click.echo(f"lenslab: {what}: {why}", err=True)
    sys.exit(1 if rejected else 0)


def data_root_option(f):
    from lenslab.params import REPO_ROOT

    return click.option("--data-root", type=click.Path(path_type=Path),
                        default=lambda: Path(os.environ.get("LENSLAB_DATA_ROOT",
                                                            REPO_ROOT / "data")),
                        show_default="$LENSLAB_DATA_ROOT or data/",
                        help="The data tree holding the model registry.")(f)


def fail(message: str) -> None:
    click.echo(f"lenslab: {message}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Apply lenslab's trained models to photos.

    \b
    Examples:
      lenslab models
      lenslab selfie me.jpg holiday/ 'shots/*.png' --format jsonl
    """


@main.command()
@data_root_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def models(data_root: Path, fmt: str) -> None:
    """What is trained: every registry entry, its held-out metrics and its data version.

    \b
    Example:
      lenslab models --format jsonl
    """
    from models.registry import entries

    rows = []
    for card in entries(data_root):
        metrics = {k: v for k, v in card.get("metrics", {}).items()
                   if isinstance(v, int | float)}
        rows.append({"family": card["family"], "version": card["version"],
                     "promoted": card["promoted"], "trained": card["created"][:19],
                     "metrics": ", ".join(f"{k}={v:.3g}" for k, v in metrics.items()),
                     "data": "; ".join(f"{k}={v}" for k, v in card.get("data", {}).items())})
    emit(rows, fmt)


@main.command()
@click.argument("photos", nargs=-1, required=True)
@data_root_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--model-version", default="promoted", show_default=True,
              help="A registry version (see `lenslab models`).")
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

    from models.device import pick_device
    from models.images import as_float, image_tensor
    from models.registry import RegistryError, load_model

    try:
        model, card = load_model(data_root, "selfie", model_version, pick_device(device))
    except RegistryError as err:
        fail(str(err))
    size = card["architecture"]["image_size"]
    inputs = read_images(photos)
    rows = []
    for chunk in batches(inputs.images, batch_size, "selfie"):
        x = torch.stack([image_tensor(im, size) for _, im in chunk])
        with torch.inference_mode():
            p = torch.softmax(model(as_float(x, next(model.parameters()).device)).float(), 1)
        for (path, _), p_good in zip(chunk, p[:, 1].tolist(), strict=True):
            rows.append({"photo": str(path), "verdict": "good" if p_good >= 0.5 else "bad",
                         "p_good": round(p_good, 4)})
    emit(rows, fmt)
    finish(inputs.rejected)


if __name__ == "__main__":
    main()
