"""What every `lenslab` subcommand shares: reading inputs, batching, output, exit codes.

Every subcommand takes image files, folders or globs, reports unreadable inputs by name and
reason (never a traceback), and exits 0 when every input was answered, 1 when some were rejected,
2 on a usage error.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}
FORMATS = ("table", "jsonl", "csv")


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


@dataclass
class Inputs:
    """The photos asked for, decoded a batch at a time so memory holds one batch, not the set.

    A file that does not decode fully (not an image, truncated, a decompression bomb) joins
    ``rejected`` with the reason when its batch is read, and the others are answered.
    """

    paths: list[Path]
    rejected: list[tuple[str, str]]  # (what was asked, why it was rejected)

    def decode(self, paths: Sequence[Path]) -> list[tuple[Path, Image.Image]]:
        """(path, RGB image) of each of ``paths`` that decodes; the others are rejected."""
        from PIL import Image, UnidentifiedImageError

        from lenslab.images import upright_rgb

        images = []
        for path in paths:
            try:
                with Image.open(path) as im:
                    im.load()
                    # as the catalog reads it: 16-bit grey scaled (not clipped to white), a
                    # phone photo's EXIF orientation applied
                    images.append((path, upright_rgb(im).convert("RGB")))
            except UnidentifiedImageError:
                self.rejected.append((str(path), "not an image"))
            except (OSError, ValueError, Image.DecompressionBombError) as err:
                self.rejected.append((str(path), f"unreadable image: {err}"))
        return images

    def batches(self, size: int, label: str) -> Iterator[list[tuple[Path, Image.Image]]]:
        """Decoded batches of up to ``size`` photos, with a progress bar on a terminal."""
        from tqdm import tqdm

        with tqdm(total=len(self.paths), desc=label, unit="photo", file=sys.stderr,
                  disable=len(self.paths) < size or not sys.stderr.isatty()) as bar:
            for i in range(0, len(self.paths), size):
                chunk = self.paths[i:i + size]
                images = self.decode(chunk)
                bar.update(len(chunk))
                if images:
                    yield images


def find_images(args: Sequence[str]) -> Inputs:
    """The image files that ``args`` name (see ``expand``); nothing is decoded yet."""
    paths, missing = expand(args)
    return Inputs(paths, missing)


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
    from lenslab.paths import default_data_root

    return click.option("--data-root", type=click.Path(path_type=Path),
                        default=default_data_root,
                        show_default="$LENSLAB_DATA_ROOT or data/",
                        help="The data tree holding the model registry.")(f)


def fail(message: str) -> None:
    click.echo(f"lenslab: {message}", err=True)
    sys.exit(2)


def format_option(f):
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                        show_default=True, help="table in a terminal, or JSON Lines / CSV.")(f)


def model_options(f):
    """--batch-size, --device and --model-version, as every model-applying subcommand takes."""
    f = click.option("--model-version", default="promoted", show_default=True,
                     help="A registry version (see `lenslab models`).")(f)
    f = click.option("--device", default="auto", show_default=True,
                     help="auto, cpu, cuda or cuda:N")(f)
    return click.option("--batch-size", default=64, show_default=True,
                        help="Photos per forward pass.")(f)


def load_family(data_root: Path, family: str, version: str, device: str):
    """(model, card) from the registry, or exit 2 naming what is missing."""
    from models.device import pick_device
    from models.registry import RegistryError, load_model

    try:
        return load_model(data_root, family, version, pick_device(device))
    except RegistryError as err:
        fail(str(err))

