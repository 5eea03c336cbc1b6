#!/usr/bin/env python3
"""A small end-to-end demo: explain a CNN trained on procedurally generated images.

The demo needs no downloads. :func:`make_shapes_dataset` draws RGB images whose
class says which of two *parts* they contain (a filled disc, part A, and a
horizontal bar, part B), :class:`SmallCNN` learns to classify them, and
:func:`run_demo` fits an :class:`~captum_srae.SRAE` on the globally pooled
activations of its last convolutional block for the class "both parts". It then
measures on held-out images how faithfully the x-features rebuild the model's
score (against a PCA + linear regression baseline with as many components) and
how each x-feature's contribution changes with the parts present, which shows
whether the x-features track the parts. The CNN's head has a hidden layer, so
the explained score is a nonlinear function of the pooled activations, as for a
layer deep inside a large network: a linear model of a few principal
components rebuilds it less faithfully than the x-features.

The steps are separate functions (data, classifier, activations, explainer,
evaluation, saving), so that a richer dataset or report can replace one step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import safetensors.torch as _st
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_srae._atomic import atomic_write_bytes
from captum_srae.activations import collect_activations
from captum_srae.config import SRAEConfig
from captum_srae.model import SRAE
from captum_srae.training import fit_srae, r2_score

__all__ = [
    "CLASS_NAMES",
    "FULL",
    "QUICK",
    "DemoData",
    "DemoMode",
    "PART_NAMES",
    "SmallCNN",
    "accuracy",
    "evaluate_explainer",
    "make_shapes_dataset",
    "run_demo",
    "shapes_demo_data",
    "train_classifier",
]

PathLike = str | os.PathLike[str]

#: Names of the two parts; ``label = 2 * has_disc + has_bar``.
PART_NAMES: tuple[str, str] = ("disc", "bar")
#: Name of each class, indexed by the label.
CLASS_NAMES: tuple[str, ...] = ("none", "bar only", "disc only", "disc + bar")
#: The explained class: both parts present.
TARGET_CLASS = 3
#: The explained layer of :class:`SmallCNN`.
LAYER = "conv3"
SUMMARY_FILE = "summary.json"
CNN_FILE = "cnn.safetensors"
TEST_DATA_FILE = "test_data.safetensors"


@dataclasses.dataclass(frozen=True)
class DemoMode:
    """Sizes and schedules of one mode of :func:`run_demo`.

    Attributes:
        name (str): ``"quick"`` or ``"full"``.
        n_train (int): Training images (for the CNN and the explainer).
        n_test (int): Held-out images for every reported measure.
        cnn_epochs (int): Training epochs of :class:`SmallCNN`.
        srae_config (SRAEConfig): The explainer's hyperparameters; its seed is
            replaced by the seed of :func:`run_demo`.
    """

    name: str
    n_train: int
    n_test: int
    cnn_epochs: int
    srae_config: SRAEConfig


#: ``run_demo(quick=True)``: about 20 seconds on two CPU cores.
QUICK = DemoMode("quick", 1500, 500, 30, SRAEConfig(hidden_sizes=(200, 50)))
#: ``run_demo()``: about 40 seconds on two CPU cores.
FULL = DemoMode("full", 4000, 1000, 30, SRAEConfig())


# ---------------------------------------------------------------------- data
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
    :data:`CLASS_NAMES`), so a classifier must detect both parts, and tell
    them from the distractors.

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

        >>> from captum_srae.demo import make_shapes_dataset
        >>> x, y = make_shapes_dataset(8, seed=1)
        >>> x.shape, y.shape
        (torch.Size([8, 3, 32, 32]), torch.Size([8]))
        >>> x, y, masks = make_shapes_dataset(8, seed=1, return_masks=True)
        >>> masks.shape
        torch.Size([8, 2, 32, 32])
    """
    for name, value in (("n", n), ("seed", seed), ("size", size)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if seed < 0:
        raise ValueError(f"seed must be nonnegative, got {seed}")
    if size < 16:
        raise ValueError(f"size must be at least 16, got {size}")
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


# ---------------------------------------------------------------- classifier
class SmallCNN(nn.Module):
    r"""A small CNN for :func:`make_shapes_dataset` (25,796 parameters).

    Three convolutional blocks, a global average pooling and a small MLP head:

    - ``conv1``: ``Conv2d(3, 16, 3) -> ReLU -> MaxPool2d(2)``;
    - ``conv2``: ``Conv2d(16, 32, 3) -> ReLU -> MaxPool2d(2)``;
    - ``conv3``: ``Conv2d(32, 64, 3) -> ReLU``, the layer the demo explains;
    - ``pool``: ``AdaptiveAvgPool2d(1)``;
    - ``fc``: ``Linear(64, 32) -> ReLU -> Linear(32, n_classes)``.

    (Widths for ``width=16``.) Because of the hidden layer of ``fc``, a class
    score is a nonlinear function of the pooled ``conv3`` activations, as it
    is for a layer deeper inside a large network.

    Args:
        n_classes (int, optional): Number of outputs. Default: 4
        width (int, optional): Channels of ``conv1``; ``conv2`` and ``conv3``
            have twice and four times as many, the hidden layer of ``fc``
            twice as many. Default: 16

    Examples::

        >>> import torch
        >>> from captum_srae.demo import SmallCNN
        >>> SmallCNN()(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 4])
    """

    def __init__(self, n_classes: int = 4, width: int = 16) -> None:
        super().__init__()
        w = width
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.conv3 = nn.Sequential(nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(4 * w, 2 * w), nn.ReLU(), nn.Linear(2 * w, n_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        """Class scores (logits) ``(N, n_classes)`` of images ``(N, 3, H, W)``."""
        h = self.conv3(self.conv2(self.conv1(x)))
        return self.fc(self.pool(h).flatten(1))


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500) -> float:
    """Fraction of ``x`` that ``model`` (in eval mode, no grad) classifies as ``y``.

    The model's ``training`` flag is restored afterwards.
    """
    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            pred = model(x[i : i + batch_size]).argmax(dim=1)
            correct += int((pred == y[i : i + batch_size]).sum())
    model.train(was_training)
    return correct / x.shape[0]


def train_classifier(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    epochs: int,
    seed: int = 0,
    show_progress: bool = True,
    *,
    lr: float = 5e-3,
    batch_size: int = 64,
) -> float:
    r"""Train ``model`` on ``(x, y)`` with Adam and the cross-entropy loss.

    Mini-batches of ``batch_size`` are shuffled by a ``torch.Generator`` seeded
    with ``seed``; the learning rate follows a cosine schedule from ``lr`` to
    zero over all steps. The model is trained in place and left in eval mode.

    Args:
        model (nn.Module): The classifier, returning ``(N, C)`` logits.
        x (Tensor): Training images ``(N, ...)``.
        y (Tensor): Integer labels ``(N,)``.
        epochs (int): Passes over the data, at least 1.
        seed (int, optional): Seed of the shuffling. Default: 0
        show_progress (bool, optional): Show a ``tqdm`` bar over the epochs.
            Default: True
        lr (float, optional): Initial learning rate. Default: 5e-3
        batch_size (int, optional): Mini-batch size. Default: 64

    Returns:
        float: the **training** accuracy after the last epoch (measured in eval
        mode on all of ``(x, y)``); evaluate held-out data with
        :func:`accuracy`.

    Raises:
        ValueError: if ``epochs < 1``, ``batch_size < 1`` or ``x`` and ``y``
            differ in length.

    Examples::

        >>> from captum_srae.demo import SmallCNN, make_shapes_dataset
        >>> x, y = make_shapes_dataset(256)
        >>> acc = train_classifier(SmallCNN(), x, y, epochs=1, show_progress=False)
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must have the same length, got {x.shape[0]} and {y.shape[0]}"
        )
    gen = torch.Generator().manual_seed(seed)
    steps = epochs * -(-x.shape[0] // batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    bar = tqdm(range(epochs), desc="Training CNN", disable=not show_progress)
    for _ in bar:
        total, correct = 0.0, 0
        for idx in torch.randperm(x.shape[0], generator=gen).split(batch_size):
            logits = model(x[idx])
            loss = loss_fn(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * idx.numel()
            correct += int((logits.argmax(dim=1) == y[idx]).sum())
        bar.set_postfix(
            loss=f"{total / x.shape[0]:.3f}", acc=f"{correct / x.shape[0]:.3f}"
        )
    bar.close()
    model.eval()
    return accuracy(model, x, y)


# ---------------------------------------------------------------------- demo
@dataclasses.dataclass(eq=False)
class DemoData:
    """Training and test images of the demo, with the parts present in each.

    Attributes:
        x_train, y_train (Tensor): Training images and labels.
        x_test, y_test (Tensor): Test images and labels.
        parts_test (Tensor): Boolean ``(n_test, n_parts)``: which parts each
            test image contains, in the order of ``part_names``.
        part_names (tuple[str, ...]): Names of the parts.
        class_names (tuple[str, ...]): Name of each class.
        description (str): One line describing the data.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    parts_test: Tensor
    part_names: tuple[str, ...]
    class_names: tuple[str, ...]
    description: str


def shapes_demo_data(n_train: int, n_test: int, seed: int = 0) -> DemoData:
    """The demo's data: one :func:`make_shapes_dataset` draw split in two.

    Args:
        n_train (int): Number of training images.
        n_test (int): Number of test images.
        seed (int, optional): Seed of :func:`make_shapes_dataset`. Default: 0

    Returns:
        *DemoData*: the first ``n_train`` images for training, the rest for
        testing.
    """
    x, y = make_shapes_dataset(n_train + n_test, seed=seed)
    parts = torch.stack([y // 2 == 1, y % 2 == 1], dim=1)
    return DemoData(
        x[:n_train],
        y[:n_train],
        x[n_train:],
        y[n_train:],
        parts[n_train:],
        PART_NAMES,
        CLASS_NAMES,
        f"{n_train} train / {n_test} test images of 32x32 pixels, "
        f"{len(CLASS_NAMES)} classes (parts: {', '.join(PART_NAMES)})",
    )


def evaluate_explainer(
    srae: SRAE,
    z_train: Tensor,
    y_train: Tensor,
    z_test: Tensor,
    y_test: Tensor,
    parts_test: Tensor,
    part_names: Sequence[str],
) -> dict[str, Any]:
    r"""Faithfulness and contributions of an explainer on held-out activations.

    Args:
        srae (SRAE): The fitted explainer of one output.
        z_train (Tensor): Training activations ``(N, D)``, for the baseline.
        y_train (Tensor): Training scores ``(N, 1)``, for the baseline.
        z_test (Tensor): Test activations ``(M, D)``.
        y_test (Tensor): The model's test scores ``(M, 1)``.
        parts_test (Tensor): Boolean ``(M, P)``: the parts in each test image.
        part_names (sequence of str): Names of the ``P`` parts.

    Returns:
        dict: JSON-serialisable, with

        - ``faithfulness``: ``r2`` and ``rmse`` of the XNN's reconstructed score
          against the model's score, ``score_std`` (the scale of the scores),
          and ``baseline_r2``/``baseline_rmse`` of a PCA with as many
          components as x-features followed by a linear regression (both
          fitted on the training activations), named in ``baseline``;
        - ``contributions``: ``bias``, per x-feature the ``mean`` and
          ``mean_abs`` contribution :math:`e_k v_k` over the test images and
          its ``share`` (``mean_abs`` over the sum of ``mean_abs``);
          ``part_effect[part]``: the mean contribution of each x-feature on
          images with the part minus images without it; ``by_parts``: for each
          combination of parts present (``"none"``, ``"disc"``, ...), the
          number of images ``n``, the ``mean`` contribution of each x-feature,
          and the mean ``xnn_score`` and ``model_score``.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    with torch.no_grad():
        e = srae.encode(z_test)
        pred = srae.predict(e)
        contrib = srae.contributions(e)[:, 0, :].double()
    y = y_test[:, :1]
    n_concepts = srae.n_concepts
    baseline = make_pipeline(PCA(n_components=n_concepts), LinearRegression())
    baseline.fit(z_train.double().numpy(), y_train[:, 0].double().numpy())
    base_pred = torch.from_numpy(baseline.predict(z_test.double().numpy()))[:, None]
    mean = contrib.mean(dim=0)
    mean_abs = contrib.abs().mean(dim=0)
    share = mean_abs / mean_abs.sum().clamp_min(1e-12)
    part_effect = {}
    for p, name in enumerate(part_names):
        has = parts_test[:, p]
        if bool(has.any()) and bool((~has).any()):
            effect = contrib[has].mean(dim=0) - contrib[~has].mean(dim=0)
            part_effect[name] = effect.tolist()
    by_parts: dict[str, dict[str, Any]] = {}
    for key, rows in _part_groups(parts_test, part_names):
        by_parts[key] = {
            "n": int(rows.sum()),
            "mean": contrib[rows].mean(dim=0).tolist(),
            "xnn_score": float(pred[rows, 0].mean()),
            "model_score": float(y[rows, 0].mean()),
        }
    return {
        "faithfulness": {
            "r2": r2_score(y, pred),
            "rmse": _rmse(y, pred),
            "score_std": float(y.double().std()),
            "baseline": f"PCA ({n_concepts} components) + linear regression",
            "baseline_r2": r2_score(y, base_pred),
            "baseline_rmse": _rmse(y, base_pred),
        },
        "contributions": {
            "bias": float(srae.bias.detach()[0]),
            "mean": mean.tolist(),
            "mean_abs": mean_abs.tolist(),
            "share": share.tolist(),
            "part_effect": part_effect,
            "by_parts": by_parts,
        },
    }


def _rmse(y: Tensor, y_hat: Tensor) -> float:
    return float(((y.double() - y_hat.double()) ** 2).mean().sqrt())


def _part_groups(
    parts: Tensor, part_names: Sequence[str]
) -> Iterator[tuple[str, Tensor]]:
    """``(name, rows)`` for each combination of parts that occurs, fewest first.

    A combination is named by its parts joined with ``"+"``, or ``"none"``.
    """
    n_parts = parts.shape[1]
    combos = sorted(range(2**n_parts), key=lambda c: (bin(c).count("1"), c))
    for combo in combos:
        want = torch.tensor([bool(combo >> i & 1) for i in range(n_parts)])
        rows = (parts == want).all(dim=1)
        if bool(rows.any()):
            names = [name for i, name in enumerate(part_names) if combo >> i & 1]
            yield "+".join(names) or "none", rows


def _check_out(out: PathLike | None) -> Path | None:
    """Refuse an ``out`` that the save would damage, before any work is done."""
    if out is None:
        return None
    path = Path(os.fspath(out)).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"out {path} exists and is not a directory")
        if any(path.iterdir()) and not (path / SUMMARY_FILE).is_file():
            raise ValueError(
                f"out {path} is a non-empty folder that holds no previous demo "
                "output; saving would replace its content: choose a new or empty "
                "folder"
            )
    return path


def run_demo(
    quick: bool = False,
    seed: int = 0,
    out: PathLike | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    r"""Train a small CNN on procedural images, explain it with an SRAE, evaluate.

    The steps, each timed:

    1. ``data``: :func:`make_shapes_dataset` (quick: 1500 training and 500 test
       images; full: 4000 and 1000);
    2. ``cnn``: train :class:`SmallCNN` with :func:`train_classifier`;
    3. ``activations``: :func:`~captum_srae.collect_activations` of layer
       ``conv3`` (global average pooled, 64 channels) and of the score of class
       3, "disc + bar", on the training and test images;
    4. ``srae_fit``: :func:`~captum_srae.fit_srae` on the training activations
       (quick: ``SRAEConfig(hidden_sizes=(200, 50))``; full: the defaults);
    5. ``evaluation``: :func:`evaluate_explainer` on the test images;
    6. with ``out``: ``srae.save(out)`` (``config.json`` and
       ``weights.safetensors``), then in the same folder ``summary.json`` (the
       returned dictionary), ``cnn.safetensors`` (the CNN's state dict) and
       ``test_data.safetensors`` (test activations ``z``, model scores ``y``,
       labels, x-features ``e`` and the explainer's predictions ``y_hat``).

    Args:
        quick (bool, optional): Smaller data and explainer, see :data:`QUICK`
            (about 20 seconds on two CPU cores, against about 40 for
            :data:`FULL`). Default: False
        seed (int, optional): Seed of the data, the CNN and the explainer.
            Default: 0
        out (str or PathLike, optional): Folder to save the explainer and the
            summary into. It must be new, empty or a previous demo output
            (which is replaced). Default: None (nothing is saved)
        show_progress (bool, optional): Show ``tqdm`` progress bars.
            Default: True

    Returns:
        dict: JSON-serialisable: ``mode``, ``seed``, ``data``, ``cnn``
        (``parameters``, ``epochs``, ``train_accuracy``, ``test_accuracy``),
        ``explainer`` (layer, target, architecture, re-tuning outcome and the
        fit's own held-out R^2), ``faithfulness`` and ``contributions`` (see
        :func:`evaluate_explainer`), ``timings`` (seconds per step and
        ``total``) and ``out`` (the folder written, or None).

    Raises:
        ValueError: if ``seed`` is negative or ``out`` is a file or a
            non-empty folder that is not a previous demo output.
        TypeError: if ``seed`` is not an int.

    Examples::

        >>> from captum_srae.demo import run_demo
        >>> summary = run_demo(quick=True, show_progress=False)  # doctest: +SKIP
        >>> summary["faithfulness"]["r2"] > summary["faithfulness"]["baseline_r2"]
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be nonnegative, got {seed}")
    out_path = _check_out(out)
    mode = QUICK if quick else FULL
    timings: dict[str, float] = {}

    with _timed(timings, "data"):
        data = shapes_demo_data(mode.n_train, mode.n_test, seed=seed)
    with _timed(timings, "cnn"), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallCNN(n_classes=len(data.class_names))
        train_acc = train_classifier(
            model,
            data.x_train,
            data.y_train,
            epochs=mode.cnn_epochs,
            seed=seed,
            show_progress=show_progress,
        )
        test_acc = accuracy(model, data.x_test, data.y_test)
    with _timed(timings, "activations"):
        z_train, y_train = collect_activations(
            model, LAYER, data.x_train, target=TARGET_CLASS, batch_size=500
        )
        z_test, y_test = collect_activations(
            model, LAYER, data.x_test, target=TARGET_CLASS, batch_size=500
        )
    config: SRAEConfig = mode.srae_config.replace(seed=seed)
    with _timed(timings, "srae_fit"):
        srae, history = fit_srae(z_train, y_train, config, show_progress=show_progress)
    with _timed(timings, "evaluation"):
        evaluation = evaluate_explainer(
            srae, z_train, y_train, z_test, y_test, data.parts_test, data.part_names
        )
    timings["total"] = sum(timings.values())

    summary: dict[str, Any] = {
        "mode": mode.name,
        "seed": seed,
        "data": {
            "description": data.description,
            "n_train": int(data.x_train.shape[0]),
            "n_test": int(data.x_test.shape[0]),
            "image_size": list(data.x_train.shape[1:]),
            "part_names": list(data.part_names),
            "class_names": list(data.class_names),
        },
        "cnn": {
            "name": type(model).__name__,
            "parameters": sum(p.numel() for p in model.parameters()),
            "epochs": mode.cnn_epochs,
            "train_accuracy": train_acc,
            "test_accuracy": test_acc,
        },
        "explainer": {
            "layer": LAYER,
            "in_features": int(z_train.shape[1]),
            "target": TARGET_CLASS,
            "target_name": data.class_names[TARGET_CLASS],
            "n_concepts": config.n_concepts,
            "hidden_sizes": list(config.hidden_sizes),
            "accepted": history.accepted,
            "rounds": len(history.rounds),
            "chosen_round": history.chosen_round,
            "fit_val_r2": history.val_r2,
        },
        **evaluation,
        "timings": timings,
        "out": None if out_path is None else str(out_path),
    }
    if out_path is not None:
        _save(out_path, summary, srae, model, z_test, y_test, data.y_test)
    return summary


def _save(
    path: Path,
    summary: dict[str, Any],
    srae: SRAE,
    model: nn.Module,
    z_test: Tensor,
    y_test: Tensor,
    labels_test: Tensor,
) -> None:
    metadata = {
        "demo": {
            key: summary[key] for key in ("mode", "seed", "data", "cnn", "explainer")
        },
        "faithfulness": summary["faithfulness"],
    }
    srae.save(path, metadata=metadata)
    with torch.no_grad():
        e = srae.encode(z_test)
        y_hat = srae.predict(e)
    test_data = {
        "z": z_test,
        "y": y_test,
        "labels": labels_test,
        "e": e,
        "y_hat": y_hat,
    }
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(path / CNN_FILE, _st.save(state))
    atomic_write_bytes(path / TEST_DATA_FILE, _st.save(test_data))
    text = json.dumps(summary, indent=2) + "\n"
    atomic_write_bytes(path / SUMMARY_FILE, text.encode("utf-8"))


@contextlib.contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the seconds spent in the ``with`` block to ``timings[name]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
