#!/usr/bin/env python3
r"""Loss terms of the SRAE, as pure functions.

Every loss shares one signature::

    loss(z, z_hat, e, y, y_hat, v, **options) -> Tensor (scalar)

with, for a batch of ``B`` samples,

- ``z`` ``(B, D)``: the explained layer's activations,
- ``z_hat`` ``(B, D)``: the decoder's reconstruction of ``z``,
- ``e`` ``(B, n)``: the x-features,
- ``y`` ``(B, K)``: the model's scores for the ``K`` explained outputs,
- ``y_hat`` ``(B, K)``: the predictor's reconstruction ``v_c^T e + b_c``,
- ``v`` ``(K, n)``: the predictor weights.

A term ignores the arguments it does not need. During training all of them are
expressed in the standardised space of :class:`~captum_srae.SRAE` (the raw
space when standardisation is off). :func:`srae_loss` combines the weighted
terms and returns each of them for logging.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from captum_srae.core.config import PULL_AWAY_AXES, SRAEConfig

PULL_AWAY_EPS = 1e-8


class LossTerms(NamedTuple):
    """The total loss and its unweighted terms (all scalar tensors)."""

    total: Tensor
    prediction: Tensor
    reconstruction: Tensor
    pull_away: Tensor


def faithfulness_loss(
    z: Tensor, z_hat: Tensor, e: Tensor, y: Tensor, y_hat: Tensor, v: Tensor
) -> Tensor:
    r"""Mean squared error of the reconstructed scores.

    ``L_pred = 1/(B K) sum_i sum_c (y_ic - y^_ic)^2``.
    """
    return torch.mean((y - y_hat) ** 2)


def sparse_reconstruction_loss(
    z: Tensor,
    z_hat: Tensor,
    e: Tensor,
    y: Tensor,
    y_hat: Tensor,
    v: Tensor,
    *,
    q: float = 100.0,
) -> Tensor:
    r"""Robust log penalty on the per-dimension, batch-mean squared error.

    ``L_SR = 1/D sum_d log(1 + q * 1/B sum_i (z^_id - z_id)^2)``.

    The batch mean sits inside the logarithm: a dimension the decoder cannot
    rebuild costs at most ``log(1 + q * mse_d)``, so the decoder may give up on
    it (partial reconstruction). The value depends on the batch size.
    """
    mse_per_dim = torch.mean((z_hat - z) ** 2, dim=0)
    return torch.mean(torch.log1p(q * mse_per_dim))


def mse_reconstruction_loss(
    z: Tensor, z_hat: Tensor, e: Tensor, y: Tensor, y_hat: Tensor, v: Tensor
) -> Tensor:
    r"""Plain mean squared reconstruction error (the traditional autoencoder).

    ``L_MSE = 1/(B D) sum_i sum_d (z^_id - z_id)^2``.
    """
    return torch.mean((z_hat - z) ** 2)


def pull_away(f: Tensor, axis: str = "images", eps: float = PULL_AWAY_EPS) -> Tensor:
    r"""Pull-away term of one matrix ``f`` ``(B, n)``.

    Along ``"images"`` the rows are compared,
    ``PT = 1/(B(B-1)) sum_{i != j} (f_i^T f_j / ((|f_i| + eps)(|f_j| + eps)))^2``;
    along ``"features"`` the columns. ``"correlation"`` (the project's own)
    compares the columns after centring each over the batch: the mean
    squared Pearson correlation between x-features, which, unlike the
    cosine of nonnegative columns, does not penalise x-features that are
    active on the same images independently of each other (two parts
    present together). Fewer than two rows (columns) give 0.
    """
    if axis == "features":
        f = f.t()
    elif axis == "correlation":
        f = (f - f.mean(dim=0, keepdim=True)).t()
    elif axis != "images":
        raise ValueError(f"axis must be one of {PULL_AWAY_AXES}, got {axis!r}")
    m = f.shape[0]
    if m < 2:
        return f.new_zeros(())
    unit = f / (torch.linalg.vector_norm(f, dim=1, keepdim=True) + eps)
    gram = unit @ unit.t()
    off_diag = gram.pow(2).sum() - gram.diagonal().pow(2).sum()
    return off_diag / (m * (m - 1))


def pull_away_loss(
    z: Tensor,
    z_hat: Tensor,
    e: Tensor,
    y: Tensor,
    y_hat: Tensor,
    v: Tensor,
    *,
    axis: str = "images",
    v_weighting: bool = True,
) -> Tensor:
    r"""Pull-away term on the x-features.

    With ``v_weighting`` it is applied to ``F_c = e * v_c`` for every output
    ``c`` and summed over ``c`` (the authors' code); otherwise to ``e`` once.
    See :func:`pull_away` for the two axes.
    """
    if not v_weighting:
        return pull_away(e, axis)
    total = e.new_zeros(())
    for c in range(v.shape[0]):
        total = total + pull_away(e * v[c], axis)
    return total


def srae_loss(
    z: Tensor,
    z_hat: Tensor,
    e: Tensor,
    y: Tensor,
    y_hat: Tensor,
    v: Tensor,
    *,
    config: SRAEConfig,
    alpha_pred: float | None = None,
    alpha_rec: float | None = None,
    alpha_pt: float | None = None,
) -> LossTerms:
    r"""Total loss ``alpha_pred L_pred + alpha_rec L_rec + alpha_PT L_PT``.

    Args:
        config (SRAEConfig): Supplies ``q``, the reconstruction kind, the
            pull-away axis and v-weighting, and the default weights.
        alpha_pred, alpha_rec, alpha_pt (float, optional): Override the
            weights of ``config`` (the re-tuning loop changes them).

    Returns:
        *LossTerms*: the total and the three unweighted terms.
    """
    a_pred = config.alpha_pred if alpha_pred is None else alpha_pred
    a_rec = config.alpha_rec if alpha_rec is None else alpha_rec
    a_pt = config.alpha_pt if alpha_pt is None else alpha_pt
    terms = (z, z_hat, e, y, y_hat, v)
    pred = faithfulness_loss(*terms)
    if config.reconstruction == "log":
        rec = sparse_reconstruction_loss(*terms, q=config.q)
    else:
        rec = mse_reconstruction_loss(*terms)
    axis, v_weighting = config.pull_away_axis, config.v_weighting
    pt = pull_away_loss(*terms, axis=axis, v_weighting=v_weighting)
    total = a_pred * pred + a_rec * rec + a_pt * pt
    return LossTerms(total, pred, rec, pt)
