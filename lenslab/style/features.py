"""Global editing-style features of photos, vectorised over a batch and differentiable in torch.

``global_features(batch)`` maps an (N, 3, H, W) sRGB batch in [0, 1] to an (N, F) tensor whose
columns are ``FEATURE_NAMES`` (one line per feature in ``FEATURE_DOCS``). Everything is built
from torch ops with gradients (sorting for the percentiles, pooling for the local contrast, soft
binning for the hue histogram), so the style autoencoder can put the features into its loss.
Every division and root is guarded, so black or constant images give finite values.

uint8 codes (what ``lenslab.style.extraction.extract`` decodes) take an inference path through the
same
functions: Lab from fixed-point lookup tables instead of pow per pixel (``_lab_rows``) and
the percentiles from a 0.1-L* histogram instead of a sort (``_percentiles``); the tests check
it against the float maths.

``seed_features(batch)`` reproduces the 4 features the seed (predict-photographer-editing-style)
clustered on, *including its layout bug*: it reshaped the NCHW tensor straight to (-1, 3), so
its "Lab L" mixes L, a and b of pseudo-pixels made of three neighbouring values of one channel,
then patched the resulting out-of-range ratios with the mean. It is kept only as the baseline.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

# sRGB (D65) -> XYZ, and the D65 white the seed normalised by (same constants as skimage).
_RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423),
               (0.212671, 0.715160, 0.072169),
               (0.019334, 0.119193, 0.950227))
_WHITE = (0.950456, 1.0, 1.088754)
_EPS_LAB = (6.0 / 29.0) ** 3
HUE_BINS = 8
# Below this L* (out of 100) a 3x3 window is "black": Michelson's ratio is 0/0 there.
_CONTRAST_FLOOR = 1.0
# Fraction of the side taken by each corner patch and by the centre patch (vignetting).
_CORNER = 0.2
_CENTRE = 0.4
# Fixed-point steps of X/Xn, Y/Yn, Z/Zn in the uint8 path's lookups (see _lab_rows).
_FIXED = 1 << 20
PERCENTILES = (0.05, 0.5, 0.95)
# L* resolution of the uint8 path's percentile histogram (see _percentiles).
_PERCENTILE_STEP = 0.1

FEATURE_DOCS: dict[str, str] = {
    "L_mean": "mean Lab lightness L* (0-100): overall brightness / exposure",
    "L_std": "standard deviation of L*: global (RMS) contrast",
    "L_p05": "5th percentile of L*: where the shadows sit (black point, fade lifts it)",
    "L_p50": "median L*: midtone placement (gamma / tone curve)",
    "L_p95": "95th percentile of L*: where the highlights sit (white point, clipping)",
    "local_contrast": "mean local Michelson contrast (max-min)/(max+min) of L* over 3x3 windows",
    "R_mean": "mean red value (sRGB, 0-1)",
    "G_mean": "mean green value (sRGB, 0-1)",
    "B_mean": "mean blue value (sRGB, 0-1)",
    "R_std": "standard deviation of red",
    "G_std": "standard deviation of green",
    "B_std": "standard deviation of blue",
    "saturation": "mean HSV saturation (max-min)/max: how vivid the colours are",
    "chroma": "mean Lab chroma sqrt(a*^2+b*^2): colour strength, robust in dark pixels",
    "colourfulness": "Hasler-Suesstrunk colourfulness of the opponent channels rg, yb (0-1 scale)",
    **{f"hue_{i}": f"share of chroma in hue bin {i} ({i * 360 // HUE_BINS}-"
       f"{(i + 1) * 360 // HUE_BINS} deg, saturation-weighted, soft-binned)"
       for i in range(HUE_BINS)},
    "cast_a": "mean a*: white-balance tint cast (+ magenta, - green)",
    "cast_b": "mean b*: white-balance temperature cast (+ warm/yellow, - cool/blue)",
    "sharpness": "variance of the Laplacian of L*/100: edge energy (crispness, also noise)",
    "noise": "Immerkaer high-frequency residual std of L*/100: grain / sensor noise",
    "vignetting": "mean L* of the four corners over mean L* of the centre (below 1: vignette)",
}
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURE_DOCS)
SEED_FEATURE_NAMES: tuple[str, ...] = ("seed_contrast", "seed_mean_r", "seed_mean_g",
                                       "seed_mean_b")


def srgb_linear(rgb: Tensor) -> Tensor:
    """Undo the sRGB transfer curve of float values in [0, 1]."""
    return torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055).pow(2.4), rgb / 12.92)


def as_unit(batch: Tensor) -> Tensor:
    """uint8 codes -> float32 in [0, 1]; float input unchanged."""
    return batch.float().div_(255.0) if batch.dtype == torch.uint8 else batch


def _lab_f(t: Tensor) -> Tensor:
    # cube root above the knee; the clamp keeps the unused branch's gradient finite at 0
    return torch.where(t > _EPS_LAB, t.clamp(min=_EPS_LAB).pow(1.0 / 3.0),
                       t / (3.0 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)


def _lab_scale(f: Tensor) -> Tensor:
    # 116 f - 16: L* for the Y row; a* and b* are 500/116 and 200/116 times differences of it
    return 116.0 * f - 16.0


def _xyz_row(linear: Tensor, k: int, dim: int) -> Tensor:
    r, g, b = linear.unbind(dim)
    m = _RGB_TO_XYZ[k]
    return (m[0] * r + m[1] * g + m[2] * b) / _WHITE[k]


@functools.cache
def _code_tables(device: torch.device) -> tuple[Tensor, Tensor]:
    """The uint8 path's tables: (3, 3, 256) int32 steps that channel c's code adds to row k of
    X/Xn, Y/Yn, Z/Zn (in 1/_FIXED units, each term rounded), and 116 f - 16 of every step
    count (float32). Built once per device, outside inference mode so any caller may use
    them."""
    with torch.inference_mode(False):
        linear = srgb_linear(torch.arange(256, dtype=torch.float64) / 255.0)
        rows = [torch.stack([linear * (m / white) for m in row])
                for row, white in zip(_RGB_TO_XYZ, _WHITE, strict=True)]
        steps = (torch.stack(rows) * _FIXED).round().to(torch.int32)
        # each row sums to 1 at white: three rounded terms stay below _FIXED + 2
        steps_f = _lab_f(torch.arange(_FIXED + 2, dtype=torch.float64) / _FIXED)
        return steps.to(device), _lab_scale(steps_f).float().to(device)


def _lab_rows(batch: Tensor, rows: tuple[int, ...], dim: int) -> list[Tensor]:
    """116 f(t) - 16 for t = X/Xn, Y/Yn, Z/Zn (the rows asked for, 0-2) of the pixels of
    ``batch`` along its channel axis ``dim`` (dropped): the one home of the Lab maths. Row 1 is
    L*; a* = 500/116 (row 0 - row 1) and b* = 200/116 (row 1 - row 2).

    Float input (differentiable): the sRGB curve, the matrix row and the cube root, per pixel.
    uint8 codes (inference): each channel's code looks up its share of the row in fixed point
    (2**20 steps), and the sum looks up 116 f - 16, so a row costs four gathers a pixel and no
    pow. L* is then within 0.002 and a*, b* within 0.01 of the float maths on the same codes.
    """
    if batch.dtype != torch.uint8:
        linear = srgb_linear(batch)
        return [_lab_scale(_lab_f(_xyz_row(linear, k, dim))) for k in rows]
    steps, f = _code_tables(batch.device)
    planes = [plane.to(torch.int32, memory_format=torch.contiguous_format).view(-1)
              for plane in batch.unbind(dim)]
    out = []
    for k in rows:
        total = steps[k, 0].index_select(0, planes[0])
        total += steps[k, 1].index_select(0, planes[1])
        total += steps[k, 2].index_select(0, planes[2])
        out.append(f.index_select(0, total).view(batch.select(dim, 0).shape))
    return out


def srgb_to_lab(rgb: Tensor, dim: int = -1) -> Tensor:
    """sRGB (float in [0, 1], or uint8 codes) -> CIE Lab (D65), pixel by pixel along ``dim``.

    Written as per-channel multiply-adds rather than a (..., 3) @ (3, 3) matmul: the same maths,
    several times faster on CPU. The channel axis is explicit, which is what the seed got wrong.
    """
    lx, light, lz = _lab_rows(rgb, (0, 1, 2), dim)
    lab = (light, (500.0 / 116.0) * (lx - light), (200.0 / 116.0) * (light - lz))
    # filling the channels of one tensor is several times faster than torch.stack along a last
    # axis (and as differentiable)
    out = light.new_empty(rgb.shape)
    for channel, values in enumerate(lab):
        out.select(dim, channel).copy_(values)
    return out


def lightness(batch: Tensor, dim: int = 1) -> Tensor:
    """L* of a batch along its channel axis ``dim`` (the axis is dropped): only the Y row of
    the conversion is needed."""
    return _lab_rows(batch, (1,), dim)[0]


def michelson_map(light: Tensor, floor: float = 0.0) -> Tensor:
    """(max-min)/(max+min) over the 3x3 windows of an (N, H, W) map (valid windows only).

    ``floor`` bounds the denominator (0 reproduces the seed's unguarded 0/0 on black).
    Max and min are separable: two passes of shifted slices, much cheaper than max_pool2d.
    """
    def pool(x: Tensor, op) -> Tensor:
        x = op(op(x[:, :, :-2], x[:, :, 1:-1]), x[:, :, 2:])
        return op(op(x[:, :-2], x[:, 1:-1]), x[:, 2:])

    high, low = pool(light, torch.maximum), pool(light, torch.minimum)
    return (high - low) / ((high + low).clamp(min=floor) if floor > 0 else high + low)


def _variance(x: Tensor) -> Tensor:
    """Population variance over the last axis: two plain passes (much faster than torch.var's
    one-pass Welford loop on CPU)."""
    return (x - x.mean(-1, keepdim=True)).square().mean(-1)


def _percentiles(flat_l: Tensor, exact: bool) -> Tensor:
    """(N, len(PERCENTILES)) of an (N, M) L* map, interpolating linearly between order
    statistics as torch.quantile does.

    ``exact`` sorts (torch.quantile, differentiable). Otherwise (uint8 inference) the order
    statistics are read off a per-image histogram of L* in 0.1 steps: within 0.05 L*, and a
    count instead of a sort.
    """
    q = torch.tensor(PERCENTILES, dtype=flat_l.dtype, device=flat_l.device)
    if exact:
        return torch.quantile(flat_l, q, dim=1).T
    n, m = flat_l.shape
    bins = round(100.0 / _PERCENTILE_STEP) + 1
    offsets = torch.arange(n, device=flat_l.device)[:, None] * bins
    key = (flat_l / _PERCENTILE_STEP).round_().clamp_(0, bins - 1).long().add_(offsets)
    cumulative = torch.bincount(key.view(-1), minlength=n * bins).view(n, bins).cumsum(1)
    rank = q * (m - 1)
    low = rank.floor()
    order = torch.cat([low, (low + 1).clamp(max=m - 1)]).long()  # 0-based order statistics
    # order statistic j sits in the first bin holding more than j values
    at = torch.searchsorted(cumulative, (order + 1).expand(n, -1).contiguous())
    values = at.to(flat_l.dtype).mul_(_PERCENTILE_STEP).view(n, 2, -1)
    return torch.lerp(values[:, 0], values[:, 1], rank - low)


def _safe_sqrt(x: Tensor, eps: float = 1e-12) -> Tensor:
    # sqrt's gradient is infinite at 0 (a grey image has zero chroma)
    return torch.sqrt(x.clamp(min=0.0) + eps)


def _hue_histogram(rgb: tuple[Tensor, Tensor, Tensor], weight: Tensor) -> Tensor:
    """Share of chroma per hue bin, (N, HUE_BINS), of the (N, M) channels ``rgb`` weighted by
    their HSV chroma ``weight`` (grey pixels weigh nothing); all zeros for a grey image."""
    r, g, b = rgb
    # Hanbury's hue angle from opponent axes: the same angle as HSV hue, but smooth
    alpha = r - 0.5 * (g + b)
    beta = (math.sqrt(3.0) / 2.0) * (g - b)
    # bin centres at integers; atan2's (-pi, pi] gives positions 8 bins below [0, 360) degrees'
    # for half the circle, which the wrap below (mod 8 on integers) takes back
    position = torch.atan2(beta, alpha + 1e-12).mul_(HUE_BINS / (2.0 * math.pi)).sub_(0.5)
    low = torch.floor(position)
    frac = position - low  # linear split between the two nearest bins keeps it differentiable
    low_bin = low.long().bitwise_and_(HUE_BINS - 1)
    high_bin = (low_bin + 1).bitwise_and_(HUE_BINS - 1)
    n = weight.shape[0]
    hist = torch.zeros(n, HUE_BINS, dtype=weight.dtype, device=weight.device)
    high_share = weight * frac
    hist = hist.scatter_add(1, low_bin, weight - high_share)
    hist = hist.scatter_add(1, high_bin, high_share)
    return hist / (hist.sum(1, keepdim=True) + 1e-6)


def _corner_centre_ratio(lightness: Tensor) -> Tensor:
    """Mean L* of the four corner patches / mean L* of the centre patch, (N,)."""
    h, w = lightness.shape[-2:]
    ch, cw = max(1, round(h * _CORNER)), max(1, round(w * _CORNER))
    corners = torch.cat([lightness[:, :ch, :cw], lightness[:, :ch, w - cw:],
                         lightness[:, h - ch:, :cw], lightness[:, h - ch:, w - cw:]], -1)
    mh, mw = max(1, round(h * _CENTRE / 2)), max(1, round(w * _CENTRE / 2))
    centre = lightness[:, h // 2 - mh: h // 2 + mh, w // 2 - mw: w // 2 + mw]
    # +1 L*: a black image is "no vignette" (ratio 1), not 0/0
    return (corners.mean((1, 2)) + 1.0) / (centre.mean((1, 2)) + 1.0)


def _second_differences(light: Tensor) -> tuple[Tensor, Tensor]:
    """Laplacian and Immerkaer's noise filter of an (N, H, W) map, valid region, by slices.

    Immerkaer's kernel [[1,-2,1],[-2,4,-2],[1,-2,1]] is the outer product of two second
    differences: it cancels planar and linear structure and leaves mostly the noise.
    """
    def second(x: Tensor, dim: int) -> Tensor:  # x[i-1] - 2 x[i] + x[i+1] in two passes
        n = x.shape[dim]
        return (x.narrow(dim, 0, n - 2) + x.narrow(dim, 2, n - 2)).sub_(x.narrow(dim, 1, n - 2),
                                                                         alpha=2.0)

    dxx = second(light, 2)
    laplacian = dxx[:, 1:-1] + second(light, 1)[:, :, 1:-1]
    return laplacian, second(dxx, 1)


def global_features(batch: Tensor) -> Tensor:
    """(N, 3, H, W) sRGB (float in [0, 1] or uint8) -> (N, len(FEATURE_NAMES)) features.

    Float input is differentiable end to end. uint8 codes (what ``extract`` passes) take the
    inference path: table lookups for Lab and a histogram for the percentiles, the same
    features as the float path on the same codes to within 1e-3 (0.06 L* for the
    percentiles), which the tests check.

    Spatial features (local contrast, sharpness, noise) use every pixel of L*. The per-pixel
    distribution statistics (means, spreads, percentiles, colour, hue) use every other pixel in
    each direction: a quarter of the pixels estimates a whole-image mean or percentile to well
    under 1 % and costs a quarter of the colour conversion.
    """
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"expected an (N, 3, H, W) batch, got {tuple(batch.shape)}")
    n = batch.shape[0]
    light = lightness(batch)
    local = michelson_map(light, _CONTRAST_FLOOR).mean((1, 2))
    # both on L*/100: linear filters, so the 1/100 is applied to the two numbers at the end
    laplacian, residual = _second_differences(light)
    sharpness = _variance(laplacian.reshape(n, -1)) / 100.0**2
    # Immerkaer: sigma = sqrt(pi/2) * mean |filtered| / 6
    noise = math.sqrt(math.pi / 2.0) / 600.0 * residual.abs().mean((1, 2))

    codes = batch[:, :, ::2, ::2]
    # Lab of the subsample; its L* is the full-resolution L* already computed, read at the
    # same pixels, so only a* and b* are converted here (same values as srgb_to_lab)
    sub_l = light[:, ::2, ::2]
    flat_l = sub_l.reshape(n, -1)
    lx, lz = (rows.reshape(n, -1) for rows in _lab_rows(codes, (0, 2), 1))
    a, b = (500.0 / 116.0) * (lx - flat_l), (200.0 / 116.0) * (flat_l - lz)
    percentiles = _percentiles(flat_l, exact=batch.dtype != torch.uint8)

    flat_rgb = as_unit(codes).reshape(n, 3, -1)
    r, g, bl = flat_rgb.unbind(1)
    rgb_mean = flat_rgb.mean(-1)
    rgb_std = _safe_sqrt(_variance(flat_rgb))
    high, low = torch.maximum(torch.maximum(r, g), bl), torch.minimum(torch.minimum(r, g), bl)
    saturation = ((high - low) / high.clamp(min=1e-3)).mean(-1)
    chroma = _safe_sqrt(torch.addcmul(a * a, b, b)).mean(-1)
    rg, yb = r - g, 0.5 * (r + g) - bl
    colourfulness = (_safe_sqrt(_variance(rg) + _variance(yb))
                     + 0.3 * _safe_sqrt(rg.mean(-1) ** 2 + yb.mean(-1) ** 2))

    columns = [flat_l.mean(-1)[:, None], _safe_sqrt(_variance(flat_l))[:, None],
               percentiles, local[:, None], rgb_mean, rgb_std, saturation[:, None],
               chroma[:, None], colourfulness[:, None], _hue_histogram((r, g, bl), high - low),
               a.mean(-1)[:, None], b.mean(-1)[:, None], sharpness[:, None],
               noise[:, None], _corner_centre_ratio(sub_l)[:, None]]
    return torch.cat(columns, 1)


def seed_features(batch: Tensor) -> Tensor:
    """The seed's 4 raw columns (contrast, mean R, G, B), its layout bug reproduced on purpose.

    As in the seed: the NCHW batch is reshaped straight to (-1, 3) before the Lab conversion and
    back, channel 0 is taken as "L", the 3x3 ratio is computed unguarded, values outside
    (-100, 100) (and NaN) are replaced by the mean of the in-range ones, and an image left with no
    finite value gets the batch mean of the others. Not differentiable-safe; baseline only.
    """
    n, _, h, w = batch.shape
    # the bug: srgb_to_lab(batch.reshape(-1, 3)).reshape(batch.shape)[:, 0]. Its channel 0 is
    # the first h*w values of each image's flattened (L, a, b) triples, i.e. the pseudo-pixels
    # made of the first h*w values (the red plane): only those are converted, same values.
    k = -(-h * w // 3)  # pseudo-pixels covering the first h*w values (ceil)
    triples = batch.reshape(n, -1)[:, :3 * k].reshape(n, k, 3)
    pseudo = srgb_to_lab(triples).reshape(n, -1)[:, :h * w].reshape(n, h, w)
    ratio = michelson_map(pseudo).reshape(n, -1)
    ok = ratio.abs() < 100  # NaN is out of range too
    # the mean after filling the out-of-range values with the mean of the in-range ones is
    # just that mean
    contrast = torch.where(ok, ratio, 0.0).sum(1) / ok.sum(1)
    finite = torch.isfinite(contrast)
    batch_mean = contrast[finite].mean() if finite.any() else contrast.new_tensor(0.0)
    contrast = torch.where(finite, contrast, batch_mean)
    if batch.dtype == torch.uint8:  # integer sums: no float copy of the whole batch
        means = batch.sum((2, 3), dtype=torch.int64).float() / (255.0 * h * w)
    else:
        means = batch.mean((2, 3))
    return torch.cat([contrast[:, None], means], 1)
