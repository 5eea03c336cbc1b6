"""The drawing of the parts images: :func:`draw_chunk` and its pieces.

One chunk of images is drawn at once, vectorised over the images: the class
and parts of each object, its pose, the pixels of each part, their colours
and textures, the background and clutter beneath the object, and the
compositing that records each part's visible pixels as its mask.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["BODY", "CLUTTER_GAP", "FLAT_COLOURS", "HEAD", "TAIL", "WING", "draw_chunk"]

#: Indices of the parts in the mask and presence channels (the order of
#: :data:`~captum_srae.datasets.parts.PART_NAMES`).
HEAD, BODY, WING, TAIL = range(4)
_DRAW_ORDER = (TAIL, BODY, HEAD, WING)  # later parts occlude earlier ones
_CLUTTER = 8  # clutter slots per image, each filled with probability 0.6

#: Clutter keeps at least this many pixels (for ``size=64``; a square
#: neighbourhood, so also diagonally) away from the object: an item that
#: would come closer is left out, so no stroke or blob
#: touching the body can pass for a tail or a wing, and every label can be
#: read from the image (data version 2; see ``PARTS_DATA_VERSION``).
CLUTTER_GAP = 2

FLAT_COLOURS: tuple[tuple[float, float, float], ...] = (
    (1.0, 0.0, 0.0),
    (0.0, 1.0, 0.0),
    (0.0, 0.0, 1.0),
    (1.0, 1.0, 0.0),
)
"""Colours of the parts (same order as
:data:`~captum_srae.datasets.parts.PART_NAMES`) with ``flat=True``."""


def _uniform(gen: torch.Generator, lo: float, hi: float, *shape: int) -> Tensor:
    return lo + (hi - lo) * torch.rand(*shape, generator=gen)


def _colours(gen: torch.Generator, *shape: int) -> Tensor:
    """Bright random colours ``(*shape, 3)``: channels in [0.3, 1], one >= 0.9."""
    colour = _uniform(gen, 0.3, 1.0, *shape, 3)
    brightest = torch.randint(0, 3, (*shape, 1), generator=gen)
    return colour.scatter(-1, brightest, _uniform(gen, 0.9, 1.0, *shape, 1))


def draw_chunk(
    n: int, size: int, gen: torch.Generator, flat: bool
) -> tuple[Tensor, ...]:
    """Images, labels, masks, presence, variants and textures of ``n`` images
    (the fields of :class:`~captum_srae.datasets.parts.PartsData`), all drawn
    from ``gen``; ``flat`` as in
    :func:`~captum_srae.datasets.parts.make_parts_dataset`."""
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    yy, xx = coords.view(1, size, 1), coords.view(1, 1, size)
    labels, presence, variant, texture = _classes(n, gen)
    s, a, b, u, v = _pose(gen, variant[:, BODY], size, xx, yy)
    shapes = _part_shapes(u, v, s, a, b, variant, presence)
    colours, period, phase = _part_colours(gen, s)
    img = _background(gen, n, size, xx, yy, _near(shapes, size))
    noise = 0.03 * torch.randn(img.shape, generator=gen)

    masks = torch.zeros_like(shapes)
    if flat:
        img = torch.zeros(n, 3, size, size)
    for k in _DRAW_ORDER:
        part = shapes[:, k]
        masks &= ~part[:, None]
        masks[:, k] = part
        if flat:
            paint = torch.tensor(FLAT_COLOURS[k]).view(1, 3, 1, 1)
        else:
            paint = _textured(
                colours[:, k], texture[:, k], period[:, k], phase[:, k], u, v
            )
        img = torch.where(part[:, None], paint, img)
    if not flat:
        img = (img + noise).clamp_(0.0, 1.0)
    return img.contiguous(), labels, masks, presence, variant, texture


def _classes(n: int, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Labels ``(n,)``, part presence, shape variants and textures ``(n, 4)``."""
    labels = torch.randint(0, 4, (n,), generator=gen)
    presence = torch.zeros(n, 4, dtype=torch.bool)
    presence[:, HEAD] = torch.rand(n, generator=gen) < 0.6
    presence[:, BODY] = True
    presence[:, WING] = labels % 2 == 1
    presence[:, TAIL] = labels >= 2
    variant = torch.randint(0, 2, (n, 4), generator=gen)
    texture = torch.randint(0, 3, (n, 4), generator=gen)
    return labels, presence, variant, texture


def _pose(
    gen: torch.Generator, body_variant: Tensor, size: int, xx: Tensor, yy: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Scale ``s`` and body half axes ``a``, ``b`` ``(n,)``, and each pixel's
    coordinates ``u`` along the body and ``v`` across it ``(n, H, W)``.

    The object gets a random centre, tilt and facing.
    """
    n = body_variant.shape[0]
    v3 = (n, 1, 1)
    s = _uniform(gen, 0.55, 0.95, n) * size / 64
    a = 14.0 * s * _uniform(gen, 0.9, 1.1, n)
    b = a * torch.where(body_variant == 0, 0.5, 0.65)
    reach = a + 12.5 * s + 1.0
    cx = reach + torch.rand(n, generator=gen) * (size - 2 * reach)
    cy = reach + torch.rand(n, generator=gen) * (size - 2 * reach)
    theta = _uniform(gen, -math.pi / 5, math.pi / 5, n).view(v3)
    facing = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).view(v3)
    dx, dy = xx - cx.view(v3), yy - cy.view(v3)
    u = facing * (torch.cos(theta) * dx + torch.sin(theta) * dy)  # along the body
    v = -torch.sin(theta) * dx + torch.cos(theta) * dy  # across, + is down
    return s, a, b, u, v


def _part_shapes(
    u: Tensor,
    v: Tensor,
    s: Tensor,
    a: Tensor,
    b: Tensor,
    variant: Tensor,
    presence: Tensor,
) -> Tensor:
    """The pixels ``(n, 4, H, W)`` of each present part, before occlusion."""
    n, size = u.shape[0], u.shape[-1]
    v3 = (n, 1, 1)
    s3, a3, b3 = s.view(v3), a.view(v3), b.view(v3)
    shapes = torch.empty(n, 4, size, size, dtype=torch.bool)
    rh = 5.5 * s3
    hu, hv = u - (a3 + 0.35 * rh), v + 0.35 * b3
    shapes[:, HEAD] = torch.where(
        variant[:, HEAD].view(v3) == 0,
        hu**2 + hv**2 <= rh**2,
        hu.abs() + hv.abs() <= 1.25 * rh,
    )
    shapes[:, BODY] = (u / a3) ** 2 + (v / b3) ** 2 <= 1.0
    wu, wv = u + 0.15 * a3, v - 0.05 * b3
    tri_wing = (wu >= -0.55 * a3) & (wu <= 0.45 * a3)
    tri_wing &= wv.abs() <= 0.6 * b3 * (wu + 0.55 * a3) / a3
    shapes[:, WING] = torch.where(
        variant[:, WING].view(v3) == 0,
        (wu / (0.55 * a3)) ** 2 + (wv / (0.5 * b3)) ** 2 <= 1.0,
        tri_wing,
    )
    back = -a3 - u  # distance behind the body's rear end
    along = (back >= -3.0 * s3) & (back <= 11.0 * s3)
    fan = 1.2 * s3 + 0.45 * (back + 3.0 * s3).clamp(min=0)
    shapes[:, TAIL] = along & torch.where(
        variant[:, TAIL].view(v3) == 0, v.abs() <= 2.2 * s3, v.abs() <= fan
    )
    shapes &= presence.view(n, 4, 1, 1)
    return shapes


def _part_colours(gen: torch.Generator, s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Colours ``(n, 4, 3)`` (the wing's differs from the body's), texture
    periods and phases ``(n, 4)`` of the parts of objects of scale ``s``."""
    n = s.shape[0]
    colours = _colours(gen, n, 4)
    close = (colours[:, WING] - colours[:, BODY]).abs().sum(-1) < 0.6
    colours[:, WING] = torch.where(
        close[:, None], 1.3 - colours[:, BODY], colours[:, WING]
    ).clamp(0.0, 1.0)
    period = (_uniform(gen, 3.0, 5.0, n, 4) * s.view(n, 1)).clamp(min=2.5)
    phase = _uniform(gen, 0.0, 2 * math.pi, n, 4)
    return colours, period, phase


def _near(shapes: Tensor, size: int) -> Tensor:
    """The pixels ``(n, H, W)`` within :data:`CLUTTER_GAP` (scaled to
    ``size``) of any part of the object."""
    gap = max(1, round(CLUTTER_GAP * size / 64))
    silhouette = shapes.any(dim=1, keepdim=True).float()
    return torch.nn.functional.max_pool2d(silhouette, 2 * gap + 1, 1, gap)[:, 0] > 0


def _background(
    gen: torch.Generator, n: int, size: int, xx: Tensor, yy: Tensor, near: Tensor
) -> Tensor:
    """Backgrounds ``(n, 3, H, W)``: a dark colour and gradient, then clutter
    that stays off the pixels ``near`` the object."""
    img = _uniform(gen, 0.0, 0.35, n, 3, 1, 1)
    angle = _uniform(gen, 0.0, 2 * math.pi, n, 1, 1, 1)
    ramp = (torch.cos(angle) * xx + torch.sin(angle) * yy) / size
    img = img + _uniform(gen, -0.2, 0.2, n, 3, 1, 1) * ramp
    return _clutter(gen, img, xx, yy, size, near)


def _textured(
    colour: Tensor, texture: Tensor, period: Tensor, phase: Tensor, u: Tensor, v: Tensor
) -> Tensor:
    """Paint ``(n, 3, H, W)`` of one part: plain, stripes or dots of ``colour``."""
    n = colour.shape[0]
    p, ph = period.view(n, 1, 1), phase.view(n, 1, 1)
    stripes = torch.sin(2 * math.pi * u / p + ph) > 0
    dots = (torch.sin(2 * math.pi * u / p + ph) * torch.sin(2 * math.pi * v / p)) > 0.5
    dark = torch.where(
        texture.view(n, 1, 1) == 1, stripes, (texture.view(n, 1, 1) == 2) & dots
    )
    base = colour.view(n, 3, 1, 1)
    return torch.where(dark[:, None], 0.45 * base, base)


def _clutter(
    gen: torch.Generator, img: Tensor, xx: Tensor, yy: Tensor, size: int, near: Tensor
) -> Tensor:
    """Paint random strokes (thin rotated bars) and blobs (ellipses) on
    ``img``, leaving out every item that would cover a pixel of ``near``."""
    n, k = img.shape[0], _CLUTTER
    present = torch.rand(n, k, generator=gen) < 0.6
    is_blob = torch.rand(n, k, generator=gen) < 0.5
    cx, cy = _uniform(gen, 0, size, n, k), _uniform(gen, 0, size, n, k)
    angle = _uniform(gen, 0.0, math.pi, n, k)
    half_len = _uniform(gen, 3.0, 9.0, n, k)
    half_wid = torch.where(
        is_blob, _uniform(gen, 2.0, 5.0, n, k), _uniform(gen, 0.5, 1.2, n, k)
    )
    half_len = half_len * size / 64
    half_wid = half_wid * size / 64
    colours = _colours(gen, n, k) * _uniform(gen, 0.5, 1.0, n, k, 1)
    v3 = (n, 1, 1)
    for j in range(k):
        dx, dy = xx - cx[:, j].view(v3), yy - cy[:, j].view(v3)
        c, s = torch.cos(angle[:, j]).view(v3), torch.sin(angle[:, j]).view(v3)
        along, across = c * dx + s * dy, -s * dx + c * dy
        hl, hw = half_len[:, j].view(v3), half_wid[:, j].view(v3)
        ellipse = (along / hl) ** 2 + (across / hw) ** 2 <= 1.0
        bar = (along.abs() <= hl) & (across.abs() <= hw)
        item = torch.where(is_blob[:, j].view(v3), ellipse, bar)
        item &= present[:, j].view(v3)
        item &= ~(item & near).flatten(1).any(dim=1).view(v3)
        img = torch.where(item[:, None], colours[:, j].view(n, 3, 1, 1), img)
    return img
