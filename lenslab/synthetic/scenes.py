"""Procedural base photos: textured backgrounds, gradients, clutter shapes and an animal subject.

Everything is a float (H, W, 3) array in [0, 1] drawn with numpy from a caller's seeded
``np.random.Generator``, so scenes are varied yet byte-for-byte repeatable. The subject is a
four-legged "creature" (pets, and the subject of the aesthetics photos) whose coverage mask and
head box are returned too: they become trimaps and VOC head boxes.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

PATTERNS = ("solid", "stripes", "spots", "bicolour")
EARS = ("pointed", "floppy")


# ---------------------------------------------------------------------------- primitives
def colour(rng: np.random.Generator, saturation: tuple[float, float] = (0.2, 0.7),
           value: tuple[float, float] = (0.3, 0.9), hue: float | None = None) -> np.ndarray:
    """A random RGB colour drawn in HSV, where "muted" and "bright" are easy to ask for."""
    h = rng.random() if hue is None else hue % 1.0
    s, v = rng.uniform(*saturation), rng.uniform(*value)
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32)


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int,
                 octaves: int = 1) -> np.ndarray:
    """Value noise in [0, 1]: random grids bilinearly upsampled, finer octaves fainter."""
    total = np.zeros((height, width), dtype=np.float32)
    weight = 0.0
    for octave in range(octaves):
        n = cells * 2**octave
        grid = rng.random((n + 1, n + 1)).astype(np.float32)
        ys = np.linspace(0.0, n, height, dtype=np.float32)
        xs = np.linspace(0.0, n, width, dtype=np.float32)
        y0 = np.minimum(ys.astype(int), n - 1)
        x0 = np.minimum(xs.astype(int), n - 1)
        fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
        # separable: along x on the coarse rows, then along y at full size
        rows = grid[:, x0] * (1 - fx) + grid[:, x0 + 1] * fx
        amplitude = 0.5**octave
        total += amplitude * (rows[y0] * (1 - fy) + rows[y0 + 1] * fy)
        weight += amplitude
    return total / weight


def blur(pixels: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur over the two image axes (edge-padded); sigma in pixels."""
    if sigma <= 0.05:
        return pixels
    radius = max(1, math.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = pixels.astype(np.float32)
    for axis in (0, 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.moveaxis(np.pad(out, pad, mode="edge"), axis, 0)
        size = out.shape[axis]
        acc = np.zeros_like(padded[:size])
        for i, w in enumerate(taps):
            acc += np.float32(w) * padded[i:i + size]
        out = np.moveaxis(acc, 0, axis)
    return np.ascontiguousarray(out)


def _grid(height: int, width: int, y0: int = 0, x0: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of rows y0.. (H, 1) and columns x0.. (1, W), to broadcast."""
    ys = np.arange(y0, y0 + height, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(x0, x0 + width, dtype=np.float32)[None, :] + 0.5
    return ys, xs


def ellipse_alpha(height: int, width: int, cx: float, cy: float, rx: float, ry: float,
                  angle: float = 0.0) -> np.ndarray:
    """Anti-aliased coverage (H, W) of a rotated ellipse, in pixels."""
    alpha = np.zeros((height, width), dtype=np.float32)
    # only the ellipse's bounding window is computed: shapes are small next to the image
    reach = max(rx, ry) + 1.0
    y0, y1 = max(0, math.floor(cy - reach)), min(height, math.ceil(cy + reach))
    x0, x1 = max(0, math.floor(cx - reach)), min(width, math.ceil(cx + reach))
    if y0 >= y1 or x0 >= x1:
        return alpha
    ys, xs = _grid(y1 - y0, x1 - x0, y0, x0)
    dx, dy = xs - cx, ys - cy
    ca, sa = math.cos(angle), math.sin(angle)
    u, v = (dx * ca + dy * sa) / rx, (-dx * sa + dy * ca) / ry
    q = np.sqrt(u * u + v * v)
    alpha[y0:y1, x0:x1] = np.clip((1.0 - q) * min(rx, ry) + 0.5, 0.0, 1.0)
    return alpha


def polygon_alpha(height: int, width: int, points: list[tuple[float, float]]) -> np.ndarray:
    """Anti-aliased coverage (H, W) of a convex polygon given counter-clockwise or clockwise."""
    pts = np.asarray(points, dtype=np.float32)
    alpha = np.zeros((height, width), dtype=np.float32)
    top = max(0, math.floor(pts[:, 1].min()) - 1)
    bottom = min(height, math.ceil(pts[:, 1].max()) + 1)
    left = max(0, math.floor(pts[:, 0].min()) - 1)
    right = min(width, math.ceil(pts[:, 0].max()) + 1)
    if top >= bottom or left >= right:
        return alpha
    ys, xs = _grid(bottom - top, right - left, top, left)
    area = np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1])
    sign = 1.0 if area > 0 else -1.0
    inside = np.ones((bottom - top, right - left), dtype=np.float32)
    for (x0, y0), (x1, y1) in zip(pts, np.roll(pts, -1, axis=0), strict=True):
        ex, ey = x1 - x0, y1 - y0
        dist = sign * ((xs - x0) * ey - (ys - y0) * ex) / max(math.hypot(ex, ey), 1e-6)
        inside = np.minimum(inside, np.clip(-dist + 0.5, 0.0, 1.0))
    alpha[top:bottom, left:right] = inside
    return alpha


def paint(pixels: np.ndarray, alpha: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """Composite ``fill`` (a colour or an image) over ``pixels`` with coverage ``alpha``."""
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    out = pixels.astype(np.float32, copy=True)
    if rows.size == 0:
        return out
    window = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    a = alpha[window][..., None]
    fill = fill[window] if np.ndim(fill) == 3 else fill
    out[window] = pixels[window] * (1.0 - a) + fill * a
    return out


# ---------------------------------------------------------------------------- backgrounds
def background(rng: np.random.Generator, height: int, width: int, *,
               texture: float = 0.5) -> np.ndarray:
    """A gradient backdrop (sky over ground, or a lit wall) with textured value noise."""
    if rng.random() < 0.5:  # outdoors: sky, horizon, ground
        sky = colour(rng, (0.1, 0.5), (0.6, 0.95), hue=rng.uniform(0.5, 0.65))
        ground = colour(rng, (0.25, 0.7), (0.25, 0.65), hue=rng.uniform(0.05, 0.35))
        horizon = rng.uniform(0.3, 0.65) * height
        tilt = rng.normal(0.0, 0.08)
        ys, xs = _grid(height, width)
        edge = horizon + tilt * (xs - width / 2)
        t = np.clip((ys - edge) / 2.0 + 0.5, 0.0, 1.0)[..., None]
        fall = (ys / height)[..., None] * 0.25
        base = sky * (1.0 - t) * (1.0 - fall) + ground * t * (1.0 - 0.5 * fall)
    else:  # indoors: a wall lit from one side
        wall = colour(rng, (0.05, 0.5), (0.35, 0.85))
        angle = rng.uniform(0, 2 * math.pi)
        ys, xs = _grid(height, width)
        ramp = ((xs / width - 0.5) * math.cos(angle) + (ys / height - 0.5) * math.sin(angle))
        base = wall * (1.0 + 0.6 * ramp[..., None])
    noise = smooth_noise(rng, height, width, cells=int(rng.integers(3, 9)), octaves=3)
    tint = colour(rng, (0.2, 0.6), (0.5, 1.0))
    base = base * (1.0 + texture * (noise[..., None] - 0.5)) + 0.15 * texture * (tint - 0.5) * (
        noise[..., None] - 0.5
    )
    return np.clip(base, 0.0, 1.0).astype(np.float32)


def add_clutter(rng: np.random.Generator, pixels: np.ndarray, count: int) -> np.ndarray:
    """Scatter ``count`` random ellipses and quadrilaterals (objects, leaves, furniture)."""
    height, width = pixels.shape[:2]
    for _ in range(count):
        size = rng.uniform(0.04, 0.2) * min(height, width)
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        if rng.random() < 0.5:
            alpha = ellipse_alpha(height, width, cx, cy, size, size * rng.uniform(0.3, 1.0),
                                  rng.uniform(0, math.pi))
        else:
            angles = np.sort(rng.uniform(0, 2 * math.pi, 4))
            radii = size * rng.uniform(0.6, 1.4, 4)
            pts = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a, r in zip(angles, radii,
                                                                                  strict=True)]
            alpha = polygon_alpha(height, width, pts)
        pixels = paint(pixels, alpha * rng.uniform(0.6, 1.0), colour(rng))
    return pixels


# ---------------------------------------------------------------------------- the subject
@dataclass(frozen=True)
class Creature:
    """What a four-legged subject looks like; a breed is one fixed Creature."""

    coat: tuple[float, float, float]
    marking: tuple[float, float, float]
    pattern: str  # one of PATTERNS
    ears: str  # one of EARS
    body_aspect: float  # body length / height
    head_ratio: float  # head radius / body height
    leg_length: float  # relative to body height
    fur: float  # fur texture amplitude


def random_creature(rng: np.random.Generator, *, ears: str | None = None) -> Creature:
    """A random look; ``ears`` fixes the ear style (pointed for cats, floppy for most dogs)."""
    coat = colour(rng, (0.05, 0.6), (0.15, 0.95), hue=rng.uniform(0.02, 0.14))
    marking = colour(rng, (0.0, 0.5), (0.05, 0.95), hue=rng.uniform(0.02, 0.14))
    return Creature(
        coat=tuple(float(c) for c in coat),
        marking=tuple(float(c) for c in marking),
        pattern=str(rng.choice(PATTERNS)),
        ears=ears if ears is not None else str(rng.choice(EARS)),
        body_aspect=float(rng.uniform(1.2, 2.0)),
        head_ratio=float(rng.uniform(0.45, 0.75)),
        leg_length=float(rng.uniform(0.3, 0.8)),
        fur=float(rng.uniform(0.05, 0.35)),
    )


@dataclass
class Scene:
    """A rendered base photo and what is known about it."""

    pixels: np.ndarray  # (H, W, 3) float32 in [0, 1]
    mask: np.ndarray  # (H, W) subject coverage in [0, 1]
    head_box: tuple[int, int, int, int] | None  # xmin, ymin, xmax, ymax (pixels, inclusive)


def _coat_texture(rng: np.random.Generator, creature: Creature, height: int, width: int,
                  cy: float, body_h: float) -> np.ndarray:
    coat, marking = np.array(creature.coat), np.array(creature.marking)
    ys, xs = _grid(height, width)
    if creature.pattern == "stripes":
        mix = (np.sin(xs / max(body_h * 0.18, 1.0) + 0.4 * ys / body_h) > 0.3).astype(np.float32)
    elif creature.pattern == "spots":
        mix = (smooth_noise(rng, height, width, cells=8) > 0.62).astype(np.float32)
    elif creature.pattern == "bicolour":
        mix = np.clip((ys - cy) / 3.0, 0.0, 1.0)
    else:
        mix = np.zeros((height, width), dtype=np.float32)
    base = coat * (1.0 - mix[..., None]) + marking * mix[..., None]
    fur = smooth_noise(rng, height, width, cells=max(4, width // 6))
    shade = 1.0 - 0.25 * np.clip((ys - (cy - body_h)) / (2.5 * body_h), 0.0, 1.0)
    return base * ((1.0 + creature.fur * (fur - 0.5)) * shade)[..., None]


def draw_creature(rng: np.random.Generator, pixels: np.ndarray, creature: Creature, *,
                  cx: float, cy: float, size: float) -> Scene:
    """Draw ``creature`` with its body centred at (cx, cy) pixels, body height ``size`` pixels."""
    height, width = pixels.shape[:2]
    facing = 1.0 if rng.random() < 0.5 else -1.0
    body_h, body_w = size, size * creature.body_aspect
    pose = rng.normal(0.0, 0.12)
    body = ellipse_alpha(height, width, cx, cy, body_w / 2, body_h / 2, pose)
    legs = np.zeros_like(body)
    leg_h = body_h * creature.leg_length
    for fx in (-0.35, -0.2, 0.2, 0.35):
        lx = cx + fx * body_w
        legs = np.maximum(legs, ellipse_alpha(height, width, lx, cy + body_h * 0.35 + leg_h / 2,
                                              body_h * 0.09, leg_h / 2 + body_h * 0.1))
    tail = ellipse_alpha(height, width, cx - facing * body_w * 0.55, cy - body_h * 0.25,
                         body_h * 0.35, body_h * 0.07, -facing * 0.8)
    r = body_h * creature.head_ratio
    hx, hy = cx + facing * body_w * 0.45, cy - body_h * 0.45
    head = ellipse_alpha(height, width, hx, hy, r, r * 0.9)
    ears = np.zeros_like(head)
    for side in (-1.0, 1.0):
        ex = hx + side * r * 0.55
        if creature.ears == "pointed":
            pts = [(ex - r * 0.35, hy - r * 0.55), (ex + r * 0.35, hy - r * 0.55),
                   (ex + side * r * 0.1, hy - r * 1.35)]
            ears = np.maximum(ears, polygon_alpha(height, width, pts))
        else:
            ears = np.maximum(ears, ellipse_alpha(height, width, hx + side * r * 0.85,
                                                  hy + r * 0.15, r * 0.28, r * 0.6, side * 0.3))
    head_all = np.maximum(head, ears)
    alpha = np.maximum.reduce([body, legs, tail, head_all])
    coat = _coat_texture(rng, creature, height, width, cy, body_h)
    # a soft contact shadow grounds the subject
    shadow = ellipse_alpha(height, width, cx, cy + body_h * 0.4 + leg_h, body_w * 0.6,
                           body_h * 0.15) * 0.35
    pixels = paint(pixels, shadow, np.zeros(3, dtype=np.float32))
    pixels = paint(pixels, alpha, coat)
    for side in (-1.0, 1.0):  # eyes, then the nose
        eye = ellipse_alpha(height, width, hx + side * r * 0.35 + facing * r * 0.1, hy - r * 0.1,
                            max(r * 0.12, 0.8), max(r * 0.12, 0.8))
        pixels = paint(pixels, eye, np.array([0.05, 0.05, 0.04], dtype=np.float32))
    nose = ellipse_alpha(height, width, hx + facing * r * 0.2, hy + r * 0.35, max(r * 0.13, 0.7),
                         max(r * 0.09, 0.6))
    pixels = paint(pixels, nose, np.array([0.12, 0.06, 0.06], dtype=np.float32))
    rows, cols = np.nonzero(head_all > 0.5)
    box = None
    if rows.size:
        box = (int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max()))
    return Scene(np.clip(pixels, 0.0, 1.0).astype(np.float32), alpha.astype(np.float32), box)


def render_scene(rng: np.random.Generator, height: int, width: int, *,
                 creature: Creature | None = None, subject_size: float = 0.3,
                 subject_xy: tuple[float, float] | None = None, clutter: int | None = None,
                 texture: float | None = None) -> Scene:
    """A base photo: background, clutter and (optionally) a creature.

    ``subject_size`` is the body height as a fraction of the short side; ``subject_xy`` the body
    centre as fractions of width and height (random near the middle when None). ``clutter`` and
    ``texture`` are drawn when None.
    """
    texture = float(rng.uniform(0.2, 0.9)) if texture is None else texture
    clutter = int(rng.integers(1, 7)) if clutter is None else clutter
    pixels = add_clutter(rng, background(rng, height, width, texture=texture), clutter)
    if creature is None:
        return Scene(pixels, np.zeros((height, width), dtype=np.float32), None)
    if subject_xy is None:
        subject_xy = (float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.45, 0.65)))
    size = subject_size * min(height, width)
    return draw_creature(rng, pixels, creature, cx=subject_xy[0] * width,
                         cy=subject_xy[1] * height, size=size)


def trimap(mask: np.ndarray, border: int = 2) -> np.ndarray:
    """Oxford-style trimap (uint8): 1 foreground, 2 background, 3 the unsure band at the edge."""
    fg = mask > 0.5
    grown, shrunk = fg.copy(), fg.copy()
    padded = np.pad(fg, border, mode="edge")
    height, width = fg.shape
    for dy in range(-border, border + 1):
        for dx in range(-border, border + 1):
            window = padded[border + dy:border + dy + height, border + dx:border + dx + width]
            grown |= window
            shrunk &= window
    out = np.full(fg.shape, 2, dtype=np.uint8)
    out[shrunk] = 1
    out[grown & ~shrunk] = 3
    return out
