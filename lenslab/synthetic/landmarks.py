"""Synthetic Instagram-style landmark photos: people posing at sites, with known keypoints.

Writes into ``distributed/`` the layout read by :mod:`lenslab.formats.landmark_photos` (the
InstaModel seed's): ``Data/<Site>/<Pose>/Firefox_Screenshot_<time>.png`` (``_zz``: the site
without a person), ``Data/labels.csv``, ``manifest.csv`` (``url`` is the image's path relative to
the distribution root) and ``annotations/person_keypoints.json`` (COCO keypoints of every person).
Into ``ground_truth/``: ``keypoints.csv`` (image, person, is_main, 17 x (x, y, v), true positions
even where a joint leaves the frame) and ``scenes.csv`` (image, site, pose, camera and light).

Each site is a drawn scene with its own landmark, palette and sky; every photo of a site sees it
through a jittered camera (position, zoom), with its own exposure, white balance, contrast, grain
and sometimes lens blur, and sometimes as a screenshot with Instagram's bars over the top and
bottom. The main person is an articulated COCO-17 figure posed from a shared set of templates
(poses recur across sites), with joint jitter, random placement, size, clothing and a mirrored
(left/right) variant. Smaller bystanders stand in the background of some photos. So photos of one
site look alike whatever the pose (as the seed found), and poses differ only by limbs.

Knobs (counts at scale 1.0; ``scale`` multiplies sites, up to the 14 drawn, and photos per folder):
    sites=10            sites (from the seed's list)
    poses_per_site=4    pose folders per site, drawn from the 10 templates
    images_per_pose=5   photos per site and pose
    empty_per_site=4    ``_zz`` photos per site (no person at all)
    size=192            image side in pixels
    joint_jitter=9.0    standard deviation of every limb angle, degrees
    mirror_rate=0.3     share of people who strike the pose with the other hand
    bystander_rate=0.35 share of person photos with one or two people in the background
    chrome_rate=0.35    share of photos that are screenshots with the app's bars
    pose_masks=False    also write the seed's ``<image>_pose.png`` masks and index them in
                        labels.csv, as the seed did (the parser rejects them)
"""

from __future__ import annotations

import colorsys
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from lenslab.edits import EditParams
from lenslab.formats.landmark_photos import (
    COCO_KEYPOINTS,
    COCO_SKELETON,
    KEYPOINTS_FILE,
    MANIFEST_COLUMNS,
    NO_PERSON_POSE,
    folder_name,
    site_pose_dir,
)
from lenslab.seeding import rng
from lenslab.synthetic.common import encode_png, scaled, write_ground_truth
from lenslab.synthetic.figures import (
    SUPERSAMPLE,
    Camera,
    Colour,
    PersonStyle,
    PoseTemplate,
    Scene,
    body_keypoints,
    draw_person,
    draw_scene,
    finish,
    place_body,
)

# ------------------------------------------------------------------------------- pose templates
POSES = (
    PoseTemplate("Peace", (-40, 170, 10, 5), (-4, -2, 4, 2)),
    PoseTemplate("Arme hoch", (-150, -165, 150, 165), (-6, -3, 6, 3)),
    PoseTemplate("Telefon", (-100, 130, 35, -35), (-3, -2, 6, 3)),
    PoseTemplate("sitzend, Beine übergeschlagen", (-10, 60, 15, 50), (80, 10, 70, 5)),
    PoseTemplate("Brücke", (75, 85, 95, 100), (-20, -15, 10, 5), lean=15),
    PoseTemplate("Hände zusammen", (-15, 110, 15, -110), (-4, -2, 4, 2)),
    PoseTemplate("Zeigen", (-130, -125, 10, 5), (-8, -4, 5, 2)),
    PoseTemplate("Cristo-Pose", (-90, -92, 90, 92), (-3, -1, 3, 1)),
    PoseTemplate("Sprung", (-150, -165, 150, 165), (-40, 20, 40, -20)),
    PoseTemplate("Baum", (-160, 135, 160, -135), (-3, -2, 45, -83)),
)
STANDING = PoseTemplate("stehend", (-8, -4, 8, 4), (-4, -2, 4, 2))


# ------------------------------------------------------------------------------------- scenes
def _rect(x0: float, y0: float, x1: float, y1: float, c: Colour) -> tuple:
    return ("rect", (x0, y0, x1, y1), c)


def _oval(x0: float, y0: float, x1: float, y1: float, c: Colour) -> tuple:
    return ("ellipse", (x0, y0, x1, y1), c)


def _poly(points: list[tuple[float, float]], c: Colour) -> tuple:
    return ("poly", tuple(points), c)


def _line(points: list[tuple[float, float]], c: Colour, width: float) -> tuple:
    return ("line", tuple(points), c, width)


def _tilted(cx: float, base: float, w: float, h: float, deg: float, y0: float, y1: float,
            c: Colour) -> tuple:
    """The band [y0, y1] (fractions of ``h`` from the base) of a tower leaning by ``deg``."""
    t = math.radians(deg)
    def at(u: float, v: float) -> tuple[float, float]:
        return (cx + u * math.cos(t) + v * h * math.sin(t), base + u * math.sin(t) - v * h *
                math.cos(t))
    return _poly([at(-w / 2, y0), at(w / 2, y0), at(w / 2, y1), at(-w / 2, y1)], c)


STONE, DARK = (196, 170, 120), (70, 60, 50)
SCENES: dict[str, Scene] = {
    "Big Ben": Scene((105, 145, 200), (200, 212, 228), (95, 95, 100), 0.68, (
        _rect(0.0, 0.45, 0.54, 0.68, STONE),
        *[_rect(0.03 + 0.065 * k, 0.5, 0.055 + 0.065 * k, 0.6, (120, 100, 70)) for k in range(8)],
        _rect(0.56, 0.15, 0.68, 0.68, (205, 180, 125)),
        _rect(0.57, 0.1, 0.67, 0.15, (185, 160, 110)),
        _poly([(0.56, 0.1), (0.62, 0.0), (0.68, 0.1)], (60, 72, 62)),
        _oval(0.575, 0.2, 0.665, 0.29, (235, 230, 210)),
        _line([(0.62, 0.245), (0.62, 0.215)], DARK, 0.006),
        _rect(0.0, 0.64, 1.0, 0.68, (70, 80, 70)))),
    "Eiffelturm": Scene((120, 170, 225), (215, 225, 235), (110, 150, 90), 0.7, (
        _oval(-0.05, 0.55, 0.3, 0.72, (60, 110, 60)), _oval(0.72, 0.56, 1.05, 0.72, (60, 110, 60)),
        _poly([(0.33, 0.7), (0.42, 0.7), (0.47, 0.42), (0.44, 0.42)], (95, 80, 65)),
        _poly([(0.67, 0.7), (0.58, 0.7), (0.53, 0.42), (0.56, 0.42)], (95, 80, 65)),
        _line([(0.4, 0.6), (0.5, 0.52), (0.6, 0.6)], (95, 80, 65), 0.012),
        _rect(0.42, 0.4, 0.58, 0.43, (85, 70, 58)),
        _poly([(0.445, 0.4), (0.555, 0.4), (0.515, 0.18), (0.485, 0.18)], (95, 80, 65)),
        _rect(0.47, 0.17, 0.53, 0.19, (85, 70, 58)),
        _poly([(0.485, 0.17), (0.515, 0.17), (0.5, 0.03)], (95, 80, 65)))),
    "Taj Mahal": Scene((150, 185, 225), (235, 222, 200), (170, 160, 140), 0.62, (
        _rect(0.4, 0.62, 0.6, 1.0, (190, 185, 170)), _rect(0.46, 0.62, 0.54, 1.0, (90, 130, 170)),
        _rect(0.15, 0.55, 0.85, 0.62, (232, 228, 218)),
        _rect(0.17, 0.28, 0.2, 0.6, (240, 236, 228)), _rect(0.8, 0.28, 0.83, 0.6, (240, 236, 228)),
        _oval(0.165, 0.25, 0.205, 0.29, (240, 236, 228)),
        _oval(0.795, 0.25, 0.835, 0.29, (240, 236, 228)),
        _rect(0.32, 0.38, 0.68, 0.58, (245, 242, 235)),
        _rect(0.45, 0.44, 0.55, 0.58, (200, 195, 185)),
        _oval(0.33, 0.32, 0.39, 0.38, (246, 243, 236)),
        _oval(0.61, 0.32, 0.67, 0.38, (246, 243, 236)),
        _oval(0.39, 0.2, 0.61, 0.42, (248, 246, 240)),
        _line([(0.5, 0.2), (0.5, 0.13)], (200, 180, 120), 0.006))),
    "Kolloseum": Scene((140, 180, 220), (220, 225, 230), (160, 150, 130), 0.66, (
        _poly([(0.1, 0.66), (0.1, 0.32), (0.35, 0.28), (0.6, 0.26), (0.75, 0.3), (0.78, 0.42),
               (0.9, 0.46), (0.9, 0.66)], (190, 150, 100)),
        *[_oval(x, y, x + 0.04, y + 0.07, (115, 85, 55))
          for y in (0.34, 0.45, 0.56) for x in np.arange(0.13, 0.86, 0.075)
          if y > 0.4 or x < 0.72])),
    "Schiefer Turm von Pisa": Scene((100, 160, 220), (200, 220, 240), (90, 160, 80), 0.7, (
        _rect(0.0, 0.5, 0.33, 0.7, (235, 230, 215)),
        _poly([(0.0, 0.5), (0.16, 0.42), (0.33, 0.5)], (200, 120, 90)),
        _tilted(0.58, 0.7, 0.14, 0.56, 5.0, 0.0, 1.0, (238, 232, 215)),
        *[_tilted(0.58, 0.7, 0.15, 0.56, 5.0, v, v + 0.02, (200, 192, 175))
          for v in (0.15, 0.3, 0.45, 0.6, 0.75, 0.88)])),
    "Brandenburger Tor": Scene((150, 170, 195), (215, 220, 225), (150, 145, 140), 0.7, (
        _rect(0.25, 0.3, 0.75, 0.4, (200, 180, 140)), _rect(0.35, 0.24, 0.65, 0.3, (190, 170, 130)),
        _poly([(0.46, 0.24), (0.48, 0.17), (0.52, 0.17), (0.54, 0.24)], (70, 100, 80)),
        *[_rect(x, 0.4, x + 0.03, 0.7, (205, 185, 145)) for x in np.linspace(0.27, 0.7, 6)],
        _rect(0.25, 0.68, 0.75, 0.7, (180, 165, 130)))),
    "Cristo Redentor": Scene((90, 150, 215), (180, 210, 235), (60, 110, 60), 0.75, (
        _poly([(0.0, 0.75), (0.2, 0.5), (0.4, 0.35), (0.5, 0.3), (0.6, 0.36), (0.85, 0.55),
               (1.0, 0.75)], (70, 110, 70)),
        _rect(0.48, 0.29, 0.52, 0.32, (200, 200, 195)),
        _rect(0.485, 0.12, 0.515, 0.3, (230, 230, 225)),
        _rect(0.42, 0.15, 0.58, 0.17, (230, 230, 225)),
        _oval(0.49, 0.09, 0.51, 0.12, (230, 230, 225)))),
    "Spinx": Scene((120, 170, 220), (235, 215, 175), (215, 185, 130), 0.66, (
        _poly([(0.05, 0.66), (0.2, 0.4), (0.35, 0.66)], (205, 170, 115)),
        _poly([(0.45, 0.66), (0.7, 0.22), (0.95, 0.66)], (200, 165, 110)),
        _poly([(0.7, 0.22), (0.95, 0.66), (0.78, 0.66)], (170, 135, 90)),
        _rect(0.15, 0.56, 0.45, 0.66, (190, 150, 100)),
        _rect(0.36, 0.47, 0.44, 0.58, (185, 145, 95)),
        _poly([(0.35, 0.5), (0.4, 0.44), (0.45, 0.5), (0.45, 0.56), (0.35, 0.56)],
              (160, 125, 80)))),
    "Louvre": Scene((120, 165, 215), (210, 220, 230), (190, 180, 165), 0.68, (
        _rect(0.0, 0.4, 1.0, 0.68, (210, 195, 165)),
        *[_rect(0.02 + 0.08 * k, 0.45, 0.05 + 0.08 * k, 0.55, (150, 135, 110)) for k in range(13)],
        _poly([(0.3, 0.68), (0.5, 0.35), (0.7, 0.68)], (150, 180, 200)),
        *[_line([(0.5, 0.35), (x, 0.68)], (100, 120, 135), 0.004) for x in (0.37, 0.44, 0.56,
                                                                              0.63)])),
    "Las Vegas Sign": Scene((15, 20, 50), (60, 40, 80), (50, 50, 55), 0.7, (
        _rect(0.47, 0.45, 0.53, 0.7, (220, 220, 220)),
        _poly([(0.5, 0.12), (0.78, 0.3), (0.5, 0.48), (0.22, 0.3)], (245, 245, 240)),
        _poly([(0.5, 0.17), (0.72, 0.3), (0.5, 0.43), (0.28, 0.3)], (200, 30, 40)),
        _rect(0.33, 0.27, 0.67, 0.33, (245, 245, 240)),
        *[_oval(x - 0.008, y - 0.008, x + 0.008, y + 0.008, (255, 220, 90))
          for x, y in ((0.5, 0.14), (0.61, 0.21), (0.72, 0.28), (0.61, 0.39), (0.5, 0.46),
                       (0.39, 0.39), (0.28, 0.28), (0.39, 0.21))])),
    "Preikestolen": Scene((130, 170, 210), (210, 220, 230), (50, 90, 120), 0.55, (
        _poly([(0.0, 0.55), (0.15, 0.4), (0.35, 0.5), (0.55, 0.35), (0.8, 0.48), (1.0, 0.4),
               (1.0, 0.55)], (90, 110, 120)),
        _poly([(0.0, 0.62), (0.7, 0.6), (0.75, 0.66), (0.72, 1.0), (0.0, 1.0)], (120, 115, 105)),
        _poly([(0.7, 0.6), (0.75, 0.66), (0.72, 1.0), (0.62, 1.0)], (90, 85, 80)))),
    "Halfdome": Scene((110, 165, 220), (210, 225, 235), (100, 130, 70), 0.72, (
        _poly([(0.2, 0.72), (0.3, 0.45), (0.45, 0.3), (0.6, 0.25), (0.68, 0.27), (0.7, 0.72)],
              (165, 165, 160)),
        _poly([(0.66, 0.27), (0.7, 0.27), (0.72, 0.72), (0.68, 0.72)], (120, 120, 118)),
        *[_poly([(x - 0.03, 0.74), (x, 0.58), (x + 0.03, 0.74)], (40, 80, 45))
          for x in np.arange(0.03, 1.0, 0.07)])),
    "Oktoberfest": Scene((100, 150, 210), (200, 220, 240), (150, 140, 120), 0.7, (
        *[_line([(0.72, 0.32), (0.72 + 0.22 * math.cos(a), 0.32 + 0.22 * math.sin(a))],
                (120, 120, 130), 0.004) for a in np.linspace(0, 2 * math.pi, 12, endpoint=False)],
        _line([(0.72 + 0.22 * math.cos(a), 0.32 + 0.22 * math.sin(a))
               for a in np.linspace(0, 2 * math.pi, 41)], (200, 40, 40), 0.008),
        _rect(0.0, 0.5, 0.45, 0.7, (240, 240, 240)),
        *[_rect(0.02 + 0.08 * k, 0.5, 0.05 + 0.08 * k, 0.7, (40, 90, 180)) for k in range(6)],
        _poly([(0.0, 0.5), (0.22, 0.4), (0.45, 0.5)], (30, 80, 170)),
        _rect(0.55, 0.56, 1.0, 0.7, (230, 225, 200)))),
    "Beverly Hills Park": Scene((100, 170, 230), (200, 225, 240), (80, 150, 70), 0.66, (
        _rect(0.55, 0.5, 1.0, 0.66, (235, 225, 200)),
        _rect(0.0, 0.6, 1.0, 0.66, (50, 110, 50)),
        *[_line([(x, 0.66), (x + 0.02, 0.2)], (120, 90, 60), 0.012) for x in (0.15, 0.4, 0.85)],
        *[_line([(x + 0.02, 0.2), (x + 0.02 + 0.08 * math.cos(a), 0.2 + 0.05 * math.sin(a))],
                (40, 110, 50), 0.01)
          for x in (0.15, 0.4, 0.85) for a in np.linspace(math.pi * 0.9, math.pi * 2.1, 6)])),
}
SITES = tuple(SCENES)

SKIN = ((241, 194, 167), (224, 172, 140), (198, 140, 105), (141, 85, 54), (95, 60, 40),
        (236, 200, 160))
TROUSERS = ((40, 45, 70), (30, 30, 35), (90, 80, 60), (60, 70, 90), (150, 140, 120))
HAIR = ((30, 25, 20), (70, 45, 25), (120, 80, 40), (200, 170, 100), (90, 90, 90))
EPOCH = datetime(2023, 3, 1, tzinfo=UTC)


# ---------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Person:
    keypoints: np.ndarray  # (17, 2) true positions in output pixels
    height: float  # output pixels per body unit (about the standing height)
    style: PersonStyle
    is_main: bool


@dataclass(frozen=True)
class Shot:
    """Everything one photo is drawn from; :func:`render` turns it into pixels."""

    path: str  # relative to the distribution root
    site: str  # human names, as a manifest writes them
    pose: str
    camera: Camera
    clouds: tuple[tuple[float, float, float], ...]
    people: tuple[Person, ...]  # background first, the main person last
    edits: EditParams
    blur: float
    chrome: tuple[int, int]  # heights of the app's top and bottom bars (0: a plain photo)
    mirrored: bool
    noise_seed: int
    size: int


def _colour(r: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]) -> Colour:
    rgb = colorsys.hsv_to_rgb(r.random(), r.uniform(*sat), r.uniform(*val))
    return tuple(round(255 * c) for c in rgb)


def _style(r: np.random.Generator, muted: bool) -> PersonStyle:
    return PersonStyle(
        skin=SKIN[r.integers(len(SKIN))],
        shirt=_colour(r, (0.1, 0.5) if muted else (0.4, 0.95), (0.3, 0.95)),
        trousers=TROUSERS[r.integers(len(TROUSERS))],
        hair=HAIR[r.integers(len(HAIR))],
        shoes=(35, 30, 30),
    )


def _person(r: np.random.Generator, pose: PoseTemplate, jitter: float, mirror: bool,
            height: float, centre_x: float, ground_y: float, is_main: bool) -> Person:
    body = body_keypoints(pose, r.normal(0, jitter, 8), r.normal(0, 4), r.normal(1, 0.04, 4))
    return Person(place_body(body, height, centre_x, ground_y, mirror), height,
                  _style(r, muted=not is_main), is_main)


def _timestamp_names(r: np.random.Generator, n: int) -> list[str]:
    """Unique Firefox screenshot names over two months of 2023."""
    names: set[str] = set()
    while len(names) < n:
        t = EPOCH + timedelta(milliseconds=int(r.integers(0, 60 * 86_400_000)))
        names.add(f"Firefox_Screenshot_{t:%Y-%m-%dT%H-%M-%S}.{t.microsecond // 1000:03d}Z.png")
    return sorted(names)


def plan(seed: int, scale: float = 1.0, *, sites: int = 10, poses_per_site: int = 4,
         images_per_pose: int = 5, empty_per_site: int = 4, size: int = 192,
         joint_jitter: float = 9.0, mirror_rate: float = 0.3, bystander_rate: float = 0.35,
         chrome_rate: float = 0.35) -> list[Shot]:
    """Every photo of the dataset, decided but not drawn (see the module docstring for knobs)."""
    n_sites = min(len(SITES), scaled(sites, scale, minimum=2))
    per_pose = scaled(images_per_pose, scale, minimum=2)
    per_empty = scaled(empty_per_site, scale, minimum=1)
    shots: list[Shot] = []
    for site in SITES[:n_sites]:
        r_site = rng(seed, "landmarks", "site", site)
        chosen = r_site.choice(len(POSES), size=min(poses_per_site, len(POSES)), replace=False)
        folders = [(POSES[i], POSES[i].name, per_pose) for i in sorted(chosen)]
        folders.append((None, NO_PERSON_POSE, per_empty))
        base = Camera(0.5 + r_site.normal(0, 0.04), 0.48 + r_site.normal(0, 0.02), 1.0)
        for pose, pose_name, count in folders:
            r = rng(seed, "landmarks", "shots", site, pose_name)
            names = _timestamp_names(r, count)
            for name in names:
                shots.append(_shot(r, site, pose, pose_name, name, base, size, joint_jitter,
                                   mirror_rate, bystander_rate, chrome_rate))
    return shots


def _shot(r: np.random.Generator, site: str, pose: PoseTemplate | None, pose_name: str,
          name: str, base: Camera, size: int, jitter: float, mirror_rate: float,
          bystander_rate: float, chrome_rate: float) -> Shot:
    camera = Camera(base.cx + r.normal(0, 0.06), base.cy + r.normal(0, 0.035),
                    r.uniform(0.95, 1.35))
    clouds = tuple((r.uniform(-0.2, 1.2), r.uniform(0.0, 0.3), r.uniform(0.03, 0.08))
                   for _ in range(r.integers(0, 4)))
    people: list[Person] = []
    mirrored = False
    if pose is not None:
        horizon_px = ((SCENES[site].horizon - camera.cy) * camera.zoom + 0.5) * size
        n_bystanders = (1 + int(r.random() < 0.3)) if r.random() < bystander_rate else 0
        for _ in range(n_bystanders):
            ground = min(size * 0.95, horizon_px + r.uniform(0.05, 0.25) * size)
            people.append(_person(r, STANDING, 2 * jitter, r.random() < 0.5,
                                  r.uniform(0.18, 0.35) * size, r.uniform(0.05, 0.95) * size,
                                  ground, is_main=False))
        mirrored = bool(r.random() < mirror_rate)
        people.append(_person(r, pose, jitter, mirrored, r.uniform(0.5, 0.85) * size,
                              r.uniform(0.3, 0.7) * size, r.uniform(0.86, 1.02) * size,
                              is_main=True))
    edits = EditParams(exposure=r.normal(0, 0.25), temperature=r.normal(0, 0.3),
                       contrast=r.uniform(-0.1, 0.35), saturation=r.uniform(-0.25, 0.3),
                       grain=r.uniform(0.004, 0.02), vignette=r.uniform(0, 0.3))
    blur = r.uniform(0.4, 1.1) if r.random() < 0.2 else 0.0
    chrome = ((round(r.uniform(0.06, 0.1) * size), round(r.uniform(0.08, 0.14) * size))
              if r.random() < chrome_rate else (0, 0))
    path = f"{site_pose_dir(site, pose_name)}/{name}"
    return Shot(path, site, pose_name, camera, clouds, tuple(people), edits, blur, chrome,
                mirrored, int(r.integers(2**62)), size)


# ------------------------------------------------------------------------------------ drawing
WHITE_STYLE = PersonStyle(*[(255, 255, 255)] * 5)


def _person_mask(person: Person, size: int) -> np.ndarray:
    big = size * SUPERSAMPLE
    canvas = Image.new("RGB", (big, big))
    draw_person(ImageDraw.Draw(canvas), person.keypoints * SUPERSAMPLE,
                person.height * SUPERSAMPLE, WHITE_STYLE)
    return np.asarray(canvas.convert("L").resize((size, size), Image.Resampling.BOX)) > 127


def _draw_chrome(image: Image.Image, top: int, bottom: int) -> None:
    """The app's bars: avatar and name on top, like/comment/share icons and a caption below."""
    if not top:
        return
    size = image.width
    draw = ImageDraw.Draw(image)
    grey, dark = (205, 205, 205), (40, 40, 40)
    draw.rectangle([0, 0, size, top - 1], fill=(252, 252, 252))
    draw.ellipse([0.03 * size, 0.15 * top, 0.03 * size + 0.7 * top, 0.85 * top], fill=grey)
    draw.rectangle([0.06 * size + 0.7 * top, 0.4 * top, 0.4 * size, 0.6 * top], fill=dark)
    y0 = size - bottom
    draw.rectangle([0, y0, size, size], fill=(252, 252, 252))
    icon = 0.3 * bottom
    for k in range(3):
        x = 0.04 * size + k * 1.6 * icon
        draw.ellipse([x, y0 + 0.12 * bottom, x + icon, y0 + 0.12 * bottom + icon], outline=dark,
                     width=max(1, size // 100))
    draw.rectangle([0.04 * size, y0 + 0.6 * bottom, 0.7 * size, y0 + 0.72 * bottom], fill=grey)


def render(shot: Shot, draw_people: bool = True) -> tuple[Image.Image, list[np.ndarray],
                                                          list[np.ndarray]]:
    """Draw a shot: (image, per person COCO visibility (17,), per person visible mask).

    COCO visibility: 2 in view, 1 (bystanders) hidden behind the main person, 0 outside the
    frame or under the app's bars. ``draw_people=False`` draws the same photo without people
    (same camera, light and grain), which shows where the figures are.
    """
    size, big = shot.size, shot.size * SUPERSAMPLE
    canvas = draw_scene(big, SCENES[shot.site], shot.camera, shot.clouds)
    if draw_people:
        draw = ImageDraw.Draw(canvas)
        for person in shot.people:
            draw_person(draw, person.keypoints * SUPERSAMPLE, person.height * SUPERSAMPLE,
                        person.style)
    pixels = finish(canvas, size, shot.edits, blur=shot.blur,
                    rng=np.random.default_rng(shot.noise_seed))
    image = Image.fromarray((pixels * 255 + 0.5).astype(np.uint8), mode="RGB")
    _draw_chrome(image, *shot.chrome)
    top, bottom = shot.chrome
    in_view = np.zeros((size, size), bool)
    in_view[top: size - bottom] = True
    main_mask = _person_mask(shot.people[-1], size) if shot.people else np.zeros_like(in_view)
    visibility, masks = [], []
    for person in shot.people:
        mask = main_mask if person.is_main else _person_mask(person, size) & ~main_mask
        x, y = person.keypoints[:, 0], person.keypoints[:, 1]
        inside = (x >= 0) & (x < size) & (y >= top) & (y < size - bottom)
        xi, yi = np.clip(x.astype(int), 0, size - 1), np.clip(y.astype(int), 0, size - 1)
        hidden = ~person.is_main & main_mask[yi, xi]
        visibility.append(np.where(inside, np.where(hidden, 1, 2), 0))
        masks.append(mask & in_view)
    return image, visibility, masks


def _pose_mask(shot: Shot, visibility: list[np.ndarray]) -> Image.Image:
    """The seed's mask: limbs of up to two people, 2 px white lines on black."""
    image = Image.new("RGB", (shot.size, shot.size))
    draw = ImageDraw.Draw(image)
    ranked = sorted(zip(shot.people, visibility, strict=True), key=lambda pv: -pv[0].height)[:2]
    for person, vis in ranked:
        for a, b in COCO_SKELETON:
            if vis[a - 1] and vis[b - 1]:
                draw.line([tuple(person.keypoints[a - 1]), tuple(person.keypoints[b - 1])],
                          fill=(255, 255, 255), width=2)
    return image


# ------------------------------------------------------------------------------------ writing
def _coco_annotation(ann_id: int, image_id: int, person: Person, vis: np.ndarray,
                     mask: np.ndarray) -> dict[str, Any]:
    kps: list[float] = []
    for (x, y), v in zip(person.keypoints, vis, strict=True):
        kps += [round(float(x), 2), round(float(y), 2), int(v)] if v else [0, 0, 0]
    ys, xs = np.nonzero(mask)
    bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
            int(ys.max() - ys.min() + 1)]
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "keypoints": kps, "num_keypoints": int((vis > 0).sum()), "bbox": bbox,
            "area": int(mask.sum())}


def _coco_file(images: list[dict], annotations: list[dict]) -> str:
    coco = {
        "info": {"description": "lenslab synthetic landmark photos", "version": "1.0",
                 "year": 2023, "date_created": "2023-05-01"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"supercategory": "person", "id": 1, "name": "person",
                        "keypoints": list(COCO_KEYPOINTS),
                        "skeleton": [list(pair) for pair in COCO_SKELETON]}],
    }
    return json.dumps(coco, separators=(",", ":"))


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def generate(distributed: Path, ground_truth: Path, *, seed: int, scale: float = 1.0,
             pose_masks: bool = False, **knobs: Any) -> dict[str, Any]:
    """Write the landmark photo dataset; see the module docstring for the knobs."""
    distributed, ground_truth = Path(distributed), Path(ground_truth)
    shots = sorted(plan(seed, scale, **knobs), key=lambda s: s.path)
    labels, manifest, images, annotations, kp_rows, scene_rows = [], [], [], [], [], []
    for image_id, shot in enumerate(shots, start=1):
        image, visibility, masks = render(shot)
        _write(distributed / shot.path, encode_png(image, compress_level=3))
        site_dir, pose_dir = folder_name(shot.site), folder_name(shot.pose)
        labels.append((site_dir, pose_dir, shot.path, f"{site_dir}::{pose_dir}"))
        if pose_masks and shot.people:
            mask_path = shot.path.removesuffix(".png") + "_pose.png"
            mask = encode_png(_pose_mask(shot, visibility), compress_level=3)
            _write(distributed / mask_path, mask)
            labels.append((site_dir, pose_dir, mask_path, f"{site_dir}::{pose_dir}"))
        added = datetime.strptime(shot.path.rsplit("_", 1)[-1][:19], "%Y-%m-%dT%H-%M-%S")
        manifest.append((shot.path, shot.site, shot.pose, "CC0-1.0 (synthetic)",
                         f"synthetic://lenslab/landmarks/{site_dir}", "synthetic, no real person",
                         "lenslab.synthetic.landmarks", f"{added:%Y-%m-%dT%H:%M:%S}Z"))
        images.append({"id": image_id, "file_name": shot.path, "width": shot.size,
                       "height": shot.size})
        for index, (person, vis, mask) in enumerate(zip(shot.people[::-1], visibility[::-1],
                                                        masks[::-1], strict=True)):
            if mask.any():
                annotations.append(_coco_annotation(len(annotations) + 1, image_id, person, vis,
                                                    mask))
            kp_rows.append({"image": shot.path, "person": index, "is_main": person.is_main,
                            **{f"{n}_{a}": round(float(v), 2) for n, (x, y) in
                               zip(COCO_KEYPOINTS, person.keypoints, strict=True)
                               for a, v in (("x", x), ("y", y))},
                            **{f"{n}_v": int(v) for n, v in zip(COCO_KEYPOINTS, vis,
                                                                strict=True)}})
        scene_rows.append({
            "image": shot.path, "site": shot.site, "pose": shot.pose, "mirrored": shot.mirrored,
            "cam_cx": shot.camera.cx, "cam_cy": shot.camera.cy, "cam_zoom": shot.camera.zoom,
            **{k: getattr(shot.edits, k) for k in ("exposure", "temperature", "contrast",
                                                    "saturation", "grain", "vignette")},
            "blur": shot.blur, "chrome_top": shot.chrome[0], "chrome_bottom": shot.chrome[1],
            "n_bystanders": sum(not p.is_main for p in shot.people),
        })
    _write(distributed / "Data" / "labels.csv",
           pd.DataFrame(labels, columns=["Site", "Pose", "Path", "label"]).to_csv(index=False))
    _write(distributed / "manifest.csv",
           pd.DataFrame(manifest, columns=list(MANIFEST_COLUMNS)).to_csv(index=False))
    _write(distributed / KEYPOINTS_FILE, _coco_file(images, annotations))
    keypoints = pd.DataFrame(kp_rows)
    keypoints = keypoints[["image", "person", "is_main",
                           *[f"{n}_{a}" for n in COCO_KEYPOINTS for a in "xyv"]]]
    write_ground_truth(ground_truth, "keypoints", keypoints)
    write_ground_truth(ground_truth, "scenes", pd.DataFrame(scene_rows).round(4))
    return {
        "images": len(shots),
        "sites": len({s.site for s in shots}),
        "pose_folders": len({(s.site, s.pose) for s in shots if s.pose != NO_PERSON_POSE}),
        "poses": sorted({s.pose for s in shots if s.pose != NO_PERSON_POSE}),
        "empty_images": sum(not s.people for s in shots),
        "persons": len(kp_rows),
        "bystanders": int((~keypoints["is_main"]).sum()) if len(keypoints) else 0,
        "annotations": len(annotations),
        "size": shots[0].size if shots else 0,
        "seed": seed,
    }
