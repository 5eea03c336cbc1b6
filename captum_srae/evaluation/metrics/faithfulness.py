#!/usr/bin/env python3
r"""Faithfulness of the explanation space: how well the x-features rebuild the
explained score.

All functions compare reconstructed scores ``y_hat`` with the model's scores
``y`` on held-out data, per explained output (column). Shapes ``(N,)`` and
``(N, K)`` are accepted; results have one value per column, shape ``(K,)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from captum_srae.evaluation.metrics.checks import matrix, promote, same_shape
from captum_srae.utils.stats import r2_score

__all__ = [
    "FaithfulnessResult",
    "faithfulness",
    "ice_relative_error",
    "r2_score",
    "relative_rmse",
    "rmse",
]


def _pair(y_hat: Any, y: Any, min_rows: int = 1) -> tuple[Tensor, Tensor]:
    yh = matrix(y_hat, "y_hat", allow_1d=True, min_rows=min_rows)
    yt = matrix(y, "y", allow_1d=True, min_rows=min_rows)
    same_shape(yh, yt, "y_hat", "y")
    return promote(yh, yt)  # type: ignore[return-value]


def rmse(y_hat: Tensor, y: Tensor) -> Tensor:
    r"""Root mean squared error of the reconstructed scores, per output.

    ``RMSE_c = sqrt(1/N Σ_i (y^_ic − y_ic)²)``. Lower is better (0: exact).

    Args:
        y_hat (Tensor): reconstructed scores, ``(N,)`` or ``(N, K)``.
        y (Tensor): the model's scores, same shape.

    Returns:
        *Tensor*: shape ``(K,)``.

    Examples::

        >>> rmse(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 3.0]))
        tensor([0.7071])
    """
    yh, yt = _pair(y_hat, y)
    return torch.sqrt(torch.mean((yh - yt) ** 2, dim=0))


def relative_rmse(y_hat: Tensor, y: Tensor) -> Tensor:
    r"""RMSE divided by the range of the model's scores, per output.

    ``RMSE_c / (max_i y_ic − min_i y_ic)``; the XNN paper's companion
    (Hamidi-Haines et al., IUI'19) reports RMSE of about 1 % of the score
    range. Lower is better. A constant score column (zero range) gives
    ``inf`` when the RMSE is positive and 0 when it is 0.

    Args:
        y_hat (Tensor): reconstructed scores, ``(N,)`` or ``(N, K)``.
        y (Tensor): the model's scores, same shape.

    Returns:
        *Tensor*: shape ``(K,)``.
    """
    yh, yt = _pair(y_hat, y)
    err = torch.sqrt(torch.mean((yh - yt) ** 2, dim=0))
    span = yt.max(dim=0).values - yt.min(dim=0).values
    out = err / span
    return torch.where(err == 0, torch.zeros_like(out), out)


def ice_relative_error(
    y_hat: Tensor, y: Tensor, *, denominator: str = "sample", floor: float = 0.1
) -> Tensor:
    r"""Relative error of the reconstructed scores, ICE style, per output.

    Two variants, both lower-is-better (0: exact):

    - ``denominator="sample"`` (default, the project's definition):
      ``err_c = 1/N Σ_i |y^_ic − y_ic| / max(|y_ic|, floor · m_c, δ)`` with
      ``m_c = 1/N Σ_j |y_jc|``. The floor guards scores near zero: a sample
      whose score is below ``floor`` times the typical magnitude is measured
      against that typical magnitude instead. ``δ`` (the dtype's smallest
      normal number) only avoids 0/0 when every score is 0.
    - ``denominator="mean"``: ``err_c = (1/N Σ_i |y^_ic − y_ic|) / max(|ȳ_c|,
      δ)``, the fidelity error of the ICE code (Zhang et al., AAAI 2021,
      "Invertible Concept-based Explanations for CNN Models with Non-negative
      Concept Activation Vectors"), meaningful only for scores far from 0 on
      average.

    Args:
        y_hat (Tensor): reconstructed scores, ``(N,)`` or ``(N, K)``.
        y (Tensor): the model's scores, same shape.
        denominator (str, optional): ``"sample"`` or ``"mean"``.
            Default: "sample"
        floor (float, optional): the relative floor of the ``"sample"``
            variant, ``>= 0``. Default: 0.1

    Returns:
        *Tensor*: shape ``(K,)``.
    """
    yh, yt = _pair(y_hat, y)
    if denominator not in ("sample", "mean"):
        raise ValueError(f"denominator must be 'sample' or 'mean', got {denominator!r}")
    if isinstance(floor, bool) or not isinstance(floor, int | float) or floor < 0:
        raise ValueError(f"floor must be a number >= 0, got {floor!r}")
    tiny = torch.finfo(yt.dtype).tiny
    err = (yh - yt).abs()
    if denominator == "mean":
        return err.mean(dim=0) / yt.mean(dim=0).abs().clamp_min(tiny)
    scale = floor * yt.abs().mean(dim=0, keepdim=True)
    den = torch.maximum(yt.abs(), scale).clamp_min(tiny)
    return (err / den).mean(dim=0)


class FaithfulnessResult(NamedTuple):
    """Faithfulness of a fitted explainer on held-out data (each ``(K,)``).

    Attributes:
        rmse (Tensor): :func:`rmse` (lower is better).
        relative_rmse (Tensor): :func:`relative_rmse` (lower is better).
        r2 (Tensor): :func:`r2_score` (higher is better).
        ice_error (Tensor): :func:`ice_relative_error` (lower is better).
    """

    rmse: Tensor
    relative_rmse: Tensor
    r2: Tensor
    ice_error: Tensor


def faithfulness(model_like: Any, z: Tensor, y: Tensor) -> FaithfulnessResult:
    r"""All faithfulness numbers of a fitted explainer on activations ``z``.

    Duck-typed: ``model_like`` needs ``encode(z) -> e`` and
    ``predict(e) -> y_hat`` (an :class:`~captum_srae.SRAE` or a baseline with
    the same interface). Run without gradients.

    Args:
        model_like (Any): the explainer.
        z (Tensor): held-out activations, ``(N, D)``.
        y (Tensor): the model's scores, ``(N,)`` or ``(N, K)``.

    Returns:
        *FaithfulnessResult*: RMSE, relative RMSE, R² and ICE relative error.

    Examples::

        >>> res = faithfulness(srae, z_test, y_test)
        >>> res.r2, res.relative_rmse  # one value per explained output
    """
    for attr in ("encode", "predict"):
        if not callable(getattr(model_like, attr, None)):
            raise TypeError(
                f"model_like must have an {attr}() method (like SRAE), got "
                f"{type(model_like).__name__}"
            )
    zt = matrix(z, "z")
    with torch.no_grad():
        y_hat = model_like.predict(model_like.encode(zt))
    yt = matrix(y, "y", allow_1d=True)
    y_hat = matrix(y_hat, "model_like.predict(...)", allow_1d=True)
    return FaithfulnessResult(
        rmse(y_hat, yt),
        relative_rmse(y_hat, yt),
        r2_score(yt, y_hat, multioutput="raw_values").to(yt.dtype),
        ice_relative_error(y_hat, yt),
    )
