"""The project's one coefficient of determination (R²)."""

from __future__ import annotations

from typing import Any, Literal, overload

import numpy as np
import torch
from torch import Tensor

from captum_srae.utils.validation import as_float_tensor, check_finite

__all__ = ["r2_score"]


def _columns(x: Any, name: str) -> Tensor:
    t = as_float_tensor(x, name)
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2:
        raise ValueError(f"{name} must have shape (N,) or (N, K), got {tuple(t.shape)}")
    if t.shape[0] < 2 or t.shape[1] < 1:
        raise ValueError(
            f"{name} must have at least 2 rows and one column, got {tuple(t.shape)}"
        )
    check_finite(t, name)
    return t


@overload
def r2_score(
    y_true: Tensor | np.ndarray,
    y_pred: Tensor | np.ndarray,
    *,
    multioutput: Literal["uniform_average"] = ...,
) -> float: ...


@overload
def r2_score(
    y_true: Tensor | np.ndarray,
    y_pred: Tensor | np.ndarray,
    *,
    multioutput: Literal["raw_values"],
) -> Tensor: ...


def r2_score(
    y_true: Tensor | np.ndarray,
    y_pred: Tensor | np.ndarray,
    *,
    multioutput: str = "uniform_average",
) -> float | Tensor:
    r"""Coefficient of determination of ``y_pred`` against ``y_true``, per column.

    ``R²_c = 1 − Σ_i (y_ic − ŷ_ic)² / Σ_i (y_ic − ȳ_c)²`` with the per-column
    mean ``ȳ_c``: scikit-learn's :func:`sklearn.metrics.r2_score`, with its
    argument order and its ``force_finite`` rule for a constant column (1 when
    it is predicted exactly, 0 otherwise). Higher is better: 1 is exact, 0 no
    better than the mean, negative worse. Computed in float64.

    Args:
        y_true (Tensor or ndarray): the true values, ``(N,)`` or ``(N, K)``,
            N ≥ 2.
        y_pred (Tensor or ndarray): the predictions, same shape.
        multioutput (str, optional): ``"uniform_average"`` (the mean over
            columns, a float) or ``"raw_values"`` (a float64 tensor ``(K,)``).
            Default: ``"uniform_average"``

    Returns:
        *float* or *Tensor*: as ``multioutput`` says.

    Raises:
        TypeError: if an argument is not a floating tensor or array.
        ValueError: on other shapes, fewer than 2 rows, NaN/Inf, or an
            unknown ``multioutput``.

    Examples::

        >>> r2_score(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 4.0]))
        0.5
    """
    if multioutput not in ("uniform_average", "raw_values"):
        raise ValueError(
            "multioutput must be 'uniform_average' or 'raw_values', got "
            f"{multioutput!r}"
        )
    yt = _columns(y_true, "y_true").double()
    yp = _columns(y_pred, "y_pred").double().to(yt.device)
    if yt.shape != yp.shape:
        raise ValueError(
            "y_true and y_pred must have the same shape, got "
            f"{tuple(yt.shape)} and {tuple(yp.shape)}"
        )
    sse = torch.sum((yt - yp) ** 2, dim=0)
    sst = torch.sum((yt - yt.mean(dim=0)) ** 2, dim=0)
    r2 = 1.0 - sse / torch.where(sst > 0, sst, torch.ones_like(sst))
    const = torch.where(sse == 0, torch.ones_like(r2), torch.zeros_like(r2))
    r2 = torch.where(sst > 0, r2, const)
    if multioutput == "raw_values":
        return r2
    return float(r2.mean())
