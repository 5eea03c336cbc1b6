"""Procedurally generated images of two parts, a disc and a horizontal bar.

:func:`make_shapes_dataset` draws RGB images whose class says which of the two
parts they contain, on busy backgrounds with distractors in the parts'
colours. No downloads are needed, and the same arguments always give the same
tensors.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal, overload

import numpy as np
import torch
from torch import Tensor

from captum_srae.datasets.checks import check_generator_args

__all__ = ["make_shapes_dataset"]


@overload
def make_shapes_dataset(
    n: int, seed: int = 0, size: int = 32, *, return_masks: Literal[False] = False
) -> tuple[Tensor, Tensor]: ...


@overload
def make_shapes_dataset(
    n: int, seed: int = 0, size: int = 32, *, return_masks: Literal[True]
) -> tuple[Tensor, Tensor, Tensor]: ...


def make_shapes_dataset(
    n: int, seed: int = 0, size: int = 32, *, return_masks: bool = False
) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Tensor]:
    r"""Draw ``n`` RGB images that may contain a disc and a horizontal bar.

    Every image has a background (a dark random colour, a linear gradient of
    random direction, a faint coloured grating of random orientation and
    period, and pixel noise) and on average three distractors in the colours
    of the parts: short vertical strokes, small squares, short horizontal
    dashes and thin rings. Each of the two parts is then present independently
    with probability 0.5:

    - part A, ``"disc"``: a filled disc of radius 3 to 5 pixels;
    - part B, ``"bar"``: a filled horizontal bar 12 to 20 pixels wide and 2 or
      3 pixels high

    (lengths are for ``size=32`` and scale with ``size``). Positions, sizes
    and colours are random; the two parts never touch each other and are drawn
    above the distractors. The label is ``2 * has_disc + has_bar`` (see
    :data:`captum_srae.apps.demo.CLASS_NAMES`), so a classifier must detect both
    parts, and tell them from the distractors.

    The images are drawn with vectorised tensor operations (thousands per
    second), in chunks of 1024 images, each from a ``torch.Generator`` seeded
    from ``(seed, chunk index)``: the same arguments always give the same
    tensors, and the global random state is not touched.

    Args:
        n (int): Number of images, at least 1.
        seed (int, optional): Seed of the generator, nonnegative. Default: 0
        size (int, optional): Height and width in pixels, at least 16.
            Default: 32
        return_masks (bool, optional): Also return the pixels of each part.
            Default: False

    Returns:
        *tuple[Tensor, Tensor]* or *tuple[Tensor, Tensor, Tensor]*: the images
        ``(n, 3, size, size)`` (float32 in ``[0, 1]``), the labels ``(n,)``
        (int64 in ``0..3``) and, with ``return_masks``, the boolean masks
        ``(n, 2, size, size)`` of the pixels painted by the disc (channel 0)
        and by the bar (channel 1), empty where the part is absent.

    Raises:
        TypeError: if ``n``, ``seed`` or ``size`` is not an int.
        ValueError: if ``n < 1``, ``seed < 0`` or ``size < 16``.

    Examples::

        >>> from captum_srae.datasets import make_shapes_dataset
        >>> x, y = make_shapes_dataset(8, seed=1)
        >>> x.shape, y.shape
        (torch.Size([8, 3, 32, 32]), torch.Size([8]))
        >>> x, y, masks = make_shapes_dataset(8, seed=1, return_masks=True)
        >>> masks.shape
        torch.Size([8, 2, 32, 32])
    """
    check_generator_args(n, seed, size, min_size=16)
    chunks = [
        _draw(_Canvas(min(_CHUNK, n - start), size, _chunk_generator(seed, start)))
        for start in range(0, n, _CHUNK)
    ]
    images, labels, masks = (torch.cat(parts) for parts in zip(*chunks, strict=True))
    if return_masks:
        return images, labels, masks
    return images, labels


_CHUNK = 1024  # images drawn together: small tensors are much faster to build


def _chunk_generator(seed: int, start: int) -> torch.Generator:
    """An independent generator for the chunk of images starting at ``start``."""
    state = np.random.SeedSequence([seed, start // _CHUNK]).generate_state(1)
    return torch.Generator().manual_seed(int(state[0]))


def _draw(canvas: _Canvas) -> tuple[Tensor, Tensor, Tensor]:
    """Images, labels and part masks of one chunk."""
    img = _background(canvas)
    img = _distractors(canvas, img)
    img, labels, masks = _parts(canvas, img)
    img = img + 0.04 * torch.randn(img.shape, generator=canvas.gen)
    return img.clamp_(0.0, 1.0).contiguous(), labels, masks


@dataclasses.dataclass
class _Canvas:
    """Pixel grid and random source shared by the drawing steps."""

    n: int
    size: int
    gen: torch.Generator

    def __post_init__(self) -> None:
        coords = torch.arange(self.size, dtype=torch.float32) + 0.5
        self.yy = coords.view(1, self.size, 1)  # pixel centres, (1, H, 1)
        self.xx = coords.view(1, 1, self.size)  # (1, 1, W)
        self.scale = self.size / 32

    def uniform(self, lo: float, hi: float, *shape: int) -> Tensor:
        """Uniform samples in ``[lo, hi)`` of the given shape."""
        return lo + (hi - lo) * torch.rand(*shape, generator=self.gen)

    def box(self, cx: Tensor, cy: Tensor, half_w: Tensor, half_h: Tensor) -> Tensor:
        """Axis-aligned boxes ``(n, H, W)``: pixel centres within the half sizes."""
        n = cx.shape[0]
        inside_x = (self.xx - cx.view(n, 1, 1)).abs() <= half_w.view(n, 1, 1)
        inside_y = (self.yy - cy.view(n, 1, 1)).abs() <= half_h.view(n, 1, 1)
        return inside_x & inside_y

    def distance(self, cx: Tensor, cy: Tensor) -> Tensor:
        """Distance ``(n, H, W)`` of every pixel centre to the points ``(cx, cy)``."""
        n = cx.shape[0]
        dx = self.xx - cx.view(n, 1, 1)
        dy = self.yy - cy.view(n, 1, 1)
        return (dx**2 + dy**2).sqrt()

    def colours(self, *shape: int) -> Tensor:
        """Bright random colours ``(*shape, 3)``: channels in [0.35, 1], one >= 0.9."""
        colour = 0.35 + 0.65 * torch.rand(*shape, 3, generator=self.gen)
        brightest = torch.randint(0, 3, (*shape, 1), generator=self.gen)
        top = self.uniform(0.9, 1.0, *shape, 1)
        return colour.scatter(-1, brightest, top)


def _background(c: _Canvas) -> Tensor:
    """Dark colour + linear gradient + coloured grating, ``(n, 3, H, W)``."""
    n = c.n
    base = c.uniform(0.0, 0.3, n, 3, 1, 1)
    angle = c.uniform(0.0, 2 * math.pi, n, 1, 1, 1)
    ramp = (torch.cos(angle) * c.xx + torch.sin(angle) * c.yy) / c.size
    img = base + c.uniform(0.0, 0.12, n, 1, 1, 1) * ramp
    angle = c.uniform(0.0, math.pi, n, 1, 1, 1)
    freq = c.uniform(2 * math.pi / 10, 2 * math.pi / 3, n, 1, 1, 1) / c.scale
    phase = c.uniform(0.0, 2 * math.pi, n, 1, 1, 1)
    along = torch.cos(angle) * c.xx + torch.sin(angle) * c.yy
    wave = torch.sin(freq * along + phase)
    return img + c.uniform(0.0, 0.2, n, 3, 1, 1) * wave


_SLOTS = 6  # distractor slots per image, each filled with probability 0.5


def _distractors(c: _Canvas, img: Tensor) -> Tensor:
    """Paint vertical strokes, squares, horizontal dashes and rings on ``img``."""
    n, k, s = c.n, _SLOTS, c.scale
    present = torch.rand(n, k, generator=c.gen) < 0.5
    kind = torch.randint(0, 4, (n, k), generator=c.gen)  # stroke/square/dash/ring
    square = c.uniform(1.0, 1.5, n, k)
    half_w = torch.stack([c.uniform(0.5, 1.0, n, k), square, c.uniform(1.5, 3.0, n, k)])
    half_h = torch.stack([c.uniform(2.5, 4.5, n, k), square, c.uniform(0.5, 1.0, n, k)])
    box_kind = kind.clamp(max=2)[None]
    half_w = half_w.gather(0, box_kind)[0] * s
    half_h = half_h.gather(0, box_kind)[0] * s
    ring_r = c.uniform(3.5, 5.5, n, k) * s
    cx, cy = c.uniform(2, c.size - 2, n, k), c.uniform(2, c.size - 2, n, k)
    colours = c.colours(n, k)
    for j in range(k):
        box = c.box(cx[:, j], cy[:, j], half_w[:, j], half_h[:, j])
        dist = c.distance(cx[:, j], cy[:, j])
        ring = (dist - ring_r[:, j].view(n, 1, 1)).abs() <= 0.7 * s
        item = torch.where((kind[:, j] == 3).view(n, 1, 1), ring, box)
        item &= present[:, j].view(n, 1, 1)
        img = torch.where(item[:, None], colours[:, j].view(n, 3, 1, 1), img)
    return img


def _parts(c: _Canvas, img: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Paint the disc and the bar; return the image, labels and part masks."""
    n, s = c.n, c.scale
    has_disc = torch.rand(n, generator=c.gen) < 0.5
    has_bar = torch.rand(n, generator=c.gen) < 0.5
    radius = c.uniform(3.0, 5.0, n) * s
    bar_hw = c.uniform(6.0, 10.0, n) * s
    bar_hh = c.uniform(1.0, 1.5, n) * s
    disc_xy, bar_xy = _place_apart(c, radius, bar_hw, bar_hh)
    disc = c.distance(disc_xy[:, 0], disc_xy[:, 1]) <= radius.view(n, 1, 1)
    disc &= has_disc.view(n, 1, 1)
    bar = c.box(bar_xy[:, 0], bar_xy[:, 1], bar_hw, bar_hh)
    bar &= has_bar.view(n, 1, 1)
    colours = c.colours(n, 2)
    img = torch.where(bar[:, None], colours[:, 1].view(n, 3, 1, 1), img)
    img = torch.where(disc[:, None], colours[:, 0].view(n, 3, 1, 1), img)
    labels = 2 * has_disc.long() + has_bar.long()
    return img, labels, torch.stack([disc, bar], dim=1)


def _place_apart(
    c: _Canvas, radius: Tensor, bar_hw: Tensor, bar_hh: Tensor, tries: int = 30
) -> tuple[Tensor, Tensor]:
    """Centres ``(n, 2)`` of the disc and of the bar, at least a pixel apart.

    Both are inside the image with a one-pixel margin. Clashing positions are
    redrawn (for all images at once, kept only where needed); after ``tries``
    rounds a remaining clash is resolved by moving the bar to the edge row
    farthest from the disc.
    """
    n, size, margin = c.n, c.size, 1.0

    def draw(half_x: Tensor, half_y: Tensor) -> Tensor:
        lo = torch.stack([half_x, half_y], dim=1) + margin
        return lo + torch.rand(n, 2, generator=c.gen) * (size - 2 * lo)

    def clashing(disc: Tensor, bar: Tensor) -> Tensor:
        gap_x = (disc[:, 0] - bar[:, 0]).abs() - radius - bar_hw
        gap_y = (disc[:, 1] - bar[:, 1]).abs() - radius - bar_hh
        return (gap_x < 1.0) & (gap_y < 1.0)

    disc, bar = draw(radius, radius), draw(bar_hw, bar_hh)
    for _ in range(tries):
        clash = clashing(disc, bar)
        if not bool(clash.any()):
            return disc, bar
        disc = torch.where(clash[:, None], draw(radius, radius), disc)
        bar = torch.where(clash[:, None], draw(bar_hw, bar_hh), bar)
    edge = bar_hh + margin
    far = torch.where(disc[:, 1] > size / 2, edge, size - edge)
    bar[:, 1] = torch.where(clashing(disc, bar), far, bar[:, 1])
    return disc, bar
