"""Image augmentation on float tensors, without torchvision.

Images are float tensors in [0, 1] of shape ``[B, C, H, W]`` (C = 1 or 3). Every random
choice is drawn from an explicit ``torch.Generator`` (never the global RNG), in a fixed
order that does not depend on the image content, so the same generator state gives the
same output. Random numbers are drawn on the generator's device and moved to the images'.

* ``weak_augment``: random horizontal flip (p 0.5) + reflect-padded random crop
  (FixMatch's "flip + translate 12.5%").
* ``strong_augment``: weak transform, then FixMatch's RandAugment variant (each image gets
  ``n_ops`` ops drawn uniformly with replacement from the 14 ops below, each with a
  magnitude drawn uniformly from the op's range, FixMatch paper Table 12), then Cutout.

The ops, with ``m`` the raw magnitude in the op's own units (range in brackets):
Identity, AutoContrast, Equalize (PIL algorithm on 8-bit levels), Rotate [-30, 30] degrees,
Solarize threshold [0, 1], Color [0.05, 0.95], Posterize bits {4..8}, Contrast [0.05, 0.95],
Brightness [0.05, 0.95], Sharpness [0.05, 0.95], ShearX/ShearY [-0.3, 0.3],
TranslateX/TranslateY [-0.3, 0.3] of the image size. Geometric ops use bilinear sampling
about the image centre with the outside filled with gray 0.5 (the Cutout fill); the
enhance ops (Color, Contrast, Brightness, Sharpness) follow PIL's ImageEnhance blends.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "weak_augment",
    "strong_augment",
    "rand_augment",
    "cutout",
    "to_float",
    "normalize",
    "RANDAUGMENT_OPS",
    "OP_NAMES",
    "FILL",
]

FILL = 0.5  # gray fill for Cutout and for pixels coming from outside after a geometric op


# ----------------------------------------------------------------------------- helpers
def _check(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError("expected a float tensor of shape [B, C, H, W]")


def _rand(n: int, generator: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=generator.device).to(device)


def _randint(high: torch.Tensor | int, n: int, generator: torch.Generator, device) -> torch.Tensor:
    """Integers uniform in [0, high) (``high`` may be a per-sample tensor)."""
    u = torch.rand(n, generator=generator, device=generator.device, dtype=torch.float64).to(device)
    high_t = torch.as_tensor(high, device=device)
    return torch.minimum((u * high_t).floor().long(), high_t.long() - 1)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """Luminance [N, 1, H, W] (PIL "L" weights); the image itself when C == 1."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _blend(degenerate: torch.Tensor, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL ImageEnhance: degenerate + factor * (x - degenerate), clipped to [0, 1]."""
    f = factor.to(x.dtype).view(-1, 1, 1, 1)
    return (degenerate + f * (x - degenerate)).clamp(0.0, 1.0)


def _to_levels(x: torch.Tensor) -> torch.Tensor:
    return (x * 255.0).round().clamp(0, 255).long()


def _affine(x: torch.Tensor, a: torch.Tensor, t: torch.Tensor, fill: float = FILL) -> torch.Tensor:
    """Inverse-map affine warp about the image centre, in pixel units.

    For an output pixel at centred position p (pixels, y down) the input is sampled at
    ``a @ p + t``; ``a`` is [N, 2, 2], ``t`` is [N, 2] (x, y). Outside is ``fill``.
    """
    n, _, h, w = x.shape
    a = a.to(x.dtype)
    t = t.to(x.dtype)
    theta = torch.empty(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = a[:, 0, 0]
    theta[:, 0, 1] = a[:, 0, 1] * (h / w)
    theta[:, 0, 2] = 2.0 * t[:, 0] / w
    theta[:, 1, 0] = a[:, 1, 0] * (w / h)
    theta[:, 1, 1] = a[:, 1, 1]
    theta[:, 1, 2] = 2.0 * t[:, 1] / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (out + fill).clamp(0.0, 1.0)


def _eye(n: int, x: torch.Tensor) -> torch.Tensor:
    return torch.eye(2, dtype=x.dtype, device=x.device).expand(n, 2, 2).clone()


# ----------------------------------------------------------------------------- the 14 ops
# Each op maps (x [N, C, H, W], m [N] raw magnitudes) -> tensor of the same shape.
def identity(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return x


def auto_contrast(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Per image and channel, stretch [min, max] to [0, 1] (unchanged when flat)."""
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    span = hi - lo
    out = (x - lo) / torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, out, x).clamp(0.0, 1.0)


def equalize(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """PIL ImageOps.equalize per image and channel on 8-bit levels (per-image histogram)."""
    n, c, h, w = x.shape
    q = _to_levels(x).view(n * c, h * w)
    hist = torch.zeros(n * c, 256, dtype=torch.long, device=x.device)
    hist.scatter_add_(1, q, torch.ones_like(q))
    last = 255 - (hist.flip(1) > 0).long().argmax(1, keepdim=True)
    step = (h * w - hist.gather(1, last)) // 255  # [nc, 1]
    safe = step.clamp(min=1)
    before = hist.cumsum(1) - hist
    lut = ((before + safe // 2) // safe).clamp(0, 255)
    out = (lut.gather(1, q).to(x.dtype) / 255.0).view(n, c, h, w)
    keep = (step == 0).view(n, c, 1, 1)
    return torch.where(keep, x, out)


def rotate(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Counter-clockwise rotation by ``m`` degrees (90 matches torch.rot90(k=1))."""
    r = m.to(x.dtype) * (math.pi / 180.0)
    cos, sin = torch.cos(r), torch.sin(r)
    a = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    return _affine(x, a, torch.zeros(len(m), 2, dtype=x.dtype, device=x.device))


def solarize(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Invert pixels >= threshold ``m`` (in [0, 1])."""
    thr = m.to(x.dtype).view(-1, 1, 1, 1)
    return torch.where(x >= thr, 1.0 - x, x)


def color(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Saturation: blend with the grayscale image (identity for one channel)."""
    if x.shape[1] == 1:
        return x
    return _blend(_gray(x).expand_as(x), x, m)


def posterize(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Keep the top ``m`` bits (integer 1..8) of each 8-bit level."""
    bits = m.round().long().clamp(1, 8).view(-1, 1, 1, 1)
    mask = 256 - (1 << (8 - bits))
    return (_to_levels(x) & mask).to(x.dtype) / 255.0


def contrast(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Blend with the mean luminance of the image."""
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(mean.expand_as(x), x, m)


def brightness(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Blend with black: ``m * x``."""
    return _blend(torch.zeros_like(x), x, m)


def sharpness(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Blend with PIL's SMOOTH-filtered image (kernel 1 1 1 / 1 5 1 / 1 1 1, /13); border kept."""
    n, c, h, w = x.shape
    if h < 3 or w < 3:
        return x
    k = torch.ones(3, 3, dtype=x.dtype, device=x.device)
    k[1, 1] = 5.0
    k = (k / 13.0).expand(c, 1, 3, 3)
    smooth = F.conv2d(x, k, groups=c)
    degenerate = x.clone()
    degenerate[:, :, 1:-1, 1:-1] = smooth
    return _blend(degenerate, x, m)


def shear_x(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    a = _eye(len(m), x)
    a[:, 0, 1] = m.to(x.dtype)
    return _affine(x, a, torch.zeros(len(m), 2, dtype=x.dtype, device=x.device))


def shear_y(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    a = _eye(len(m), x)
    a[:, 1, 0] = m.to(x.dtype)
    return _affine(x, a, torch.zeros(len(m), 2, dtype=x.dtype, device=x.device))


def translate_x(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Shift by ``m`` times the width (the output at column j shows input column j + m W)."""
    t = torch.zeros(len(m), 2, dtype=x.dtype, device=x.device)
    t[:, 0] = m.to(x.dtype) * x.shape[3]
    return _affine(x, _eye(len(m), x), t)


def translate_y(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    t = torch.zeros(len(m), 2, dtype=x.dtype, device=x.device)
    t[:, 1] = m.to(x.dtype) * x.shape[2]
    return _affine(x, _eye(len(m), x), t)


# (name, function, low, high): magnitude ~ U(low, high); Posterize rounds down to an integer.
RANDAUGMENT_OPS: list[tuple[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor], float, float]] = [
    ("Identity", identity, 0.0, 1.0),
    ("AutoContrast", auto_contrast, 0.0, 1.0),
    ("Equalize", equalize, 0.0, 1.0),
    ("Rotate", rotate, -30.0, 30.0),
    ("Solarize", solarize, 0.0, 1.0),
    ("Color", color, 0.05, 0.95),
    ("Posterize", posterize, 4.0, 8.0),
    ("Contrast", contrast, 0.05, 0.95),
    ("Brightness", brightness, 0.05, 0.95),
    ("Sharpness", sharpness, 0.05, 0.95),
    ("ShearX", shear_x, -0.3, 0.3),
    ("ShearY", shear_y, -0.3, 0.3),
    ("TranslateX", translate_x, -0.3, 0.3),
    ("TranslateY", translate_y, -0.3, 0.3),
]
OP_NAMES = [name for name, *_ in RANDAUGMENT_OPS]


# ----------------------------------------------------------------------------- public API
def weak_augment(
    x: torch.Tensor, generator: torch.Generator, flip: bool = True, pad: int | None = None
) -> torch.Tensor:
    """Random horizontal flip (p 0.5, if ``flip``) + reflect-padded random crop to H x W.

    ``pad`` defaults to ``round(0.125 * H)`` (FixMatch's translate by up to 12.5%).
    """
    _check(x)
    b, c, h, w = x.shape
    if flip:
        mask = _rand(b, generator, x.device) < 0.5
        x = torch.where(mask.view(b, 1, 1, 1), x.flip(-1), x)
    if pad is None:
        pad = int(round(0.125 * h))
    if pad < 0:
        raise ValueError("pad must be >= 0")
    if pad == 0 or b == 0:
        return x
    mode = "reflect" if pad < min(h, w) else "replicate"
    padded = F.pad(x, (pad, pad, pad, pad), mode=mode)
    oy = _randint(2 * pad + 1, b, generator, x.device)
    ox = _randint(2 * pad + 1, b, generator, x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # [B, H, 1]
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]  # [B, 1, W]
    bidx = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[bidx, rows, cols]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()


def rand_augment(x: torch.Tensor, generator: torch.Generator, n_ops: int = 2) -> torch.Tensor:
    """FixMatch RandAugment: each image gets ``n_ops`` random ops with random magnitudes.

    Ops are applied slot by slot; within a slot every op runs once, vectorised, on the
    images that drew it.
    """
    _check(x)
    b = x.shape[0]
    n_kinds = len(RANDAUGMENT_OPS)
    for _ in range(n_ops):
        op_idx = _randint(n_kinds, b, generator, x.device)
        u = _rand(b, generator, x.device)
        out = x.clone()
        for k, (name, fn, lo, hi) in enumerate(RANDAUGMENT_OPS):
            sel = (op_idx == k).nonzero(as_tuple=True)[0]
            if sel.numel() == 0 or name == "Identity":
                continue
            if name == "Posterize":  # integer bits uniform in {lo, ..., hi}
                mag = (lo + (u[sel] * (hi - lo + 1)).floor()).clamp(max=hi)
            else:
                mag = lo + (hi - lo) * u[sel]
            out[sel] = fn(x[sel], mag)
        x = out
    return x


def cutout(x: torch.Tensor, generator: torch.Generator, size: float = 0.5, fill: float = FILL) -> torch.Tensor:
    """Fill a square of side ``round(size * H)`` at a random position (fully inside) with ``fill``."""
    _check(x)
    b, _, h, w = x.shape
    s = min(int(round(size * h)), h, w)
    if s <= 0 or b == 0:
        return x
    y0 = _randint(h - s + 1, b, generator, x.device)
    x0 = _randint(w - s + 1, b, generator, x.device)
    r = torch.arange(h, device=x.device)
    cc = torch.arange(w, device=x.device)
    in_r = (r[None, :] >= y0[:, None]) & (r[None, :] < y0[:, None] + s)  # [B, H]
    in_c = (cc[None, :] >= x0[:, None]) & (cc[None, :] < x0[:, None] + s)  # [B, W]
    mask = (in_r[:, :, None] & in_c[:, None, :])[:, None]  # [B, 1, H, W]
    return torch.where(mask, torch.full_like(x, fill), x)


def strong_augment(
    x: torch.Tensor,
    generator: torch.Generator,
    n_ops: int = 2,
    flip: bool = True,
    cutout: float = 0.5,
) -> torch.Tensor:
    """Weak transform + RandAugment (``n_ops`` ops per image) + Cutout (side ``cutout * H``, gray)."""
    x = weak_augment(x, generator, flip=flip)
    x = rand_augment(x, generator, n_ops=n_ops)
    return _cutout(x, generator, size=cutout)


_cutout = cutout  # the strong_augment argument shadows the function name


def to_float(x_uint8) -> torch.Tensor:
    """uint8 images [B, H, W] or [B, H, W, C] (numpy or tensor) -> float32 [B, C, H, W] in [0, 1].

    Float input is taken to be in [0, 1] already and only re-laid out.
    """
    t = torch.from_numpy(np.ascontiguousarray(x_uint8)) if isinstance(x_uint8, np.ndarray) else x_uint8
    if not isinstance(t, torch.Tensor):
        raise TypeError("expected a numpy array or a torch tensor")
    if t.dim() == 3:
        t = t.unsqueeze(-1)
    if t.dim() != 4:
        raise ValueError(f"expected [B, H, W] or [B, H, W, C], got shape {tuple(t.shape)}")
    t = t.permute(0, 3, 1, 2)
    if t.dtype == torch.uint8:
        t = t.to(torch.float32) / 255.0
    elif t.is_floating_point():
        t = t.to(torch.float32)
    else:
        raise TypeError(f"expected uint8 or float images, got {t.dtype}")
    return t.contiguous()


def normalize(x: torch.Tensor, mean: Sequence[float] | float, std: Sequence[float] | float) -> torch.Tensor:
    """(x - mean) / std per channel."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    return (x - m) / s
