"""Procedural "bird-like" objects made of parts, with a ground-truth mask per part.

:func:`make_parts_dataset` draws RGB images of an object made of up to four
parts (:data:`PART_NAMES`): a body that is always present, and an optional
head, wing and tail. The class of an image depends only on which of the wing
and the tail are present (:data:`CLASS_RULES`), so a classifier must look at
those two parts; the head is a distractor part that carries no class
information. For every image a boolean mask per part records exactly the
pixels where that part is visible in the final image: the ground truth that
CUB-200's part annotations give the XNN paper. No downloads are needed, and
the same arguments always give the same tensors.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from captum_srae.datasets.checks import check_generator_args

__all__ = [
    "CLASS_NAMES",
    "CLASS_RULES",
    "FLAT_COLOURS",
    "PART_NAMES",
    "PartsData",
    "PartsDataset",
    "label_from_presence",
    "make_parts_dataset",
]

PART_NAMES: tuple[str, ...] = ("head", "body", "wing", "tail")
"""Names of the parts, in the order of the mask and presence channels."""

CLASS_NAMES: tuple[str, ...] = ("plain", "winged", "tailed", "winged+tailed")
"""Names of the four classes."""

CLASS_RULES: tuple[dict[str, bool | None], ...] = (
    {"head": None, "body": True, "wing": False, "tail": False},
    {"head": None, "body": True, "wing": True, "tail": False},
    {"head": None, "body": True, "wing": False, "tail": True},
    {"head": None, "body": True, "wing": True, "tail": True},
)
"""Rule table: for each class, the required presence of each part (``None``:
either). The label is ``wing + 2 * tail``; the head is present with
probability 0.6 whatever the class."""

FLAT_COLOURS: tuple[tuple[float, float, float], ...] = (
    (1.0, 0.0, 0.0),
    (0.0, 1.0, 0.0),
    (0.0, 0.0, 1.0),
    (1.0, 1.0, 0.0),
)
"""Colours of the parts (same order as :data:`PART_NAMES`) with ``flat=True``."""

_HEAD, _BODY, _WING, _TAIL = range(4)
_DRAW_ORDER = (_TAIL, _BODY, _HEAD, _WING)  # later parts occlude earlier ones
_CHUNK = 1024  # images drawn together
_CLUTTER = 8  # clutter slots per image, each filled with probability 0.6


@dataclasses.dataclass(frozen=True)
class PartsData:
    """Images, labels and ground truth drawn by :func:`make_parts_dataset`.

    Attributes:
        images (Tensor): ``(N, 3, H, W)`` float32 in ``[0, 1]``.
        labels (Tensor): ``(N,)`` int64 in ``0..3`` (see :data:`CLASS_RULES`).
        masks (Tensor): ``(N, 4, H, W)`` bool, the visible pixels of each part
            (channels in the order of :data:`PART_NAMES`); empty for an absent
            part.
        part_presence (Tensor): ``(N, 4)`` bool, which parts are drawn.
        shape_variant (Tensor): ``(N, 4)`` int64 in ``{0, 1}``: head disc or
            diamond, body slim or round ellipse, wing ellipse or triangle,
            tail bar or fan.
        texture (Tensor): ``(N, 4)`` int64: 0 plain, 1 stripes, 2 dots.
        part_names (tuple[str, ...]): :data:`PART_NAMES`.
        class_names (tuple[str, ...]): :data:`CLASS_NAMES`.
    """

    images: Tensor
    labels: Tensor
    masks: Tensor
    part_presence: Tensor
    shape_variant: Tensor
    texture: Tensor
    part_names: tuple[str, ...] = PART_NAMES
    class_names: tuple[str, ...] = CLASS_NAMES

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def label_from_presence(part_presence: Tensor) -> Tensor:
    """Labels ``(N,)`` that :data:`CLASS_RULES` give to part presences ``(N, 4)``.

    Args:
        part_presence (Tensor): Boolean presence of each part of
            :data:`PART_NAMES`, shape ``(N, 4)``.

    Returns:
        *Tensor*: int64 labels ``wing + 2 * tail``.

    Examples::

        >>> import torch
        >>> label_from_presence(torch.tensor([[True, True, True, False]]))
        tensor([1])
    """
    presence = part_presence.bool()
    return presence[:, _WING].long() + 2 * presence[:, _TAIL].long()


def make_parts_dataset(
    n: int, seed: int = 0, size: int = 64, *, flat: bool = False
) -> PartsData:
    r"""Draw ``n`` RGB images of bird-like objects with a mask per part.

    Each object has a body (an ellipse, slim or round), and optionally a head
    (a disc or a diamond at the front, drawn over the body), a tail (a bar or a
    fan at the back, drawn beneath the body) and a wing (an ellipse or a
    triangle, drawn on the body). Each part has a random bright colour (the
    wing's differs from the body's) and a texture: plain, stripes or dots. The
    object has a random position, scale (a body 14 to 29 pixels long for
    ``size=64``; lengths scale with ``size``), tilt (up to 36 degrees) and
    facing (left or right). The background is a random dark colour with a
    gradient, and up to eight clutter strokes and blobs drawn *beneath* the
    object, so they never change a part's pixels; pixel noise is added last.

    The class is uniform over the four of :data:`CLASS_RULES` and sets the
    presence of the wing and tail; the head is present with probability 0.6.
    ``masks[i, k]`` is exactly the set of pixels painted by part ``k`` in the
    final image (a part drawn later removes pixels from the masks of those
    drawn before), and is empty when the part is absent.

    Drawing is vectorised, in chunks of 1024 images, each from a
    ``torch.Generator`` seeded from ``(seed, chunk index)``: the same
    arguments always give the same tensors, and the global random state is
    not touched.

    Args:
        n (int): Number of images, at least 1.
        seed (int, optional): Seed, nonnegative. Default: 0
        size (int, optional): Height and width in pixels, at least 32.
            Default: 64
        flat (bool, optional): Draw each part in its flat colour of
            :data:`FLAT_COLOURS` on a black background, without texture,
            clutter or noise (same geometry, labels and masks as with
            ``flat=False``); for testing the masks. Default: False

    Returns:
        *PartsData*: images, labels, masks, presence and variants.

    Raises:
        TypeError: if ``n``, ``seed`` or ``size`` is not an int.
        ValueError: if ``n < 1``, ``seed < 0`` or ``size < 32``.

    Examples::

        >>> from captum_srae.datasets import make_parts_dataset
        >>> data = make_parts_dataset(8, seed=1)
        >>> data.images.shape, data.masks.shape
        (torch.Size([8, 3, 64, 64]), torch.Size([8, 4, 64, 64]))
    """
    check_generator_args(n, seed, size, min_size=32)
    chunks = [
        _draw(min(_CHUNK, n - start), size, _chunk_generator(seed, start), flat)
        for start in range(0, n, _CHUNK)
    ]
    fields = [torch.cat(parts) for parts in zip(*chunks, strict=True)]
    return PartsData(*fields)


def _chunk_generator(seed: int, start: int) -> torch.Generator:
    """An independent generator for the chunk of images starting at ``start``."""
    state = np.random.SeedSequence([seed, 5, start // _CHUNK]).generate_state(1)
    return torch.Generator().manual_seed(int(state[0]))


def _uniform(gen: torch.Generator, lo: float, hi: float, *shape: int) -> Tensor:
    return lo + (hi - lo) * torch.rand(*shape, generator=gen)


def _colours(gen: torch.Generator, *shape: int) -> Tensor:
    """Bright random colours ``(*shape, 3)``: channels in [0.3, 1], one >= 0.9."""
    colour = _uniform(gen, 0.3, 1.0, *shape, 3)
    brightest = torch.randint(0, 3, (*shape, 1), generator=gen)
    return colour.scatter(-1, brightest, _uniform(gen, 0.9, 1.0, *shape, 1))


def _draw(n: int, size: int, gen: torch.Generator, flat: bool) -> tuple[Tensor, ...]:
    """Images, labels, masks, presence, variants and textures of one chunk."""
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    yy, xx = coords.view(1, size, 1), coords.view(1, 1, size)
    v3 = (n, 1, 1)

    # Classes, presence and variants.
    labels = torch.randint(0, 4, (n,), generator=gen)
    presence = torch.zeros(n, 4, dtype=torch.bool)
    presence[:, _HEAD] = torch.rand(n, generator=gen) < 0.6
    presence[:, _BODY] = True
    presence[:, _WING] = labels % 2 == 1
    presence[:, _TAIL] = labels >= 2
    variant = torch.randint(0, 2, (n, 4), generator=gen)
    texture = torch.randint(0, 3, (n, 4), generator=gen)

    # Pose: scale, body half axes, extent, centre, tilt and facing.
    s = _uniform(gen, 0.55, 0.95, n) * size / 64
    a = 14.0 * s * _uniform(gen, 0.9, 1.1, n)
    b = a * torch.where(variant[:, _BODY] == 0, 0.5, 0.65)
    reach = a + 12.5 * s + 1.0
    cx = reach + torch.rand(n, generator=gen) * (size - 2 * reach)
    cy = reach + torch.rand(n, generator=gen) * (size - 2 * reach)
    theta = _uniform(gen, -math.pi / 5, math.pi / 5, n).view(v3)
    facing = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).view(v3)
    dx, dy = xx - cx.view(v3), yy - cy.view(v3)
    u = facing * (torch.cos(theta) * dx + torch.sin(theta) * dy)  # along the body
    v = -torch.sin(theta) * dx + torch.cos(theta) * dy  # across, + is down
    s3, a3, b3 = s.view(v3), a.view(v3), b.view(v3)

    # Part shapes (before occlusion), each (n, H, W).
    shapes = torch.empty(n, 4, size, size, dtype=torch.bool)
    rh = 5.5 * s3
    hu, hv = u - (a3 + 0.35 * rh), v + 0.35 * b3
    shapes[:, _HEAD] = torch.where(
        variant[:, _HEAD].view(v3) == 0,
        hu**2 + hv**2 <= rh**2,
        hu.abs() + hv.abs() <= 1.25 * rh,
    )
    shapes[:, _BODY] = (u / a3) ** 2 + (v / b3) ** 2 <= 1.0
    wu, wv = u + 0.15 * a3, v - 0.05 * b3
    tri_wing = (wu >= -0.55 * a3) & (wu <= 0.45 * a3)
    tri_wing &= wv.abs() <= 0.6 * b3 * (wu + 0.55 * a3) / a3
    shapes[:, _WING] = torch.where(
        variant[:, _WING].view(v3) == 0,
        (wu / (0.55 * a3)) ** 2 + (wv / (0.5 * b3)) ** 2 <= 1.0,
        tri_wing,
    )
    back = -a3 - u  # distance behind the body's rear end
    along = (back >= -3.0 * s3) & (back <= 11.0 * s3)
    fan = 1.2 * s3 + 0.45 * (back + 3.0 * s3).clamp(min=0)
    shapes[:, _TAIL] = along & torch.where(
        variant[:, _TAIL].view(v3) == 0, v.abs() <= 2.2 * s3, v.abs() <= fan
    )
    shapes &= presence.view(n, 4, 1, 1)

    # Colours and textures.
    colours = _colours(gen, n, 4)
    close = (colours[:, _WING] - colours[:, _BODY]).abs().sum(-1) < 0.6
    colours[:, _WING] = torch.where(
        close[:, None], 1.3 - colours[:, _BODY], colours[:, _WING]
    ).clamp(0.0, 1.0)
    period = (_uniform(gen, 3.0, 5.0, n, 4) * s.view(n, 1)).clamp(min=2.5)
    phase = _uniform(gen, 0.0, 2 * math.pi, n, 4)

    # Background: dark colour and gradient, then clutter beneath the object.
    img = _uniform(gen, 0.0, 0.35, n, 3, 1, 1)
    angle = _uniform(gen, 0.0, 2 * math.pi, n, 1, 1, 1)
    ramp = (torch.cos(angle) * xx + torch.sin(angle) * yy) / size
    img = img + _uniform(gen, -0.2, 0.2, n, 3, 1, 1) * ramp
    img = _clutter(gen, img, xx, yy, size)
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
    gen: torch.Generator, img: Tensor, xx: Tensor, yy: Tensor, size: int
) -> Tensor:
    """Paint random strokes (thin rotated bars) and blobs (ellipses) on ``img``."""
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
        img = torch.where(item[:, None], colours[:, j].view(n, 3, 1, 1), img)
    return img


class PartsDataset(Dataset[tuple[Tensor, Tensor, Tensor]]):
    """A torch ``Dataset`` of :func:`make_parts_dataset` images.

    Items are ``(image, label, masks)``: ``(3, H, W)`` float32, an int64
    scalar and ``(4, H, W)`` bool. The images are drawn once, in memory.

    Args:
        n (int): Number of images.
        seed (int, optional): Seed. Default: 0
        size (int, optional): Height and width. Default: 64
        transform (Callable[[Tensor], Tensor] | None, optional): Applied to
            each image on access (not to the masks). Default: None

    Examples::

        >>> from captum_srae.datasets import PartsDataset
        >>> ds = PartsDataset(16, seed=0)
        >>> image, label, masks = ds[0]
        >>> image.shape, masks.shape
        (torch.Size([3, 64, 64]), torch.Size([4, 64, 64]))
    """

    def __init__(
        self,
        n: int,
        seed: int = 0,
        size: int = 64,
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.data = make_parts_dataset(n, seed=seed, size=size)
        self.transform = transform

    @classmethod
    def from_data(
        cls, data: PartsData, transform: Callable[[Tensor], Tensor] | None = None
    ) -> PartsDataset:
        """Wrap an existing :class:`PartsData` without redrawing it."""
        self = cls.__new__(cls)
        self.data, self.transform = data, transform
        return self

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        image = self.data.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.data.labels[index], self.data.masks[index]
