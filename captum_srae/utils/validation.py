#!/usr/bin/env python3
"""Argument checks shared by the public functions (clear errors, never asserts)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor


def as_float_tensor(x: Any, name: str) -> Tensor:
    """Return ``x`` as a floating torch tensor (float32 unless float64).

    Raises:
        TypeError: if ``x`` is not a tensor/array or is not floating point.
    """
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(
                f"{name} must hold floating-point values, got dtype {x.dtype}"
            )
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    return x.detach()


def check_finite(x: Tensor, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` and the first bad row on NaN/Inf."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        rows = bad.reshape(bad.shape[0], -1).any(dim=1).nonzero().flatten()
        kind = "NaN" if bool(torch.isnan(x).any()) else "Inf"
        raise ValueError(
            f"{name} contains {kind} values ({int(rows.numel())} bad rows, first at "
            f"row {int(rows[0])}); remove or fix these samples before fitting"
        )


MAX_MAGNITUDE = 1e18


def check_magnitude(x: Tensor, name: str, limit: float = MAX_MAGNITUDE) -> None:
    """Raise ``ValueError`` naming ``name`` if ``|x|`` exceeds ``limit`` anywhere.

    Squares of values above about 1e19 overflow float32, so training on them
    would only produce Inf losses; such values are almost always corrupt data.
    """
    if x.numel() == 0:
        return
    peak = float(x.detach().abs().max())
    if peak > limit:
        rows = (x.detach().abs().reshape(x.shape[0], -1) > limit).any(dim=1)
        first = int(rows.nonzero().flatten()[0])
        raise ValueError(
            f"{name} has values of magnitude up to {peak:.3g} (first at row "
            f"{first}), above {limit:.0e}: too large for float32 training; "
            "rescale or remove these samples"
        )


def activations_and_scores(z: Any, y: Any) -> tuple[Tensor, Tensor]:
    """``z`` as ``(N, D)`` and ``y`` as ``(N, K)`` floating tensors (``(N,)``
    becomes ``(N, 1)``), with matching ``N``; ValueError/TypeError otherwise."""
    z_t = as_float_tensor(z, "z")
    y_t = as_float_tensor(y, "y")
    if z_t.dim() != 2:
        raise ValueError(f"z must have shape (N, D), got {tuple(z_t.shape)}")
    if y_t.dim() == 1:
        y_t = y_t[:, None]
    if y_t.dim() != 2:
        raise ValueError(f"y must have shape (N,) or (N, K), got {tuple(y_t.shape)}")
    if z_t.shape[0] != y_t.shape[0]:
        raise ValueError(
            f"z and y must have the same number of samples, got {z_t.shape[0]} "
            f"and {y_t.shape[0]}"
        )
    return z_t, y_t


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is a ``bool``.

    Args:
        value (Any): the argument.
        name (str): its name, for the error message.

    Returns:
        *bool*: ``value``.

    Raises:
        TypeError: if ``value`` is not a ``bool`` (``0`` and ``1`` included).
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


def check_int(value: Any, name: str, *, minimum: int | None = 1) -> int:
    """``value`` as an ``int`` of at least ``minimum`` (``bool`` is refused).

    The one check of integer arguments (sizes, counts, seeds) in the package.

    Args:
        value (Any): the argument.
        name (str): its name, for the error message.
        minimum (int or None, optional): the smallest allowed value; None for
            no bound. Default: 1

    Returns:
        *int*: ``value``.

    Raises:
        TypeError: if ``value`` is not an ``int`` (or is a ``bool``).
        ValueError: if ``value < minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)
