"""Drawing for the people datasets: articulated bodies, selfie faces and landmark scenes.

Everything is drawn with PIL at ``SUPERSAMPLE`` times the output size and downsampled by
:func:`finish`, which anti-aliases edges. Coordinates are pixels of the supersampled canvas unless
a name says otherwise. Nothing here draws random numbers: callers pass every choice in, so a
dataset's generator owns its seeded streams and its ground truth.

Bodies follow COCO-17: a pose is a set of limb angles (0 degrees points down the image, +90 to
image right), the person faces the camera, so their left side is on the image right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from lenslab.edits import EditParams, apply_edits
from lenslab.formats.landmark_photos import COCO_KEYPOINTS

SUPERSAMPLE = 2
Colour = tuple[int, int, int]

KP = {name: i for i, name in enumerate(COCO_KEYPOINTS)}
# Swapping left and right labels after a horizontal flip keeps "left" on the image right.
MIRROR_ORDER = [KP[n.replace("left", "@").replace("right", "left").replace("@", "right")]
                for n in COCO_KEYPOINTS]

# Body proportions in units of standing height (hip centre at the origin).
SHOULDER_HALF, HIP_HALF, TORSO = 0.11, 0.075, 0.30
UPPER_ARM, FOREARM, THIGH, SHIN, NECK = 0.16, 0.15, 0.24, 0.23, 0.11


# --------------------------------------------------------------------------------------- bodies
@dataclass(frozen=True)
class PoseTemplate:
    """Limb angles in degrees; "right" is the person's right (image left)."""

    name: str
    arms: tuple[float, float, float, float]  # right upper, right fore, left upper, left fore
    legs: tuple[float, float, float, float]  # right thigh, right shin, left thigh, left shin
    lean: float = 0.0  # upper body, + leans to image right


@dataclass(frozen=True)
class PersonStyle:
    skin: Colour
    shirt: Colour
    trousers: Colour
    hair: Colour
    shoes: Colour


def _down(deg: float | np.ndarray) -> np.ndarray:
    """Unit vector at ``deg`` from straight down (+ towards image right)."""
    rad = np.radians(deg)
    return np.array([np.sin(rad), np.cos(rad)])


def body_keypoints(
    pose: PoseTemplate, angle_noise: np.ndarray, lean_noise: float, lengths: np.ndarray
) -> np.ndarray:
    """COCO-17 (x, y) in body units, hip centre at the origin.

    ``angle_noise`` (8,) is added to the arm and leg angles (joint jitter), ``lengths`` (4,)
    multiplies upper arm, forearm, thigh and shin (body shape).
    """
    arms = np.add(pose.arms, angle_noise[:4])
    legs = np.add(pose.legs, angle_noise[4:])
    lean = pose.lean + lean_noise
    # the upper body turns by ``lean`` about the hips: up tilts right, limb angles turn with it
    up = _down(180.0 - lean)
    across = np.array([-up[1], up[0]])  # perpendicular to up, towards image right
    neck = TORSO * up
    kp = np.zeros((17, 2))
    kp[KP["nose"]] = neck + NECK * up
    for side, sign in (("left", 1.0), ("right", -1.0)):
        kp[KP[f"{side}_eye"]] = kp[KP["nose"]] + sign * 0.022 * across + 0.018 * up
        kp[KP[f"{side}_ear"]] = kp[KP["nose"]] + sign * 0.05 * across + 0.005 * up
        upper, fore = (arms[2], arms[3]) if side == "left" else (arms[0], arms[1])
        thigh, shin = (legs[2], legs[3]) if side == "left" else (legs[0], legs[1])
        shoulder = neck + sign * SHOULDER_HALF * across
        elbow = shoulder + UPPER_ARM * lengths[0] * _down(upper - lean)
        hip = np.array([sign * HIP_HALF, 0.0])
        knee = hip + THIGH * lengths[2] * _down(thigh)
        kp[KP[f"{side}_shoulder"]] = shoulder
        kp[KP[f"{side}_elbow"]] = elbow
        kp[KP[f"{side}_wrist"]] = elbow + FOREARM * lengths[1] * _down(fore - lean)
        kp[KP[f"{side}_hip"]] = hip
        kp[KP[f"{side}_knee"]] = knee
        kp[KP[f"{side}_ankle"]] = knee + SHIN * lengths[3] * _down(shin)
    return kp


def place_body(
    body: np.ndarray, height: float, centre_x: float, ground_y: float, mirror: bool
) -> np.ndarray:
    """Body units -> image pixels: ``height`` px per body unit, lowest point on ``ground_y``."""
    kp = body.copy()
    if mirror:
        kp[:, 0] = -kp[:, 0]
        kp = kp[MIRROR_ORDER]
    lowest = kp[:, 1].max() + 0.02  # feet below the ankles
    return np.column_stack([centre_x + kp[:, 0] * height, ground_y + (kp[:, 1] - lowest) * height])


def _capsule(draw: ImageDraw.ImageDraw, a: np.ndarray, b: np.ndarray, width: float,
             colour: Colour) -> None:
    """A limb: a thick line with round ends."""
    r = width / 2
    draw.line([tuple(a), tuple(b)], fill=colour, width=max(1, round(width)))
    for p in (a, b):
        draw.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], fill=colour)


def draw_person(draw: ImageDraw.ImageDraw, kp: np.ndarray, height: float,
                style: PersonStyle) -> None:
    """Draw a figure from COCO-17 pixel keypoints; ``height`` is px per body unit."""
    p = {name: kp[i] for i, name in enumerate(COCO_KEYPOINTS)}
    for side in ("left", "right"):
        _capsule(draw, p[f"{side}_hip"], p[f"{side}_knee"], 0.075 * height, style.trousers)
        _capsule(draw, p[f"{side}_knee"], p[f"{side}_ankle"], 0.06 * height, style.trousers)
        _capsule(draw, p[f"{side}_ankle"], p[f"{side}_ankle"] + [0, 0.015 * height],
                 0.055 * height, style.shoes)
    hip_out = [0.025 * height, 0.0]  # left is always on the image right (see MIRROR_ORDER)
    torso = [p["left_shoulder"], p["right_shoulder"], p["right_hip"] - hip_out,
             p["left_hip"] + hip_out]
    draw.polygon([tuple(q) for q in torso], fill=style.shirt)
    neck = (p["left_shoulder"] + p["right_shoulder"]) / 2
    _capsule(draw, neck, (neck + p["nose"]) / 2, 0.045 * height, style.skin)
    for side in ("left", "right"):
        _capsule(draw, p[f"{side}_shoulder"], p[f"{side}_elbow"], 0.055 * height, style.shirt)
        _capsule(draw, p[f"{side}_elbow"], p[f"{side}_wrist"], 0.042 * height, style.skin)
        hand = p[f"{side}_wrist"] + 0.25 * (p[f"{side}_wrist"] - p[f"{side}_elbow"])
        _capsule(draw, p[f"{side}_wrist"], hand, 0.05 * height, style.skin)
    centre = (p["left_ear"] + p["right_ear"]) / 2 + (p["left_eye"] - p["nose"]) * [0, 1.2]
    rx, ry = 0.058 * height, 0.07 * height
    draw.ellipse([centre[0] - rx, centre[1] - ry, centre[0] + rx, centre[1] + ry], fill=style.skin)
    draw.chord([centre[0] - rx, centre[1] - ry, centre[0] + rx, centre[1] + ry * 0.6], 180, 360,
               fill=style.hair)
    for eye in ("left_eye", "right_eye"):
        e, r = p[eye], max(1.0, 0.008 * height)
        draw.ellipse([e[0] - r, e[1] - r, e[0] + r, e[1] + r], fill=(30, 25, 25))


# ---------------------------------------------------------------------------------------- faces
@dataclass(frozen=True)
class FaceLook:
    """What a selfie's subject looks like; the selfie generator derives it from the attributes."""

    skin: Colour
    hair: Colour
    iris: Colour
    lips: Colour
    shirt: Colour
    hat: Colour
    shape: str = "oval"  # oval | round | heart
    hair_style: str = "short"  # short | long | curly | braid | bald
    smiling: bool = False
    mouth_open: bool = False
    frowning: bool = False
    tongue_out: bool = False
    duck_face: bool = False
    glasses: bool = False
    sunglasses: bool = False
    braces: bool = False
    hat_on: bool = False
    earphones: bool = False
    wrinkles: bool = False
    eye_scale: float = 1.0  # children have larger eyes for their face


def _box(cx: float, cy: float, rx: float, ry: float) -> list[float]:
    return [cx - rx, cy - ry, cx + rx, cy + ry]


def draw_bust(draw: ImageDraw.ImageDraw, cx: float, cy: float, fh: float, look: FaceLook) -> None:
    """Neck and shoulders below a face of height ``fh`` centred on (cx, cy)."""
    draw.ellipse(_box(cx, cy + 1.35 * fh, 1.25 * fh, 0.75 * fh), fill=look.shirt)
    draw.rectangle([cx - 0.2 * fh, cy + 0.3 * fh, cx + 0.2 * fh, cy + 0.75 * fh], fill=look.skin)
    if look.hair_style in ("long", "curly"):
        draw.rounded_rectangle([cx - 0.62 * fh, cy - 0.45 * fh, cx + 0.62 * fh, cy + 0.85 * fh],
                               radius=0.3 * fh, fill=look.hair)


def draw_face(draw: ImageDraw.ImageDraw, cx: float, cy: float, fh: float, look: FaceLook) -> None:
    """A face of height ``fh`` centred on (cx, cy) with hair, eyes, mouth and accessories."""
    fw = fh * {"oval": 0.76, "round": 0.92, "heart": 0.84}[look.shape]
    rx, ry = fw / 2, fh / 2
    for side in (-1, 1):  # ears
        draw.ellipse(_box(cx + side * rx, cy, 0.09 * fh, 0.14 * fh), fill=look.skin)
    if look.shape == "heart":  # wide cheekbones, narrow pointed chin
        draw.ellipse(_box(cx, cy - 0.1 * fh, rx, ry * 0.8), fill=look.skin)
        draw.polygon([(cx - rx * 0.97, cy), (cx + rx * 0.97, cy), (cx, cy + ry)], fill=look.skin)
    else:
        draw.ellipse(_box(cx, cy, rx, ry), fill=look.skin)
    dark = tuple(int(c * 0.7) for c in look.skin)
    _draw_hair(draw, cx, cy, fh, rx, look)
    eye_y, eye_dx, er = cy - 0.08 * fh, 0.2 * fw, 0.055 * fh * look.eye_scale
    brow_tilt = 0.05 * fh if look.frowning else -0.01 * fh
    for side in (-1, 1):
        ex = cx + side * eye_dx
        draw.line([(ex - side * 1.2 * er, eye_y - 2.2 * er), (ex + side * 1.4 * er,
                   eye_y - 2.2 * er - brow_tilt)], fill=tuple(int(c * 0.6) for c in look.hair),
                  width=max(1, round(0.025 * fh)))
        draw.ellipse(_box(ex, eye_y, 1.3 * er, 0.8 * er), fill=(245, 245, 240))
        draw.ellipse(_box(ex, eye_y, 0.6 * er, 0.6 * er), fill=look.iris)
        if look.wrinkles:
            draw.line([(ex + side * 1.6 * er, eye_y), (ex + side * 2.3 * er, eye_y + 0.8 * er)],
                      fill=dark, width=max(1, round(0.012 * fh)))
        if look.sunglasses:
            draw.rounded_rectangle(_box(ex, eye_y, 1.9 * er, 1.3 * er), radius=0.6 * er,
                                   fill=(20, 20, 25))
        elif look.glasses:
            draw.ellipse(_box(ex, eye_y, 1.9 * er, 1.5 * er), outline=(40, 30, 30),
                         width=max(1, round(0.02 * fh)))
    if look.glasses or look.sunglasses:
        draw.line([(cx - eye_dx + 1.9 * er, eye_y), (cx + eye_dx - 1.9 * er, eye_y)],
                  fill=(40, 30, 30), width=max(1, round(0.02 * fh)))
    draw.line([(cx, cy - 0.02 * fh), (cx - 0.04 * fh, cy + 0.1 * fh), (cx + 0.02 * fh,
               cy + 0.11 * fh)], fill=dark, width=max(1, round(0.02 * fh)))
    _draw_mouth(draw, cx, cy + 0.25 * fh, fh, look)
    if look.hat_on:
        draw.rectangle([cx - 0.75 * fw, cy - 0.42 * fh, cx + 0.75 * fw, cy - 0.36 * fh],
                       fill=look.hat)
        draw.chord(_box(cx, cy - 0.38 * fh, 0.55 * fw, 0.35 * fh), 180, 360, fill=look.hat)
    if look.earphones:
        for side in (-1, 1):
            ear = (cx + side * rx, cy + 0.05 * fh)
            draw.line([ear, (cx + side * 0.3 * fw, cy + 0.9 * fh)], fill=(245, 245, 245),
                      width=max(1, round(0.015 * fh)))
            draw.ellipse(_box(*ear, 0.04 * fh, 0.04 * fh), fill=(250, 250, 250))


def _draw_hair(draw: ImageDraw.ImageDraw, cx: float, cy: float, fh: float, rx: float,
               look: FaceLook) -> None:
    if look.hair_style == "bald":
        return
    top = _box(cx, cy - 0.12 * fh, rx * 1.08, fh * 0.45)
    draw.chord(top, 180, 360, fill=look.hair)
    if look.hair_style == "curly":
        for k in range(9):
            a = math.pi * (1 + k / 8)
            x, y = cx + rx * 1.05 * math.cos(a), cy - 0.12 * fh + 0.45 * fh * math.sin(a)
            draw.ellipse(_box(x, y, 0.1 * fh, 0.1 * fh), fill=look.hair)
    elif look.hair_style == "braid":
        for k in range(5):
            draw.ellipse(_box(cx + rx * 1.05, cy + (0.05 + 0.16 * k) * fh, 0.07 * fh, 0.09 * fh),
                         fill=look.hair)


def _draw_mouth(draw: ImageDraw.ImageDraw, mx: float, my: float, fh: float,
                look: FaceLook) -> None:
    w, line = 0.17 * fh, max(1, round(0.022 * fh))
    if look.duck_face:
        draw.ellipse(_box(mx, my, 0.07 * fh, 0.05 * fh), fill=look.lips)
        return
    if look.mouth_open or look.smiling:
        depth = 0.1 * fh if look.mouth_open else 0.06 * fh
        draw.chord([mx - w, my - depth, mx + w, my + depth], 0, 180, fill=(90, 20, 30))
        draw.chord([mx - 0.8 * w, my - depth, mx + 0.8 * w, my + depth * 0.5], 0, 180,
                   fill=(240, 238, 230))
        if look.braces:
            draw.line([(mx - 0.7 * w, my + 0.02 * fh), (mx + 0.7 * w, my + 0.02 * fh)],
                      fill=(150, 150, 160), width=line)
        draw.arc([mx - w, my - depth, mx + w, my + depth], 0, 180, fill=look.lips, width=line)
    elif look.frowning:
        draw.arc([mx - w, my, mx + w, my + 0.12 * fh], 200, 340, fill=look.lips, width=line)
    else:
        draw.line([(mx - w * 0.8, my), (mx + w * 0.8, my)], fill=look.lips, width=line)
    if look.tongue_out:
        draw.ellipse(_box(mx, my + 0.08 * fh, 0.06 * fh, 0.07 * fh), fill=(225, 100, 120))


def draw_phone(draw: ImageDraw.ImageDraw, x: float, y: float, h: float, skin: Colour) -> None:
    """A hand holding a phone whose screen faces away; (x, y) is the phone's centre."""
    draw.ellipse(_box(x, y + 0.35 * h, 0.3 * h, 0.25 * h), fill=skin)
    draw.rounded_rectangle(_box(x, y, 0.26 * h, 0.5 * h), radius=0.06 * h, fill=(25, 25, 30))
    draw.ellipse(_box(x - 0.12 * h, y - 0.4 * h, 0.05 * h, 0.05 * h), fill=(80, 80, 90))


# --------------------------------------------------------------------------------------- scenes
Shape = tuple  # (kind, coords, colour) or ("line", points, colour, width): world units


@dataclass(frozen=True)
class Scene:
    """A landmark site in world units: x and y in [0, 1], y down, seen by a jittered camera."""

    sky_top: Colour
    sky_horizon: Colour
    ground: Colour
    horizon: float
    shapes: tuple[Shape, ...]


@dataclass(frozen=True)
class Camera:
    cx: float = 0.5  # world point at the image centre
    cy: float = 0.5
    zoom: float = 1.0  # image width covers 1/zoom world units


def _lerp(a: Colour, b: Colour, t: np.ndarray) -> np.ndarray:
    return np.asarray(a, float) + (np.asarray(b, float) - np.asarray(a, float)) * t[..., None]


def draw_scene(size: int, scene: Scene, camera: Camera,
               clouds: tuple[tuple[float, float, float], ...] = ()) -> Image.Image:
    """Render a site at ``size`` px (supersampled canvas); clouds are (x, y, radius) in world."""
    rows = (np.arange(size) + 0.5) / size
    world_y = (rows - 0.5) / camera.zoom + camera.cy
    sky = _lerp(scene.sky_top, scene.sky_horizon, np.clip(world_y / scene.horizon, 0, 1))
    ground = _lerp(scene.ground, tuple(int(c * 0.75) for c in scene.ground),
                   np.clip((world_y - scene.horizon) * 3, 0, 1))
    column = np.where((world_y < scene.horizon)[:, None], sky, ground).round().astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(np.broadcast_to(column[:, None], (size, size, 3))),
                            mode="RGB")
    draw = ImageDraw.Draw(image)

    def px(x: float, y: float) -> tuple[float, float]:
        return (((x - camera.cx) * camera.zoom + 0.5) * size,
                ((y - camera.cy) * camera.zoom + 0.5) * size)

    for x, y, r in clouds:
        for dx in (-1.2, 0.0, 1.1):
            (x0, y0), (x1, y1) = px(x + dx * r - r, y - r * 0.5), px(x + dx * r + r, y + r * 0.5)
            draw.ellipse([x0, y0, x1, y1], fill=(246, 246, 250))
    for shape in scene.shapes:
        kind, coords, colour = shape[:3]
        if kind == "line":
            width = max(1, round(shape[3] * camera.zoom * size))
            draw.line([px(*p) for p in coords], fill=colour, width=width)
        elif kind == "poly":
            draw.polygon([px(*p) for p in coords], fill=colour)
        else:
            (x0, y0), (x1, y1) = px(coords[0], coords[1]), px(coords[2], coords[3])
            getattr(draw, "rectangle" if kind == "rect" else "ellipse")([x0, y0, x1, y1],
                                                                          fill=colour)
    return image


# --------------------------------------------------------------------------------------- finish
def finish(
    canvas: Image.Image,
    size: int,
    edits: EditParams,
    *,
    blur: float = 0.0,
    side_light: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """A canvas (supersampled or at ``size``) -> float RGB (size, size, 3): downsample, lens
    blur, light, edits.

    ``blur`` is a Gaussian radius in output pixels; ``side_light`` in [0, 1] lights the image
    from the left and darkens the right (harsh directional light); ``edits`` carries exposure,
    white balance, contrast and sensor grain (drawn from ``rng``).
    """
    image = canvas.resize((size, size), Image.Resampling.BOX)
    if blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    if side_light:
        ramp = np.linspace(1.0 + 0.6 * side_light, 1.0 - 0.6 * side_light, size, dtype=np.float32)
        pixels = pixels * ramp[None, :, None]
    return apply_edits(np.clip(pixels, 0.0, 1.0), edits, rng=rng)
