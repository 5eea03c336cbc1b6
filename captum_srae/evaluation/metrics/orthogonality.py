#!/usr/bin/env python3
r"""Orthogonality of the x-features: are they different concepts?

All functions take the x-feature matrix ``E`` of shape ``(N, K)`` (rows are
images, columns x-features) and optionally the predictor weights ``v``
(``(K,)`` or ``(C, K)``); the v-weighted matrix is ``F_c = E ⊙ v_c``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from captum_srae.core.config import PULL_AWAY_AXES
from captum_srae.core.losses import PULL_AWAY_EPS, pull_away
from captum_srae.evaluation.metrics.checks import matrix
from captum_srae.utils.validation import as_float_tensor, check_finite

__all__ = [
    "OrthogonalityResult",
    "correlation_offdiag_norm",
    "feature_cosine",
    "orthogonality",
    "pull_away_value",
]


def _weights(weight: Any, k: int) -> Tensor:
    w = as_float_tensor(weight, "weight")
    if w.ndim == 1:
        w = w[None]
    if w.ndim != 2 or w.shape[1] != k:
        raise ValueError(
            f"weight must have shape ({k},) or (C, {k}) to match x_features, got "
            f"{tuple(weight.shape)}"
        )
    check_finite(w, "weight")
    return w


def _features(x_features: Any) -> Tensor:
    e = matrix(x_features, "x_features")
    if e.shape[1] < 2:
        raise ValueError(
            f"x_features must have at least 2 columns (x-features), got {e.shape[1]}"
        )
    return e


def feature_cosine(x_features: Tensor, weight: Tensor | None = None) -> Tensor:
    r"""Cosine similarity between the x-feature columns, ``(K, K)``.

    ``cos_kl = E_{:,k}ᵀE_{:,l} / (‖E_{:,k}‖ ‖E_{:,l}‖)``; a column that is zero
    everywhere (a dead x-feature) has cosine 0 with every column, itself
    included. With ``weight`` (shape ``(K,)``: one output) the columns are
    first scaled by ``v_k``: this flips the sign of ``cos_kl`` when
    ``v_k v_l < 0`` and zeroes the columns with ``v_k = 0``, so ``|cos|``
    changes only for zero weights; the v-weighting matters for the row axis
    (:func:`pull_away_value` along images).

    Args:
        x_features (Tensor): ``(N, K)``.
        weight (Tensor, optional): ``(K,)`` or ``(1, K)``. Default: None

    Returns:
        *Tensor*: ``(K, K)``.
    """
    e = _features(x_features)
    if weight is not None:
        w = _weights(weight, e.shape[1])
        if w.shape[0] != 1:
            raise ValueError(
                f"weight must hold one output for feature_cosine, got {w.shape[0]}"
            )
        e = e * w[0].to(e.dtype)
    norm = torch.linalg.vector_norm(e, dim=0)
    unit = e / torch.where(norm > 0, norm, torch.ones_like(norm))
    return unit.t() @ unit


def pull_away_value(
    x_features: Tensor, weight: Tensor | None = None, axis: str = "images"
) -> Tensor:
    r"""The pull-away term of the SRAE loss as a metric. Lower is more
    orthogonal (0: orthogonal rows/columns; 1: all parallel).

    ``PT(F) = 1/(m(m−1)) Σ_{i≠j} (F_iᵀF_j / (‖F_i‖‖F_j‖))²`` over the rows
    (``axis="images"``, ``m = N``) or the columns (``axis="features"``,
    ``m = K``) of ``F``, or the columns centred over the rows
    (``axis="correlation"``: the mean squared Pearson correlation). With
    ``weight`` the term is computed on every ``F_c = E ⊙ v_c`` and summed
    over the outputs ``c``, exactly as in the training loss
    (:func:`captum_srae.core.losses.pull_away_loss`, which adds ``1e-8`` to
    the norms); without it on ``E``. The term comes from EBGAN
    (Zhao, Mathieu, LeCun, ICLR 2017) and is used by Qi, Khorram and Li.

    Args:
        x_features (Tensor): ``(N, K)``.
        weight (Tensor, optional): ``(K,)`` or ``(C, K)``. Default: None
        axis (str, optional): ``"images"``, ``"features"`` or
            ``"correlation"``. Default: "images"

    Returns:
        *Tensor*: scalar.
    """
    e = _features(x_features)
    if axis not in PULL_AWAY_AXES:
        raise ValueError(f"axis must be one of {PULL_AWAY_AXES}, got {axis!r}")
    if weight is None:
        return pull_away(e, axis, PULL_AWAY_EPS)
    w = _weights(weight, e.shape[1]).to(e.dtype)
    return sum(
        (pull_away(e * w[c], axis, PULL_AWAY_EPS) for c in range(w.shape[0])),
        e.new_zeros(()),
    )


def correlation_offdiag_norm(x_features: Tensor, *, normalize: bool = False) -> Tensor:
    r"""Distance of the x-features' correlation matrix from the identity.

    ``‖corr(E) − I‖_F`` with the Pearson correlation of the columns; with
    ``normalize`` divided by ``√(K(K−1))`` (the root mean square off-diagonal
    correlation, as in the codes-correlation metric of the overcomplete
    library). A constant column (zero variance) has correlation 0 with every
    other column. Lower is better (0: uncorrelated x-features).

    Args:
        x_features (Tensor): ``(N, K)``, ``N >= 2``.
        normalize (bool, optional): see above. Default: False

    Returns:
        *Tensor*: scalar.
    """
    e = _features(x_features)
    if e.shape[0] < 2:
        raise ValueError(f"x_features must have at least 2 rows, got {e.shape[0]}")
    corr = column_correlation(e, e)
    k = e.shape[1]
    off = corr - torch.diag(torch.diagonal(corr))
    value = torch.linalg.matrix_norm(off)
    return value / (k * (k - 1)) ** 0.5 if normalize else value


def column_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of the columns of ``a`` with those of ``b``;
    zero-variance columns give 0."""
    ac = a - a.mean(dim=0)
    bc = b - b.mean(dim=0)
    na = torch.linalg.vector_norm(ac, dim=0)
    nb = torch.linalg.vector_norm(bc, dim=0)
    ua = ac / torch.where(na > 0, na, torch.ones_like(na))
    ub = bc / torch.where(nb > 0, nb, torch.ones_like(nb))
    return (ua.t() @ ub).clamp(-1.0, 1.0)


class OrthogonalityResult(NamedTuple):
    """Orthogonality summary of an x-feature matrix (all scalars).

    Attributes:
        mean_abs_cosine (Tensor): mean ``|cos|`` over column pairs ``k < l``.
        max_abs_cosine (Tensor): largest ``|cos|`` over column pairs.
        mean_abs_cosine_weighted (Tensor): the importance-weighted mean
            ``Σ_{k<l} |v_k v_l| |cos_kl| / Σ_{k<l} |v_k v_l|``: overlaps
            between x-features that carry much of the score count more
            (scaling the columns by ``v`` alone would leave ``|cos|``
            unchanged); NaN without weights or when no pair has weight.
        max_abs_cosine_weighted (Tensor): the largest ``|cos_kl|`` over pairs
            with ``v_k v_l ≠ 0`` (NaN without weights or such pairs).
        pull_away_images (Tensor): :func:`pull_away_value` along images
            (v-weighted when weights are given).
        pull_away_features (Tensor): the same along features.
        correlation_offdiag (Tensor): :func:`correlation_offdiag_norm`.
    """

    mean_abs_cosine: Tensor
    max_abs_cosine: Tensor
    mean_abs_cosine_weighted: Tensor
    max_abs_cosine_weighted: Tensor
    pull_away_images: Tensor
    pull_away_features: Tensor
    correlation_offdiag: Tensor


def orthogonality(
    x_features: Tensor, weight: Tensor | None = None
) -> OrthogonalityResult:
    r"""All orthogonality numbers at once; every one is lower-is-better.

    Args:
        x_features (Tensor): ``(N, K)``, ``N >= 2``, ``K >= 2``.
        weight (Tensor, optional): predictor weights ``(K,)`` or ``(1, K)``
            (e.g. ``srae.weight``). Default: None

    Returns:
        *OrthogonalityResult*

    Examples::

        >>> res = orthogonality(srae.encode(z), srae.weight)
        >>> res.max_abs_cosine, res.pull_away_images  # lower: more orthogonal
    """
    e = _features(x_features)
    iu = torch.triu_indices(e.shape[1], e.shape[1], offset=1)

    def pair_stats(cos: Tensor) -> tuple[Tensor, Tensor]:
        vals = cos[iu[0], iu[1]].abs()
        return vals.mean(), vals.max()

    mean_c, max_c = pair_stats(feature_cosine(e))
    nan = e.new_tensor(float("nan"))
    mean_w, max_w = nan, nan
    if weight is not None:
        w = _weights(weight, e.shape[1])
        if w.shape[0] != 1:
            raise ValueError(f"weight must hold one output, got {w.shape[0]}")
        pair_w = (w[0][iu[0]] * w[0][iu[1]]).abs().to(e.dtype)
        cos = feature_cosine(e)[iu[0], iu[1]].abs()
        if bool((pair_w > 0).any()):
            mean_w = (pair_w * cos).sum() / pair_w.sum()
            max_w = cos[pair_w > 0].max()
    return OrthogonalityResult(
        mean_c,
        max_c,
        mean_w,
        max_w,
        pull_away_value(e, weight, "images"),
        pull_away_value(e, weight, "features"),
        correlation_offdiag_norm(e),
    )
