#!/usr/bin/env python3
r"""Partial reconstruction: which activation dimensions the decoder rebuilds.

The SRAE's log penalty lets the decoder give up on dimensions it cannot
explain, so a per-dimension view is more telling than one global error.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from captum_srae.evaluation.metrics.checks import matrix, number, promote, same_shape
from captum_srae.utils.stats import r2_score

__all__ = ["PartialReconstruction", "partial_reconstruction", "per_dimension_r2"]


def per_dimension_r2(z_hat: Tensor, z: Tensor) -> Tensor:
    r"""R² of each activation dimension on held-out data, ``(D,)``.

    ``R²_d = 1 − Σ_i (z_id − ẑ_id)² / Σ_i (z_id − z̄_d)²``. Higher is better.
    A dimension whose value is the same in every sample (zero variance, e.g.
    a dead ReLU channel) has no R²: it is NaN here, and
    :func:`partial_reconstruction` leaves it out of the fraction.

    Args:
        z_hat (Tensor): reconstructed activations, ``(N, D)``, ``N >= 2``.
        z (Tensor): the activations, same shape.

    Returns:
        *Tensor*: shape ``(D,)``.
    """
    zh = matrix(z_hat, "z_hat", min_rows=2)
    zt = matrix(z, "z", min_rows=2)
    same_shape(zh, zt, "z_hat", "z")
    zh, zt = promote(zh, zt)
    r2 = r2_score(zt, zh, multioutput="raw_values").to(zt.dtype)
    constant = (zt.max(dim=0).values - zt.min(dim=0).values) == 0
    return torch.where(constant, torch.full_like(r2, float("nan")), r2)


class PartialReconstruction(NamedTuple):
    """Per-dimension reconstruction quality.

    Attributes:
        r2 (Tensor): :func:`per_dimension_r2`, ``(D,)`` (NaN: constant dim).
        fraction_explained (Tensor): fraction of the non-constant dimensions
            with ``R²_d > threshold`` (scalar; higher is better).
        n_constant (int): number of constant dimensions left out.
        log_penalty (Tensor): ``1/D Σ_d log(1 + q · MSE_d)`` over all
            dimensions, the SRAE's sparse reconstruction loss on these data
            (scalar; lower is better).
    """

    r2: Tensor
    fraction_explained: Tensor
    n_constant: int
    log_penalty: Tensor


def partial_reconstruction(
    z_hat: Tensor, z: Tensor, threshold: float = 0.5, q: float = 100.0
) -> PartialReconstruction:
    r"""Per-dimension R², the fraction of dimensions rebuilt, and the log penalty.

    ``fraction = |{d : R²_d > threshold}| / |{d : z_d not constant}|``.

    Args:
        z_hat (Tensor): reconstructed activations ``(N, D)`` (e.g.
            ``srae.decode(srae.encode(z))``).
        z (Tensor): held-out activations, same shape.
        threshold (float, optional): R² above which a dimension counts as
            explained. Default: 0.5
        q (float, optional): the log penalty's ``q`` (> 0). Default: 100.0

    Returns:
        *PartialReconstruction*

    Raises:
        ValueError: if every dimension of ``z`` is constant.
    """
    thr = number(threshold, "threshold")
    qq = number(q, "q", low=0, low_open=True)
    r2 = per_dimension_r2(z_hat, z)
    valid = ~torch.isnan(r2)
    if not bool(valid.any()):
        raise ValueError("z has no dimension that varies across samples")
    frac = (r2[valid] > thr).to(r2.dtype).mean()
    zh, zt = promote(matrix(z_hat, "z_hat"), matrix(z, "z"))
    mse = torch.mean((zh - zt) ** 2, dim=0)
    return PartialReconstruction(
        r2, frac, int((~valid).sum()), torch.mean(torch.log1p(qq * mse))
    )
