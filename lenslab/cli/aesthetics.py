"""`lenslab rate` and `lenslab enhance`: aesthetic scores, generic or personalised."""

from __future__ import annotations

from pathlib import Path

import click

from lenslab.cli.common import (
    IMAGE_SUFFIXES,
    data_root_option,
    emit,
    fail,
    find_images,
    finish,
    format_option,
    load_family,
    model_options,
)

FAMILY = "aesthetics"
USERS_HINT = "list them with `lenslab rate --list-users`"


def _card(data_root: Path, version: str) -> dict:
    from models.registry import RegistryError, load_card

    try:
        return load_card(data_root, FAMILY, version)
    except RegistryError as err:
        fail(str(err))


def _scorer(data_root: Path, user: str | None, version: str, device: str):
    """(scorer, card, label): the generic model, or ``user``'s parameters on top of it."""
    from models.aesthetics.networks import Scorer, apply_personal
    from models.registry import load_extra_state

    card = _card(data_root, version)
    users = card.get("users", {})
    if user is not None and user not in users:
        fail(f"unknown user {user!r}: the {FAMILY} model {card['version']} has personal models "
             f"for {len(users)} users; {USERS_HINT}")
    scorer, card = load_family(data_root, FAMILY, card["version"], device)
    if user is None:
        return scorer, card, "generic"
    mine = users[user]
    net = apply_personal(scorer.net, mine["method"], load_extra_state(data_root, card,
                                                                      mine["state"]),
                         f"user {user}")
    personal = Scorer(scorer.prefix, net, scorer.size).to(next(scorer.parameters()).device)
    return personal.eval(), card, f"{user} ({mine['method']}, k={mine['k']})"


def score_images(scorer, images: list, size: int):
    """Scores of PIL images, one forward pass (the batch's photos squashed to ``size``)."""
    import torch

    from models.images import as_float, image_tensor

    x = torch.stack([image_tensor(im, size) for im in images])
    with torch.inference_mode():
        return scorer(as_float(x, next(scorer.parameters()).device)).float().cpu().tolist()


@click.command()
@click.argument("photos", nargs=-1)
@click.option("--user", default=None,
              help="Score with this user's personal model (default: the generic model).")
@click.option("--list-users", is_flag=True, help="List the users with a personal model, exit.")
@data_root_option
@format_option
@model_options
def rate(photos: tuple[str, ...], user: str | None, list_users: bool, data_root: Path, fmt: str,
         batch_size: int, device: str, model_version: str) -> None:
    """Aesthetic score of each photo (the rating scale of the training data), from the generic
    model or from a user's personalised one.

    PHOTOS are image files, folders or glob patterns.

    \b
    Examples:
      lenslab rate holiday/ 'shots/*.jpg'
      lenslab rate portrait.jpg --user A1XRT4FJ3Q9ZK --format jsonl
      lenslab rate --list-users
    """
    if list_users:
        users = _card(data_root, model_version).get("users", {})
        emit([{"user": u, **{k: v for k, v in info.items() if k != "state"}}
              for u, info in sorted(users.items())], fmt)
        return
    if not photos:
        fail("give at least one photo, folder or glob (see `lenslab rate --help`)")
    scorer, card, label = _scorer(data_root, user, model_version, device)
    inputs = find_images(photos)
    rows = []
    for chunk in inputs.batches(batch_size, "rate"):
        scores = score_images(scorer, [im for _, im in chunk], card["architecture"]["image_size"])
        rows += [{"photo": str(path), "score": round(s, 4), "model": label}
                 for (path, _), s in zip(chunk, scores, strict=True)]
    emit(rows, fmt)
    finish(inputs.rejected)


def _targets(out: Path, paths: list[Path]) -> list[Path]:
    """Where each enhanced photo goes: OUT itself for one photo with an image suffix, else
    OUT/<stem>_enhanced.png (numbered when two inputs share a stem)."""
    if out.suffix.lower() in IMAGE_SUFFIXES:
        if len(paths) > 1:
            fail(f"{len(paths)} photos but -o {out} names one file: give a folder")
        return [out]
    targets, taken = [], set()
    for path in paths:
        name, n = f"{path.stem}_enhanced.png", 1
        while name in taken:
            n += 1
            name = f"{path.stem}_enhanced-{n}.png"
        taken.add(name)
        targets.append(out / name)
    return targets


def _save(image, path: Path) -> None:
    from PIL import Image

    from lenslab.atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        image.save(tmp, format=Image.registered_extensions()[path.suffix.lower()])


def enhance_one(scorer, image, mode: str, settings: dict):
    """(enhanced PIL image, the applied edit or the largest pixel change).

    The ascent runs on the photo squashed to ``settings["size"]``; its result is carried to the
    full photo: the same global edit values, or the pixel change upsampled."""
    import numpy as np
    import torch
    from PIL import Image

    from models.aesthetics.networks import edit_ascent, pixel_ascent, render_edit
    from models.images import image_tensor

    device = next(scorer.parameters()).device
    work = image_tensor(image, settings["size"]).float().div(255).to(device)
    full = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float().div(255)
    if mode == "edits":
        _, values = edit_ascent(scorer, work, settings["steps"], settings["edit_lr"],
                                settings["edit_bound"])
        with torch.no_grad():
            out = render_edit(full, torch.tensor([values[k] for k in values]))
        applied = {k: round(v, 4) for k, v in values.items()}
    else:
        pixel = pixel_ascent(scorer, work, settings["steps"], settings["step_size"],
                             settings["epsilon"])
        change = torch.nn.functional.interpolate((pixel - work)[None].cpu(),
                                                 size=full.shape[-2:], mode="bilinear",
                                                 align_corners=False)[0]
        out = full + change
        applied = {"max_pixel_change": round(float(change.abs().max()), 4)}
    array = (out.clamp(0, 1).permute(1, 2, 0) * 255).round().byte().numpy()
    return Image.fromarray(array), applied


@click.command()
@click.argument("photos", nargs=-1, required=True)
@click.option("--user", required=True, help="Whose taste to enhance for (see "
              "`lenslab rate --list-users`).")
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path),
              help="The enhanced photo (one PHOTO), or a folder for several.")
@click.option("--mode", type=click.Choice(["edits", "pixels"]), default="edits",
              show_default=True, help="edits: exposure, contrast, saturation and temperature "
              "(interpretable); pixels: bounded per-pixel gradient ascent.")
@click.option("--steps", type=int, default=None,
              help="Ascent steps (default: the pipeline's, from the model card).")
@data_root_option
@format_option
@model_options
def enhance(photos: tuple[str, ...], user: str, out: Path, mode: str, steps: int | None,
            data_root: Path, fmt: str, batch_size: int, device: str,
            model_version: str) -> None:
    """Enhance photos for one user's taste by gradient ascent on their personal score; writes
    each enhanced photo and prints the applied edit and the score before and after.

    PHOTOS are image files, folders or glob patterns.

    \b
    Examples:
      lenslab enhance beach.jpg --user A1XRT4FJ3Q9ZK -o beach_for_A1XRT4FJ3Q9ZK.jpg
      lenslab enhance holiday/ --user A1XRT4FJ3Q9ZK -o enhanced/ --mode pixels --format csv
    """
    scorer, card, label = _scorer(data_root, user, model_version, device)
    settings = {**card["enhance"], **({"steps": steps} if steps is not None else {})}
    size = card["architecture"]["image_size"]
    inputs = find_images(photos)
    target_of = dict(zip(inputs.paths, _targets(out, inputs.paths), strict=True))
    rows = []
    for chunk in inputs.batches(batch_size, "enhance"):
        enhanced = []
        for path, image in chunk:
            result, applied = enhance_one(scorer, image, mode, settings)
            _save(result, target_of[path])
            enhanced.append((path, target_of[path], result, applied))
        before = score_images(scorer, [im for _, im in chunk], size)
        after = score_images(scorer, [e[2] for e in enhanced], size)
        rows += [{"photo": str(path), "out": str(target), "model": label, "mode": mode,
                  "score_before": round(b, 4), "score_after": round(a, 4), **applied}
                 for (path, target, _, applied), b, a in zip(enhanced, before, after,
                                                             strict=True)]
    emit(rows, fmt)
    finish(inputs.rejected)
