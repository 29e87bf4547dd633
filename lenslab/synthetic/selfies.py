"""Synthetic UCF Selfie Data Set: drawn selfies whose hidden quality drives the popularity score.

Writes ``distributed/Selfie-dataset.tar.gz`` holding ``Selfie-dataset/images/<name>.jpg``,
``Selfie-dataset/selfie_dataset.txt`` and ``Selfie-dataset/README.txt``, in the format read by
:mod:`lenslab.formats.selfies`; names look like the real Instagram media ids. Into
``ground_truth/``: ``quality_factors.csv`` (name, the hidden factors, the noise-free
``quality``, and the attributes as drawn before annotation noise).

Each selfie is a drawn face (skin tone, face shape, hair colour and style, eyes, mouth, glasses,
sunglasses, hat, earphones, braces, phone, mirror) consistent with its 36 attributes, in front
of a blurred room. Hidden quality factors change how it was taken: exposure (dim when negative),
harsh side light, lens blur, framing (face offset and size; a face cut by the frame is a partial
face), camera tilt, sensor noise and background clutter. The noise-free quality is a fixed
function of those factors and of smiling, sunglasses and frowning; the popularity score is that
quality plus Gaussian noise, so good and bad selfies (score quantiles) are learnable from the
pixels but far from certain. Annotators are imperfect too: some attribute labels are 0
(unlabelled) and some are flipped.

Knobs:
    images=600        selfies at scale 1.0
    size=160          image side in pixels
    score_noise=0.5   standard deviation of the popularity noise (quality's is about 0.6)
    unlabelled=0.03   share of attribute labels written as 0
    flipped=0.02      share of attribute labels written wrong
"""

from __future__ import annotations

import colorsys
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter

from lenslab.edits import EditParams
from lenslab.formats.selfies import ATTRIBUTES, IMAGES_DIR, LIST_FILE, WRAPPER
from lenslab.seeding import rng
from lenslab.synthetic.common import encode_jpeg, scaled, write_ground_truth, write_tar_gz
from lenslab.synthetic.figures import (
    SUPERSAMPLE,
    Colour,
    FaceLook,
    draw_bust,
    draw_face,
    draw_phone,
    finish,
)

ARCHIVE = "Selfie-dataset.tar.gz"
AGES = ("baby", "child", "teenager", "youth", "middle_age", "senior")
RACES = ("white", "black", "asian")
SHAPES = ("oval_face", "round_face", "heart_face")
SKIN = {"white": ((241, 198, 172), (228, 176, 146), (250, 214, 190)),
        "black": ((141, 85, 54), (112, 68, 42), (92, 58, 38)),
        "asian": ((236, 196, 158), (222, 180, 140), (210, 165, 125))}
HAIR = {"black_hair": (28, 24, 22), "blond_hair": (222, 190, 120), "brown_hair": (105, 68, 40),
        "red_hair": (160, 62, 30), None: (175, 175, 170)}  # None: grey, unnamed by the data set
FACTORS = ("exposure", "harshness", "blur", "offset_x", "offset_y", "face_size", "tilt", "noise",
           "clutter")
README = f"""Selfie data set (lenslab synthetic stand-in)
============================================

Drawn selfies in the layout of the UCF Selfie Data Set. Not real people.

{IMAGES_DIR}/<name>.jpg      the selfies
{LIST_FILE}    one line per image: the image name (without .jpg), its
                      popularity score and {len(ATTRIBUTES)} attributes, 1 = present, -1 = absent,
                      0 = not labelled, in this order:

{chr(10).join('  ' + a for a in ATTRIBUTES)}

For research use only.
"""


def _one_hot(names: tuple[str, ...], chosen: str | None) -> dict[str, bool]:
    return {n: n == chosen for n in names}


def _subject(r: np.random.Generator) -> dict[str, bool]:
    """Who is in the selfie and what they do: the true attributes, except the three that
    follow from how the photo was taken (partial face, harsh and dim light)."""
    female = bool(r.random() < 0.62)
    age = AGES[r.choice(6, p=[0.02, 0.05, 0.25, 0.5, 0.15, 0.03])]
    race = RACES[r.choice(3, p=[0.6, 0.15, 0.25])]
    young = age in ("baby", "child")
    smiling = bool(r.random() < 0.5)
    mouth_open = bool(r.random() < (0.3 if smiling else 0.1))
    frowning = not smiling and bool(r.random() < 0.12)
    tongue = not smiling and bool(r.random() < 0.06)
    duck = female and not (smiling or mouth_open or tongue) and bool(r.random() < 0.15)
    sunglasses = bool(r.random() < 0.08)
    if age == "senior":
        hair_colour = None
    elif race == "white":
        hair_colour = ("black_hair", "blond_hair", "brown_hair", "red_hair")[
            r.choice(4, p=[0.2, 0.3, 0.42, 0.08])]
    else:
        hair_colour = "black_hair" if r.random() < 0.85 else "brown_hair"
    shapes = ("straight_hair", "curly_hair", "braid_hair", None)
    hair_shape = None if age == "baby" else shapes[
        r.choice(4, p=[0.55, 0.25, 0.15, 0.05] if female else [0.6, 0.2, 0.0, 0.2])]
    mirror = bool(r.random() < 0.08)
    return {
        "is_female": female, **_one_hot(AGES, age), **_one_hot(RACES, race),
        **_one_hot(SHAPES, SHAPES[r.choice(3, p=[0.5, 0.3, 0.2])]),
        "smiling": smiling, "mouth_open": mouth_open, "frowning": frowning,
        "wearing_glasses": not sunglasses and bool(r.random() < 0.14),
        "wearing_sunglasses": sunglasses,
        "wearing_lipstick": female and not young and bool(r.random() < 0.4),
        "tongue_out": tongue, "duck_face": duck,
        **_one_hot(("black_hair", "blond_hair", "brown_hair", "red_hair"), hair_colour),
        **_one_hot(("curly_hair", "straight_hair", "braid_hair"), hair_shape),
        "showing_cellphone": mirror or bool(r.random() < 0.12),
        "using_earphone": bool(r.random() < 0.06),
        "using_mirror": mirror,
        "braces": age in ("child", "teenager") and (smiling or mouth_open)
        and bool(r.random() < 0.2),
        "wearing_hat": bool(r.random() < 0.1),
    }


def _factors(r: np.random.Generator) -> dict[str, float]:
    """How the selfie was taken; every factor but the smile-free ones lowers its quality."""
    exposure = r.normal(0, 0.5)
    offset_x = r.normal(0, 0.09)
    if r.random() < 0.08:  # the face half out of the frame
        offset_x += math.copysign(r.uniform(0.25, 0.4), offset_x)
    return {
        "exposure": exposure,
        "harshness": r.beta(1.2, 3.0),
        "blur": min(2.5, r.exponential(0.5)),  # Gaussian radius at 160 px
        "offset_x": offset_x,
        "offset_y": r.normal(0, 0.07),
        "face_size": r.uniform(0.28, 0.72),  # face height / image height
        "tilt": r.normal(0, 12),  # degrees
        "noise": 0.006 + 0.04 * max(0.0, -exposure),
        "clutter": r.random(),
    }


def _partial(f: dict[str, float]) -> bool:
    """A face is partial when over 15 % of its width or height lies outside the frame."""
    half = f["face_size"] / 2
    cx, cy = 0.5 + f["offset_x"], 0.46 + f["offset_y"]
    over_x = max(half * 0.85 - cx, cx + half * 0.85 - 1, 0) / (1.7 * half)
    over_y = max(half - cy, cy + half - 1, 0) / (2 * half)
    return max(over_x, over_y) > 0.15


def quality(f: dict[str, float], truth: dict[str, bool]) -> float:
    """The noise-free quality: good light, sharp, well framed, level, smiling."""
    return (
        -0.8 * abs(f["exposure"]) - 1.2 * f["harshness"] - 0.45 * f["blur"]
        - 2.5 * math.hypot(f["offset_x"], f["offset_y"]) - 2.5 * abs(f["face_size"] - 0.48)
        - 0.025 * abs(f["tilt"]) - 0.3 * f["clutter"] - 0.5 * _partial(f)
        + 0.45 * truth["smiling"] - 0.3 * truth["wearing_sunglasses"] - 0.2 * truth["frowning"]
    )


def _colour(r: np.random.Generator, sat: float, val: float) -> Colour:
    rgb = colorsys.hsv_to_rgb(r.random(), r.uniform(0, sat), r.uniform(val, 1.0))
    return tuple(round(255 * c) for c in rgb)


def _look(r: np.random.Generator, t: dict[str, bool]) -> FaceLook:
    race = next(x for x in RACES if t[x])
    hair_colour = next((h for h in ("black_hair", "blond_hair", "brown_hair", "red_hair")
                        if t[h]), None)
    if t["curly_hair"]:
        style = "curly"
    elif t["braid_hair"]:
        style = "braid"
    elif t["straight_hair"]:
        style = "long" if t["is_female"] else "short"
    else:
        style = "bald" if t["baby"] or not t["is_female"] else "short"
    skin = np.add(SKIN[race][r.integers(3)], r.integers(-10, 11, 3)).clip(0, 255)
    lips = (185, 30, 50) if t["wearing_lipstick"] else tuple(int(c * 0.75) for c in skin)
    return FaceLook(
        skin=tuple(int(c) for c in skin), hair=HAIR[hair_colour],
        iris=((70, 45, 30), (60, 110, 160), (80, 110, 70))[r.choice(3, p=[0.7, 0.2, 0.1])],
        lips=lips, shirt=_colour(r, 0.8, 0.25), hat=_colour(r, 0.9, 0.2),
        shape=next(s for s in SHAPES if t[s]).removesuffix("_face"), hair_style=style,
        smiling=t["smiling"], mouth_open=t["mouth_open"], frowning=t["frowning"],
        tongue_out=t["tongue_out"], duck_face=t["duck_face"], glasses=t["wearing_glasses"],
        sunglasses=t["wearing_sunglasses"], braces=t["braces"], hat_on=t["wearing_hat"],
        earphones=t["using_earphone"], wrinkles=t["senior"] or t["middle_age"],
        eye_scale=1.3 if t["baby"] or t["child"] else 1.0,
    )


def _background(r: np.random.Generator, size: int, clutter: float, mirror: bool) -> Image.Image:
    """A room out of focus: a wall gradient, furniture and windows, and a mirror's frame.

    Drawn at a quarter of the size, enlarged and blurred, like a shallow depth of field.
    """
    small = max(8, size // 4)
    top, bottom = _colour(r, 0.35, 0.35), _colour(r, 0.35, 0.2)
    ramp = np.linspace(0, 1, small)[:, None, None]
    wall = np.asarray(top, float) * (1 - ramp) + np.asarray(bottom, float) * ramp
    image = Image.fromarray(np.broadcast_to(wall, (small, small, 3)).astype(np.uint8), mode="RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(round(clutter * 9)):
        x0, y0 = r.uniform(-0.1, 0.9, 2) * small
        w, h = r.uniform(0.1, 0.45, 2) * small
        shape = draw.rectangle if r.random() < 0.7 else draw.ellipse
        shape([x0, y0, x0 + w, y0 + h], fill=_colour(r, 0.7, 0.15))
    if mirror:
        draw.rectangle([0, 0, small - 1, small - 1], outline=_colour(r, 0.5, 0.3),
                       width=max(1, round(0.05 * small)))
    return image.resize((size, size), Image.Resampling.BICUBIC).filter(
        ImageFilter.GaussianBlur(size / 100))


def render(r: np.random.Generator, truth: dict[str, bool], f: dict[str, float],
           size: int) -> Image.Image:
    """Draw one selfie from its true attributes and its quality factors.

    The person is drawn supersampled and tilted at the output size (a quarter of the work);
    the blurred room behind needs no supersampling.
    """
    big = size * SUPERSAMPLE
    look = _look(r, truth)
    canvas = _background(r, size, f["clutter"], truth["using_mirror"])
    person = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(person)
    cx, cy, fh = (0.5 + f["offset_x"]) * big, (0.46 + f["offset_y"]) * big, f["face_size"] * big
    draw_bust(draw, cx, cy, fh, look)
    draw_face(draw, cx, cy, fh, look)
    if truth["using_mirror"]:  # the phone is in the picture, held up to the mirror
        draw_phone(draw, cx + 0.45 * fh, cy + 0.95 * fh, 0.7 * fh, look.skin)
    elif truth["showing_cellphone"]:
        side = 0.8 if r.random() < 0.5 else 0.2
        draw_phone(draw, side * big, 0.82 * big, 0.3 * big, look.skin)
    person = person.resize((size, size), Image.Resampling.BOX).rotate(
        f["tilt"], resample=Image.Resampling.BICUBIC,
        center=(cx / SUPERSAMPLE, cy / SUPERSAMPLE))
    canvas.paste(person, (0, 0), person)
    edits = EditParams(exposure=f["exposure"], contrast=0.4 * f["harshness"],
                       temperature=r.normal(0, 0.2), saturation=r.normal(0, 0.1),
                       grain=f["noise"])
    pixels = finish(canvas, size, edits, blur=f["blur"] * size / 160,
                    side_light=f["harshness"], rng=r)
    return Image.fromarray((pixels * 255 + 0.5).astype(np.uint8), mode="RGB")


def _labels(r: np.random.Generator, truth: dict[str, bool], unlabelled: float,
            flipped: float) -> list[int]:
    """What annotators wrote: 1 / -1, some left 0, some wrong."""
    values = []
    for name in ATTRIBUTES:
        value = 1 if truth[name] else -1
        u = r.random()
        values.append(0 if u < unlabelled else -value if u < unlabelled + flipped else value)
    return values


def _names(r: np.random.Generator, n: int) -> list[str]:
    """Instagram-style media ids: mostly 32 hex digits and a suffix, some numeric triples."""
    names: set[str] = set()
    while len(names) < n:
        if r.random() < 0.85:
            names.add(f"{r.bytes(16).hex()}_{r.integers(1, 9)}")
        else:
            a, b, c = (r.integers(10**d, 10 ** (d + 1)) for d in (7, 15, 9))
            names.add(f"{a}_{b}_{c}_{'an'[r.integers(2)]}")
    return sorted(names)


def generate(distributed: Path, ground_truth: Path, *, seed: int, scale: float = 1.0,
             images: int = 600, size: int = 160, score_noise: float = 0.5,
             unlabelled: float = 0.03, flipped: float = 0.02) -> dict[str, Any]:
    """Write the Selfie data set archive and its ground truth; see the module docstring."""
    n = scaled(images, scale, minimum=4)
    names = _names(rng(seed, "selfies", "names"), n)
    members: list[tuple[str, bytes]] = [(f"{WRAPPER}/README.txt", README.encode("utf-8"))]
    lines, truth_rows = [], []
    for name in names:
        r = rng(seed, "selfies", "image", name)
        truth, f = _subject(r), _factors(r)
        truth.update(partial_faces=_partial(f), harsh_lighting=f["harshness"] > 0.45,
                     dim_lighting=f["exposure"] < -0.6)
        q = quality(f, truth)
        popularity = 5.7 + q + r.normal(0, score_noise)
        image = render(r, truth, f, size)
        members.append((f"{WRAPPER}/{IMAGES_DIR}/{name}.jpg",
                        encode_jpeg(image, quality=int(r.integers(80, 96)))))
        sep = "  " if r.random() < 0.05 else " "  # the real file's spacing is irregular
        lines.append(sep.join([name, f"{popularity:.6f}",
                               *map(str, _labels(r, truth, unlabelled, flipped))]))
        truth_rows.append({"name": name, **{k: round(f[k], 5) for k in FACTORS},
                           "quality": round(q, 5), "popularity": round(popularity, 6),
                           **{a: int(truth[a]) for a in ATTRIBUTES}})
    members.append((f"{WRAPPER}/{LIST_FILE}", ("\n".join(lines) + "\n").encode("utf-8")))
    write_tar_gz(Path(distributed) / ARCHIVE, members)
    table = pd.DataFrame(truth_rows)
    write_ground_truth(Path(ground_truth), "quality_factors", table)
    return {
        "images": n,
        "size": size,
        "archive": ARCHIVE,
        "popularity_mean": round(float(table["popularity"].mean()), 4),
        "popularity_std": round(float(table["popularity"].std()), 4),
        "quality_popularity_corr": round(float(table["quality"].corr(table["popularity"])), 4),
        "seed": seed,
    }
