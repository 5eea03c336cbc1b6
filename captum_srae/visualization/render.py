#!/usr/bin/env python3
r"""Pure rendering functions: numpy in, numpy out, no matplotlib.

Everything the figures of :mod:`captum_srae.visualization.display` show is
computed here, so that it can be tested with exact numbers:

- :func:`to_hwc` turns a ``CHW`` tensor or array into the float ``HWC`` image
  Captum's visualisation expects (captum-notes §2);
- :func:`normalize_map` is the normalisation ``visualize_image_attr`` applies
  (cumulative-sum outlier threshold, then clipping), returning zeros instead of
  raising on an all-zero map;
- :func:`contribution_order` and :func:`contribution_ratios` sort the x-features
  and compute the panel labels ``r_k = e_k v_k / max_j |e_j v_j|`` (method.md §5);
- :func:`sign_colour`, :func:`colourize` and :func:`blend` colour a map warm for
  positive and cool for negative evidence and lay it over an image;
- :func:`explanation_strip` composes the whole explanation of one image into a
  single ``uint8`` picture (used for the pixel-exact reference test and as a
  thumbnail).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from captum_srae.utils.stats import r2_score

__all__ = [
    "WARM",
    "COOL",
    "NEUTRAL",
    "blend",
    "colourize",
    "contribution_order",
    "contribution_ratios",
    "explanation_strip",
    "format_contribution",
    "is_blank",
    "normalize_map",
    "r2",
    "resize_nearest",
    "sign_colour",
    "to_hwc",
    "to_numpy",
    "unit_scale",
]

FloatArray = npt.NDArray[np.float64]

#: Colour of positive evidence (a warm red-orange), RGB in [0, 1].
WARM: tuple[float, float, float] = (0.85, 0.25, 0.1)
#: Colour of negative evidence (a cool blue), RGB in [0, 1].
COOL: tuple[float, float, float] = (0.1, 0.35, 0.85)
#: Colour of a zero contribution (grey), RGB in [0, 1].
NEUTRAL: tuple[float, float, float] = (0.5, 0.5, 0.5)


def to_numpy(x: Any) -> FloatArray:
    """A float64 numpy copy of a tensor, array or nested sequence."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.array(x, dtype=np.float64)


def to_hwc(image: Any) -> FloatArray:
    r"""An image as float ``(H, W, 3)`` in ``[0, 1]``.

    Args:
        image (Tensor or ndarray): ``(C, H, W)`` with ``C`` in {1, 3},
            ``(H, W, C)``, or ``(H, W)``. Values in ``[0, 255]`` (any value
            above 1) are divided by 255; the result is clipped to ``[0, 1]``.

    Returns:
        *ndarray*: the image, channels last, with three channels.

    Raises:
        ValueError: if the shape is not one of the above.
    """
    a = to_numpy(image)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"an image must have 2 or 3 dimensions, got {a.shape}")
    if a.shape[0] in (1, 3) and a.shape[2] not in (1, 3):
        a = np.transpose(a, (1, 2, 0))
    if a.shape[2] not in (1, 3):
        raise ValueError(f"an image needs 1 or 3 channels, got shape {a.shape}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.size and np.nanmax(a) > 1.0:
        a = a / 255.0
    return np.clip(np.nan_to_num(a), 0.0, 1.0)


def is_blank(heatmap: Any) -> bool:
    """Whether a map has no finite non-zero value (Captum cannot draw it)."""
    a = to_numpy(heatmap)
    return not bool(np.any(np.isfinite(a) & (a != 0)))


def normalize_map(heatmap: Any, outlier_perc: float = 2.0) -> FloatArray:
    r"""Normalise a map exactly as ``visualize_image_attr(sign="absolute_value")``.

    The absolute values are divided by the smallest value whose cumulative sum
    (over the sorted values) reaches ``100 - outlier_perc`` percent of the
    total, then clipped to ``[0, 1]``. Channels of an ``(H, W, C)`` map are
    summed first, as Captum does. Unlike Captum, an all-zero map gives zeros
    instead of an ``AssertionError``; non-finite values count as 0, and the
    map is first divided by its maximum (:func:`unit_scale`), which changes
    the result by rounding only.

    Args:
        heatmap (Tensor or ndarray): ``(H, W)`` or ``(H, W, C)``.
        outlier_perc (float, optional): percentage of the mass treated as
            outliers. Default: 2.0

    Returns:
        *ndarray*: ``(H, W)`` in ``[0, 1]``.

    Examples::

        >>> normalize_map(np.array([[0.0, 1.0], [2.0, 4.0]]), outlier_perc=0)
        array([[0.  , 0.25],
               [0.5 , 1.  ]])
    """
    if not 0 <= outlier_perc <= 100:
        raise ValueError(f"outlier_perc must be in [0, 100], got {outlier_perc}")
    a = np.nan_to_num(to_numpy(heatmap), nan=0.0, posinf=0.0, neginf=0.0)
    if a.ndim == 3:
        a = a.sum(axis=2)
    if a.ndim != 2:
        raise ValueError(f"a map must be (H, W) or (H, W, C), got {a.shape}")
    a = unit_scale(np.abs(a))
    values = np.sort(a.ravel())
    if values.size == 0 or values[-1] == 0:
        return np.zeros_like(a)
    cum = np.cumsum(values)
    # Captum's expression, kept verbatim for bit-equal results; its rounding can
    # leave no index (Captum then raises IndexError): fall back to the maximum.
    hits = np.nonzero(cum >= cum[-1] * 0.01 * (100.0 - outlier_perc))[0]
    threshold = values[hits[0]] if hits.size else values[-1]
    if threshold == 0:  # only possible with outlier_perc == 100
        threshold = values[-1]
    return np.clip(a / threshold, -1.0, 1.0)


def unit_scale(heatmap: Any) -> FloatArray:
    r"""A map divided by its largest absolute value (zeros stay zeros).

    Non-finite values become 0 first. Captum's normalisation does not depend
    on the scale, but it warns when the threshold is below ``1e-5``, which
    small gradient maps reach; scaling first avoids the spurious warning.
    """
    a = np.nan_to_num(to_numpy(heatmap), nan=0.0, posinf=0.0, neginf=0.0)
    top = float(np.abs(a).max()) if a.size else 0.0
    return a / top if top > 0 else a


def contribution_order(contributions: Any) -> npt.NDArray[np.int64]:
    """Indices of the x-features by decreasing signed contribution (stable).

    Examples::

        >>> contribution_order([0.5, -2.0, 3.0, 0.5]).tolist()
        [2, 0, 3, 1]
    """
    c = to_numpy(contributions).ravel()
    return np.argsort(-c, kind="stable").astype(np.int64)


def contribution_ratios(contributions: Any) -> FloatArray:
    r"""The panel labels ``r_k = e_k v_k / max_j |e_j v_j|`` (zeros if all are 0).

    Args:
        contributions (Tensor or ndarray): ``(n,)`` or ``(N, n)``; the maximum
            is taken over the last axis.
    """
    c = to_numpy(contributions)
    top = np.abs(c).max(axis=-1, keepdims=True) if c.size else np.ones_like(c)
    return np.divide(c, top, out=np.zeros_like(c), where=top > 0)


def format_contribution(ratio: float, contribution: float) -> str:
    """A panel title: ``"r=+0.50 (+1.234)"`` (ratio, then raw ``e_k v_k``).

    A zero (also ``-0.0``) is written ``+0``; a value that rounds to zero keeps
    its sign (``-0.00``).
    """
    return f"r={ratio + 0.0:+.2f} ({contribution + 0.0:+.3g})"


def sign_colour(value: float) -> tuple[float, float, float]:
    """:data:`WARM` for a positive value, :data:`COOL` for negative, else grey."""
    if value > 0:
        return WARM
    if value < 0:
        return COOL
    return NEUTRAL


def colourize(normalized: Any, colour: Sequence[float]) -> FloatArray:
    r"""A ``[0, 1]`` map as RGB, from white (0) to ``colour`` (1), linearly.

    Returns:
        *ndarray*: ``(H, W, 3)``, ``1 - m (1 - colour)`` per channel.
    """
    m = np.clip(to_numpy(normalized), 0.0, 1.0)[..., None]
    col = np.asarray(colour, dtype=np.float64).reshape(1, 1, 3)
    return 1.0 - m * (1.0 - col)


def blend(
    image: Any, normalized: Any, colour: Sequence[float], alpha: float = 0.7
) -> FloatArray:
    r"""Lay a ``[0, 1]`` map over an image in one colour.

    Each pixel becomes ``(1 - a m) g + a m colour`` where ``g`` is the image
    in grey (the channel mean, as Captum's ``blended_heat_map``), ``m`` the map
    and ``a`` = ``alpha``: the image shows where the map is 0.

    Args:
        image (Tensor or ndarray): see :func:`to_hwc`.
        normalized (ndarray): ``(H, W)`` in ``[0, 1]`` (see
            :func:`normalize_map`), same height and width as the image.
        colour (Sequence[float]): RGB in ``[0, 1]``.
        alpha (float, optional): opacity of the map. Default: 0.7

    Returns:
        *ndarray*: ``(H, W, 3)`` in ``[0, 1]``.
    """
    img = to_hwc(image)
    m = np.clip(to_numpy(normalized), 0.0, 1.0)
    if m.shape != img.shape[:2]:
        raise ValueError(f"map {m.shape} and image {img.shape[:2]} differ in size")
    grey = np.repeat(img.mean(axis=2, keepdims=True), 3, axis=2)
    w = alpha * m[..., None]
    col = np.asarray(colour, dtype=np.float64).reshape(1, 1, 3)
    return (1.0 - w) * grey + w * col


def resize_nearest(heatmap: Any, size: tuple[int, int]) -> FloatArray:
    """Nearest-neighbour resize of an ``(H, W)`` map to ``size`` = (H', W')."""
    a = to_numpy(heatmap)
    h, w = a.shape[:2]
    if (h, w) == tuple(size):
        return a
    rows = (np.arange(size[0]) * h) // size[0]
    cols = (np.arange(size[1]) * w) // size[1]
    return a[rows][:, cols]


def explanation_strip(
    image: Any,
    heatmaps: Any,
    contributions: Any,
    *,
    border: int = 1,
    alpha: float = 0.7,
    outlier_perc: float = 2.0,
) -> npt.NDArray[np.uint8]:
    r"""The explanation of one image as one picture, without text.

    The image, then each x-feature's map blended over it (:func:`blend`),
    sorted by contribution, each framed by ``border`` pixels of its sign's
    colour (white around the image) and separated by white columns.

    Args:
        image (Tensor or ndarray): see :func:`to_hwc`.
        heatmaps (Tensor or ndarray): ``(n, H, W)``, resized to the image.
        contributions (Tensor or ndarray): ``(n,)``.
        border (int, optional): frame width in pixels. Default: 1
        alpha (float, optional): see :func:`blend`. Default: 0.7
        outlier_perc (float, optional): see :func:`normalize_map`. Default: 2.0

    Returns:
        *ndarray*: ``uint8`` ``(H + 2 border, (n + 1) (W + 2 border + 1) - 1, 3)``.
    """
    img = to_hwc(image)
    maps = to_numpy(heatmaps)
    c = to_numpy(contributions).ravel()
    if maps.ndim != 3 or maps.shape[0] != c.size:
        raise ValueError(f"heatmaps {maps.shape} do not match {c.size} contributions")
    h, w = img.shape[:2]
    panels = [_framed(img, (1.0, 1.0, 1.0), border)]
    for k in contribution_order(c):
        m = normalize_map(resize_nearest(maps[k], (h, w)), outlier_perc)
        tile = blend(img, m, sign_colour(c[k]), alpha)
        panels.append(_framed(tile, sign_colour(c[k]), border))
    gap = np.ones((h + 2 * border, 1, 3))
    parts: list[FloatArray] = []
    for i, p in enumerate(panels):
        parts.extend([gap, p] if i else [p])
    return np.round(np.concatenate(parts, axis=1) * 255).astype(np.uint8)


def _framed(tile: FloatArray, colour: Sequence[float], border: int) -> FloatArray:
    h, w = tile.shape[:2]
    out = np.empty((h + 2 * border, w + 2 * border, 3))
    out[...] = np.asarray(colour, dtype=np.float64)
    out[border : border + h, border : border + w] = tile
    return out


def r2(y: Any, y_hat: Any) -> float:
    """Coefficient of determination of ``y_hat`` against ``y`` (NaN if < 2)."""
    a = to_numpy(y).ravel().astype(np.float64)
    b = to_numpy(y_hat).ravel().astype(np.float64)
    if a.size < 2:
        return float("nan")
    return r2_score(a, b)
