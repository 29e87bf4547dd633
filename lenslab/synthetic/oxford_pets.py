"""Synthetic Oxford-IIIT Pet, in the real distribution format, with photographers' editing styles.

Writes ``images.tar.gz`` (``images/<Breed_name>_<n>.jpg``) and ``annotations.tar.gz``
(``annotations/{README,list.txt,trainval.txt,test.txt}``, ``trimaps/<stem>.png``,
``xmls/<stem>.xml``) exactly as the real dataset lays them out (see lenslab.formats.oxford_pets).

Content: each image is a varied base scene (lenslab.synthetic.scenes) with a pet of its breed (a
fixed look per breed, jittered per animal), then one photographer's editing preset plus per-image
jitter (lenslab.edits). Presets are drawn from one shared distribution, so they overlap:
identifying the photographer from the pixels is hard but learnable. The trainval/test split is
~50/50 per breed, like the real 3,680/3,669.

Knobs:
    photographers (30)            number of editing presets
                                  (params.yaml ``sources.oxford_pets.photographers``)
    images_per_photographer (24)  at scale 1.0; the image count is this x photographers x scale
    jitter (0.05)                 per-image deviation from the preset, as a fraction of the
                                  between-photographer spread (0 = every photo exactly its
                                  preset); a real photographer's preset is fairly consistent
    preset_spread (3.0)           how far apart photographers' looks are: multiplies the spread
                                  of the preset distribution (1.0 = the old, timid looks: about
                                  a third of a stop of exposure between photographers, barely
                                  any vignette or grain, which the scene content drowns); the
                                  looks are clipped to ``LIMITS`` (at most 1.5 stops of
                                  exposure, no neon casts) so a strong preset stays a look
    max_side (160)                longest image side in pixels (each image varies around it)
    defects (True)                reproduce real defects: a PNG and a GIF named .jpg, an RGBA
                                  image, .mat files in images/, AppleDouble ``._*`` files in the
                                  annotations archive, images present but not listed
    shared_bases (60)             at scale 1.0, render this many base scenes (pet, background,
                                  framing) under ``renders_per_base`` photographers each, so
                                  identification can be tested on content never seen in training;
                                  0 keeps every base unique
    renders_per_base (3)          photographers per shared base

Ground truth: ``photographers.csv`` (image, photographer), ``presets.csv`` (photographer + edit
parameters), ``image_edits.csv`` (image + the exact edit parameters applied to it), and only when
``shared_bases`` > 0, ``bases.csv`` (image, base: the stem of the base scene's first render).
"""

from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from lenslab.edits import EditParams, apply_edits
from lenslab.formats.oxford_pets import BREEDS, breed_labels, species_code
from lenslab.seeding import rng
from lenslab.synthetic import scenes
from lenslab.synthetic.common import (
    encode_jpeg,
    encode_png,
    scaled,
    to_image,
    write_ground_truth,
    write_tar_gz,
)

SOURCE = "oxford_pets"
LIST_HEADER = (
    "#Image CLASS-ID SPECIES BREED ID\n"
    "#ID: 1:37 Class ids\n"
    "#SPECIES: 1:Cat 2:Dog\n"
    "#BREED ID: 1-25:Cat 1:12:Dog\n"
    "#All images with 1st letter as captial are cat images\n"
    "#images with small first letter are dog images\n"
)
README = (
    "Synthetic stand-in for the Oxford-IIIT Pet annotations (lenslab).\n"
    "list.txt: Image CLASS-ID SPECIES BREED-ID; trainval.txt and test.txt: the split;\n"
    "trimaps/: 1 foreground, 2 background, 3 not classified; xmls/: head boxes, PASCAL VOC.\n"
)
# How presets vary between photographers: (centre, spread) of a normal, or a uniform range.
PRESET_NORMAL = {"exposure": 0.35, "contrast": 0.28, "saturation": 0.3, "temperature": 0.4,
                 "tint": 0.25}
PRESET_UNIFORM = {"split_amount": (0.0, 0.6), "vignette": (0.0, 0.6), "grain": (0.0, 0.05),
                  "fade": (0.0, 0.12)}
HUE_JITTER = 0.3  # radians
GAMMA_SPREAD = 0.12  # log-gamma
# A look stays a look: past a stop and a half of exposure, a strong cast or a steep midtone curve a
# photo reads as a mistake (the clipping keeps strong presets from going black or neon).
LIMITS = {"exposure": (-1.5, 1.5), "contrast": (-0.85, 0.85), "saturation": (-0.85, 2.0),
          "temperature": (-1.2, 1.2), "tint": (-0.7, 0.7), "split_amount": (0.0, 1.0),
          "vignette": (0.0, 0.9), "grain": (0.0, 0.1), "fade": (0.0, 0.3), "gamma": (0.7, 1.8)}
ASPECTS = (4 / 3, 3 / 2, 1.0, 3 / 4, 2 / 3)


def draw_presets(seed: int, count: int, spread: float = 1.0,
                 source: str = SOURCE) -> list[EditParams]:
    """``count`` photographers' looks from one shared distribution (so they overlap), its
    spread scaled by ``spread`` (clipped to LIMITS, so strong looks saturate realistically);
    ``source`` names the random stream, so each dataset has its own photographers."""
    r = rng(seed, source, "presets")
    presets = []
    for _ in range(count):
        values: dict[str, float] = {k: float(r.normal(0.0, s * spread))
                                    for k, s in PRESET_NORMAL.items()}
        values |= {k: float(r.uniform(lo, lo + (hi - lo) * spread))
                   for k, (lo, hi) in PRESET_UNIFORM.items()}
        values |= {"shadow_hue": float(r.uniform(0, 2 * math.pi)),
                   "highlight_hue": float(r.uniform(0, 2 * math.pi)),
                   "gamma": float(math.exp(r.normal(0.0, GAMMA_SPREAD * spread)))}
        presets.append(_clipped(values))
    return presets


def _clipped(values: dict[str, float]) -> EditParams:
    for k, (lo, hi) in LIMITS.items():
        values[k] = float(np.clip(values[k], lo, hi))
    return EditParams(**values)


def jittered(preset: EditParams, r: np.random.Generator, jitter: float,
             spread: float = 1.0) -> EditParams:
    """One photo's edit: the preset plus noise scaled to the spread of presets."""
    values = preset.to_dict()
    for k, s in PRESET_NORMAL.items():
        values[k] += float(r.normal(0.0, jitter * s * spread))
    for k, (lo, hi) in PRESET_UNIFORM.items():
        values[k] += float(r.normal(0.0, jitter * spread * (hi - lo) / math.sqrt(12)))
    for k in ("shadow_hue", "highlight_hue"):
        values[k] = float((values[k] + r.normal(0.0, HUE_JITTER * jitter / 0.35)) % (2 * math.pi))
    values["gamma"] *= float(math.exp(r.normal(0.0, jitter * spread * GAMMA_SPREAD)))
    return _clipped(values)


def breed_look(seed: int, breed: str) -> scenes.Creature:
    """A breed's fixed look: cats have pointed ears, most dogs floppy ones."""
    r = rng(seed, SOURCE, "breed", breed)
    ears = "pointed" if species_code(breed) == 1 or r.random() < 0.3 else "floppy"
    return scenes.random_creature(r, ears=ears)


def _individual(look: scenes.Creature, r: np.random.Generator) -> scenes.Creature:
    """This animal: the breed's look with its own coat shade and build."""
    shade = r.normal(1.0, 0.08)
    return scenes.Creature(
        coat=tuple(float(np.clip(c * shade + r.normal(0, 0.03), 0, 1)) for c in look.coat),
        marking=look.marking, pattern=look.pattern, ears=look.ears,
        body_aspect=look.body_aspect * float(r.uniform(0.9, 1.1)),
        head_ratio=look.head_ratio * float(r.uniform(0.9, 1.1)),
        leg_length=look.leg_length, fur=look.fur,
    )


def _size(r: np.random.Generator, max_side: int) -> tuple[int, int]:
    side = round(max_side * r.uniform(0.8, 1.2))
    aspect = ASPECTS[int(r.integers(len(ASPECTS)))]
    if aspect >= 1:
        return max(16, round(side / aspect)), side
    return side, max(16, round(side * aspect))


def _voc_xml(stem: str, width: int, height: int, box: tuple[int, int, int, int],
             species: str) -> bytes:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "OXIIIT"
    ET.SubElement(root, "filename").text = f"{stem}.jpg"
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = "OXFORD-IIIT Pet Dataset"
    ET.SubElement(source, "annotation").text = "OXIIIT"
    ET.SubElement(source, "image").text = "flickr"
    size = ET.SubElement(root, "size")
    for k, v in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, k).text = str(v)
    ET.SubElement(root, "segmented").text = "0"
    obj = ET.SubElement(root, "object")
    for k, v in (("name", species), ("pose", "Frontal"), ("truncated", "0"), ("occluded", "0")):
        ET.SubElement(obj, k).text = v
    bndbox = ET.SubElement(obj, "bndbox")
    # VOC boxes are 1-based and inclusive
    for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
        ET.SubElement(bndbox, k).text = str(v + 1)
    ET.SubElement(obj, "difficult").text = "0"
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8") + b"\n"


def _appledouble() -> bytes:
    # magic, version, 16-byte filler, zero entries: what macOS tar leaves beside each file
    return b"\x00\x05\x16\x07\x00\x02\x00\x00" + b"Mac OS X        " + b"\x00\x00"


def _mat_file() -> bytes:
    header = b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2015"
    return header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x01IM"


def _png_gray(values: np.ndarray) -> bytes:
    """An 8-bit greyscale PNG of small integer values (trimaps store 1/2/3, not 0..255)."""
    buf = io.BytesIO()
    Image.fromarray(values.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _encode(pixels: np.ndarray, kind: str, quality: int) -> bytes:
    """JPEG normally; the defect kinds are other formats behind a .jpg name."""
    if kind == "jpeg":
        return encode_jpeg(pixels, quality=quality)
    if kind == "png":
        return encode_png(pixels)
    image = to_image(pixels)
    buf = io.BytesIO()
    if kind == "gif":
        image.quantize(colors=128).save(buf, format="GIF")
    else:  # rgba
        image.putalpha(Image.new("L", image.size, 255))
        image.save(buf, format="PNG")
    return buf.getvalue()


def _names_and_split(r: np.random.Generator, breeds: list[str],
                     n_listed: int) -> tuple[list[str], dict[int, str]]:
    """Stems with real-style, non-contiguous numbers per breed, and a ~50/50 split per breed of
    the first ``n_listed`` images."""
    stems = [""] * len(breeds)
    split: dict[int, str] = {}
    for breed in BREEDS:
        idx = [i for i, b in enumerate(breeds) if b == breed]
        numbers = np.sort(r.choice(np.arange(1, 2 * len(idx) + 10), len(idx), replace=False))
        for i, n in zip(idx, numbers, strict=True):
            stems[i] = f"{breed}_{n}"
        offset = int(r.integers(2))
        for j, i in enumerate(r.permutation([i for i in idx if i < n_listed])):
            split[int(i)] = "trainval" if (j + offset) % 2 == 0 else "test"
    return stems, split


def _share_bases(breeds: list[str], who: np.ndarray, n_listed: int, shared: int, renders: int,
                 photographers: int) -> list[int]:
    """Index of each image's base scene; groups of ``renders`` listed images share one.

    Members of a group take the group's breed and distinct photographers (in place), so one
    scene is seen under several presets. With ``shared`` 0 every image is its own base.
    """
    base_of = list(range(len(breeds)))
    renders = max(2, min(renders, photographers))
    step = max(1, photographers // renders)
    for g in range(min(shared, n_listed // renders)):
        first = g * renders
        for j in range(1, renders):
            base_of[first + j] = first
            breeds[first + j] = breeds[first]
            who[first + j] = (who[first] + j * step) % photographers
    return base_of


def generate(distributed: Path, ground_truth: Path, *, seed: int, scale: float = 1.0,
             photographers: int = 30, images_per_photographer: int = 24, jitter: float = 0.05,
             preset_spread: float = 3.0, max_side: int = 160, defects: bool = True,
             shared_bases: int = 60, renders_per_base: int = 3) -> dict[str, Any]:
    """Write images.tar.gz and annotations.tar.gz into ``distributed``; see the module doc."""
    n_listed = scaled(photographers * images_per_photographer, scale, minimum=2 * photographers)
    n_unlisted = 2 if defects else 0
    r = rng(seed, SOURCE, "layout")
    breeds = [BREEDS[i % len(BREEDS)] for i in r.permutation(n_listed + n_unlisted)]
    who = r.permutation(np.arange(n_listed + n_unlisted) % photographers)
    shared = scaled(shared_bases, scale, minimum=0)
    base_of = _share_bases(breeds, who, n_listed, shared, renders_per_base, photographers)
    presets = draw_presets(seed, photographers, preset_spread)
    looks = {b: breed_look(seed, b) for b in BREEDS}

    stems, split = _names_and_split(r, breeds, n_listed)
    listed = list(range(n_listed))

    kinds = {}
    if defects:
        cats = [i for i in listed if species_code(breeds[i]) == 1]
        kinds = dict(zip(cats[:3], ("png", "gif", "rgba"), strict=False))

    image_members, trimaps, xmls, truth, edits_rows = [], [], [], [], []
    for i, stem in enumerate(stems):
        ri = rng(seed, SOURCE, "image", i)
        # a shared base draws its scene from the base's stream, the edit from the image's
        rs = ri if base_of[i] == i else rng(seed, SOURCE, "base", base_of[i])
        height, width = _size(rs, max_side)
        scene = scenes.render_scene(rs, height, width, creature=_individual(looks[breeds[i]], rs),
                                    subject_size=float(rs.uniform(0.3, 0.5)))
        edit = jittered(presets[who[i]], ri, jitter, preset_spread)
        pixels = apply_edits(scene.pixels, edit, rng=ri)
        data = _encode(pixels, kinds.get(i, "jpeg"), quality=int(ri.integers(80, 96)))
        image_members.append((f"images/{stem}.jpg", data))
        truth.append({"image": stem, "photographer": int(who[i])})
        edits_rows.append({"image": stem, **edit.to_dict()})
        if i >= n_listed:
            continue
        trimaps.append((f"annotations/trimaps/{stem}.png",
                        _png_gray(scenes.trimap(scene.mask))))
        # head boxes exist for most trainval images, none for test (as in the real data)
        if split[i] == "trainval" and scene.head_box is not None and ri.random() < 0.95:
            species = "cat" if species_code(breeds[i]) == 1 else "dog"
            xmls.append((f"annotations/xmls/{stem}.xml",
                         _voc_xml(stem, width, height, scene.head_box, species)))

    def key(i: int) -> tuple[int, str]:
        return BREEDS.index(breeds[i]), stems[i]

    def lines(indices: list[int]) -> str:
        return "".join(f"{stems[i]} {' '.join(map(str, breed_labels(breeds[i])))}\n"
                       for i in sorted(indices, key=key))

    annotation_members = [
        ("annotations/README", README.encode()),
        ("annotations/list.txt", (LIST_HEADER + lines(listed)).encode()),
        ("annotations/trainval.txt", lines([i for i in listed if split[i] == "trainval"]).encode()),
        ("annotations/test.txt", lines([i for i in listed if split[i] == "test"]).encode()),
    ]
    trimaps.sort()
    xmls.sort()
    if defects:  # AppleDouble twins of the first few annotation files
        junk = [(f"{Path(name).parent.as_posix()}/._{Path(name).name}", _appledouble())
                for name, _ in trimaps[:4] + xmls[:2]]
        annotation_members += sorted(trimaps + xmls + junk)
        image_members += [(f"images/{stems[i]}.mat", _mat_file())
                          for i in sorted(listed, key=key)[:3]]
    else:
        annotation_members += trimaps + xmls
    write_tar_gz(distributed / "images.tar.gz", sorted(image_members))
    write_tar_gz(distributed / "annotations.tar.gz", annotation_members)

    write_ground_truth(ground_truth, "photographers", pd.DataFrame(truth))
    write_ground_truth(ground_truth, "presets", pd.DataFrame(
        [{"photographer": k, **p.to_dict()} for k, p in enumerate(presets)]))
    write_ground_truth(ground_truth, "image_edits", pd.DataFrame(edits_rows))
    if shared > 0:
        write_ground_truth(ground_truth, "bases", pd.DataFrame(
            {"image": stems, "base": [stems[base_of[i]] for i in range(len(stems))]}))
    return {
        "images": len(stems), "listed": n_listed, "unlisted": n_unlisted,
        "trainval": sum(1 for i in listed if split[i] == "trainval"),
        "test": sum(1 for i in listed if split[i] == "test"),
        "photographers": photographers, "head_boxes": len(xmls),
        "defects": {stems[i]: k for i, k in kinds.items()} if defects else {},
    }

