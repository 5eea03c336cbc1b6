r"""Gaussian smoothing of heatmaps: :func:`smooth_maps`.

Gradient × Activation at a fine layer follows edges and texture, so its
maximum lands on single pixels; a Gaussian blur of a few cells turns it into
a map of where the evidence is concentrated, the quantity the pointing game
and part association score. On the parts data set, x-feature maps drawn as
Gradient × Activation at ``conv1`` (32 × 32) and blurred with
``sigma=2`` point at the wing and the tail far more often than Grad-CAM at
``conv3`` (8 × 8) does (docs/concepts.rst, "Maps that point at the parts").

The blur is torchvision's ``gaussian_blur`` (a separable kernel of
``2 * ceil(3 * sigma) + 1`` taps, reflect padding), applied to every map
independently.
"""

from __future__ import annotations

import math
import numbers

from torch import Tensor

__all__ = ["check_smoothing", "gaussian_kernel_size", "smooth_maps"]


def gaussian_kernel_size(sigma: float) -> int:
    """Taps of a Gaussian kernel of standard deviation ``sigma``:
    ``2 * ceil(3 * sigma) + 1`` (three standard deviations on each side).

    Args:
        sigma (float): the standard deviation, positive.

    Returns:
        *int*: an odd kernel size.

    Examples::

        >>> gaussian_kernel_size(2.0)
        13
    """
    return 2 * math.ceil(3 * sigma) + 1


def check_smoothing(smoothing: object, name: str = "smoothing") -> float:
    """``smoothing`` as a float: a finite, nonnegative number (0: no blur).

    Args:
        smoothing (object): the value to check.
        name (str, optional): the argument's name in errors.
            Default: "smoothing"

    Returns:
        *float*: the value.

    Raises:
        TypeError: if it is not a real number (a bool is not).
        ValueError: if it is negative, NaN or infinite.

    Examples::

        >>> check_smoothing(2)
        2.0
    """
    if isinstance(smoothing, bool) or not isinstance(smoothing, numbers.Real):
        raise TypeError(
            f"{name} must be a nonnegative number (the blur's standard "
            f"deviation in map cells), got {type(smoothing).__name__}"
        )
    value = float(smoothing)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {smoothing!r}")
    return value


def smooth_maps(maps: Tensor, sigma: float) -> Tensor:
    r"""Blur each 2-D map of ``maps`` ``(N, n, h, w)`` with a Gaussian of
    standard deviation ``sigma`` cells.

    Args:
        maps (Tensor): maps ``(N, n, h, w)``, e.g. the output of
            :meth:`~captum_srae.SRAEAttribution.attribute` with
            ``interpolate=False``.
        sigma (float): standard deviation in cells of the maps; 0 returns
            ``maps`` unchanged.

    Returns:
        *Tensor*: the blurred maps, same shape and dtype.

    Raises:
        TypeError, ValueError: if ``sigma`` is not a finite number >= 0,
            if ``maps`` is not 4-D (e.g. token maps ``(N, n, T)``), or if the
            kernel's half width ``ceil(3 * sigma)`` is not smaller than
            ``h`` and ``w`` (reflect padding needs it).

    Examples::

        >>> import torch
        >>> m = torch.zeros(1, 1, 9, 9); m[0, 0, 4, 4] = 1.0
        >>> s = smooth_maps(m, 1.0)
        >>> round(float(s.sum()), 4), bool(s[0, 0, 4, 4] == s.max())
        (1.0, True)
    """
    sigma = check_smoothing(sigma, "sigma")
    if sigma == 0:
        return maps
    if not isinstance(maps, Tensor):
        raise TypeError(f"maps must be a Tensor, got {type(maps).__name__}")
    if maps.ndim != 4:
        raise ValueError(
            f"smoothing needs spatial maps (N, n, h, w), got {tuple(maps.shape)}; "
            "token maps (interpolate='tokens') cannot be smoothed: pass "
            "smoothing=0"
        )
    size = gaussian_kernel_size(sigma)
    half = size // 2
    if half >= min(maps.shape[-2:]):
        raise ValueError(
            f"smoothing={sigma:g} needs maps larger than {half} cells on each "
            f"side, got {tuple(maps.shape[-2:])}; use a smaller smoothing or a "
            "finer heatmap_layer"
        )
    from torchvision.transforms.functional import gaussian_blur  # ~1 s to import

    return gaussian_blur(maps, [size, size], [sigma, sigma])
