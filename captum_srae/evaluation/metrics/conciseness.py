#!/usr/bin/env python3
r"""Conciseness: how few x-features explain each prediction."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from captum_srae.evaluation.metrics.checks import matrix, number

__all__ = ["hoyer_sparsity", "l0_sparsity", "significant_features"]

_REL_TOL = 1e-6  # rounding slack when comparing a cumulative sum to a target


def significant_features(contributions: Tensor, fraction: float = 0.9) -> Tensor:
    r"""Number of significant x-features per image.

    The smallest number ``m_i`` of positive contributions ``c_ik = e_ik v_k``
    whose sum reaches ``fraction`` of the image's positive score
    ``P_i = Σ_k max(c_ik, 0)``: sort the positive contributions in decreasing
    order and count them until the cumulative sum is ``>= fraction · P_i``.
    Negative contributions are never significant, and an image without a
    positive contribution has ``m_i = 0``. Lower is more concise (the paper's
    companion, Hamidi-Haines et al., IUI'19, reports means of 1.2–2.9 for 5
    x-features with ``fraction = 0.9``; the reconstruction here is the
    project's). Images of other classes often have no positive contribution
    and count 0, which pulls an average down: to compare with those numbers,
    average over the images of the explained class.

    Args:
        contributions (Tensor): ``(N, K)`` contributions (e.g.
            ``SRAE.contributions(e)[:, c]``).
        fraction (float, optional): the share of the positive score to reach,
            in ``(0, 1]``. Default: 0.9

    Returns:
        *Tensor*: int64 counts, shape ``(N,)``; ``.float().mean()`` is the
        average number per image.

    Examples::

        >>> significant_features(torch.tensor([[3.0, 1.0, -2.0, 0.0]]))
        tensor([2])
    """
    c = matrix(contributions, "contributions")
    frac = number(fraction, "fraction", low=0, high=1, low_open=True)
    pos = c.clamp_min(0)
    total = pos.sum(dim=1, keepdim=True)
    cum = torch.sort(pos, dim=1, descending=True).values.cumsum(dim=1)
    reached = cum >= frac * total * (1 - _REL_TOL)
    # index of the first column that reaches the target, +1; all-zero rows -> 0
    first = reached.to(torch.int64).argmax(dim=1) + 1
    return torch.where(total[:, 0] > 0, first, torch.zeros_like(first))


def l0_sparsity(
    x_features: Tensor, tol: float = 1e-6, *, as_fraction: bool = False
) -> Tensor:
    r"""Number (or fraction) of active x-features per image.

    ``L0_i = |{k : |e_ik| > tol}|``; with ``as_fraction`` divided by ``K``.
    Lower is sparser. The absolute tolerance suits ReLU x-features, which are
    exactly 0 when inactive.

    Args:
        x_features (Tensor): ``(N, K)``.
        tol (float, optional): values with ``|e| <= tol`` count as zero,
            ``>= 0``. Default: 1e-6
        as_fraction (bool, optional): return ``L0_i / K``. Default: False

    Returns:
        *Tensor*: shape ``(N,)``; int64 counts, or floats in ``[0, 1]``.
    """
    e = matrix(x_features, "x_features")
    t = number(tol, "tol", low=0)
    active = e.abs() > t
    if as_fraction:
        return active.to(e.dtype).mean(dim=1)
    return active.sum(dim=1)


def hoyer_sparsity(x_features: Tensor) -> Tensor:
    r"""Hoyer sparsity of each row.

    ``H_i = (√K − ‖e_i‖₁/‖e_i‖₂) / (√K − 1)`` (P. O. Hoyer, "Non-negative
    Matrix Factorization with Sparseness Constraints", JMLR 5, 2004), in
    ``[0, 1]``: 1 for a single nonzero entry, 0 when all entries have the same
    magnitude. Higher is sparser. An all-zero row has no active x-feature and
    is given 1.

    Args:
        x_features (Tensor): ``(N, K)`` with ``K >= 2``.

    Returns:
        *Tensor*: shape ``(N,)``.
    """
    e = matrix(x_features, "x_features")
    k = e.shape[1]
    if k < 2:
        raise ValueError(f"x_features must have at least 2 columns, got {k}")
    l1 = e.abs().sum(dim=1)
    l2 = torch.linalg.vector_norm(e, dim=1)
    ratio = l1 / torch.where(l2 > 0, l2, torch.ones_like(l2))
    h = (math.sqrt(k) - ratio) / (math.sqrt(k) - 1)
    h = torch.where(l2 > 0, h, torch.ones_like(h))
    return h.clamp(0.0, 1.0)
