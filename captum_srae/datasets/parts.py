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
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from captum_srae.datasets.checks import check_generator_args
from captum_srae.datasets.parts_drawing import FLAT_COLOURS, TAIL, WING, draw_chunk

__all__ = [
    "CLASS_NAMES",
    "CLASS_RULES",
    "FLAT_COLOURS",
    "PARTS_CHUNK",
    "PARTS_DATA_VERSION",
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

PARTS_CHUNK = 1024
"""Images :func:`make_parts_dataset` draws together, each chunk from its own
generator (a partial last chunk draws other images than a full one): the
first ``k`` images of ``make_parts_dataset(n)`` and ``make_parts_dataset(m)``
are the same when ``n == m`` or both are at least ``k`` rounded up to a
multiple of ``PARTS_CHUNK``, so a prefix of a large set can be drawn without
drawing the rest."""
_CHUNK = PARTS_CHUNK

PARTS_DATA_VERSION = 2
"""Version of the images :func:`make_parts_dataset` draws, part of the cache
key of every network trained on them. Version 2 keeps the clutter
:data:`~captum_srae.datasets.parts_drawing.CLUTTER_GAP` pixels away from the
object (version 1 let it touch the body, where a stroke can pass for a tail:
the demo CNN reached 94.4 % held-out accuracy on version 1 and 98.3 % on
version 2, same training); labels, masks and poses are unchanged."""


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
    return presence[:, WING].long() + 2 * presence[:, TAIL].long()


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
    object and never within two pixels of it (an item that would come closer
    is left out), so they never change a part's pixels nor pass for one;
    pixel noise is added last (:data:`PARTS_DATA_VERSION`).

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
        draw_chunk(min(_CHUNK, n - start), size, _chunk_generator(seed, start), flat)
        for start in range(0, n, _CHUNK)
    ]
    fields = [torch.cat(parts) for parts in zip(*chunks, strict=True)]
    return PartsData(*fields)


def _chunk_generator(seed: int, start: int) -> torch.Generator:
    """An independent generator for the chunk of images starting at ``start``."""
    state = np.random.SeedSequence([seed, 5, start // _CHUNK]).generate_state(1)
    return torch.Generator().manual_seed(int(state[0]))


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
