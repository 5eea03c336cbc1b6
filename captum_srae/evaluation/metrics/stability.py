#!/usr/bin/env python3
r"""Stability of the x-features across fits (seeds, data halves)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from captum_srae.evaluation.metrics.checks import matrix, promote
from captum_srae.evaluation.metrics.orthogonality import column_correlation

__all__ = ["FeatureMatching", "match_features"]


class FeatureMatching(NamedTuple):
    """Result of :func:`match_features`.

    Attributes:
        pairs (Tensor): int64 ``(M, 2)``: column of the first fit, matched
            column of the second fit, ``M = min(K_a, K_b)``, sorted by the
            first column.
        correlation (Tensor): ``(M,)`` signed Pearson correlation of each pair.
        score (Tensor): mean ``|correlation|`` over the pairs (scalar; higher
            is more stable, 1: the same x-features up to order and scale).
    """

    pairs: Tensor
    correlation: Tensor
    score: Tensor


def match_features(x_features_a: Tensor, x_features_b: Tensor) -> FeatureMatching:
    r"""Match the x-features of two fits by the Hungarian algorithm.

    ``score = max_π 1/M Σ_k |ρ(E_{:,k}, E'_{:,π(k)})|`` over one-to-one
    assignments ``π`` (``scipy.optimize.linear_sum_assignment``), with ``ρ``
    the Pearson correlation of the activations of the two fits on the same
    images (a column constant on these images has ``ρ = 0``). Higher is
    better. Matching concept dictionaries across runs by the Hungarian
    algorithm follows the stability metrics of the overcomplete library and
    Fel et al., "Archetypal SAE" (arXiv 2502.12892); correlating activations
    instead of dictionary atoms is the project's choice, because the SRAE's
    encoder is nonlinear.

    Args:
        x_features_a (Tensor): ``(N, K_a)`` x-features of the first fit.
        x_features_b (Tensor): ``(N, K_b)`` x-features of the second fit on
            the same ``N`` inputs.

    Returns:
        *FeatureMatching*

    Examples::

        >>> e = torch.rand(50, 3)
        >>> m = match_features(e, e[:, [2, 0, 1]])
        >>> m.pairs.tolist(), round(float(m.score), 4)
        ([[0, 1], [1, 2], [2, 0]], 1.0)
    """
    a = matrix(x_features_a, "x_features_a", min_rows=2)
    b = matrix(x_features_b, "x_features_b", min_rows=2)
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            "x_features_a and x_features_b must hold the same samples (rows), got "
            f"{a.shape[0]} and {b.shape[0]}"
        )
    a, b = promote(a, b)
    corr = column_correlation(a, b)
    rows, cols = linear_sum_assignment(corr.abs().cpu().numpy(), maximize=True)
    r = torch.as_tensor(rows, dtype=torch.long)
    c = torch.as_tensor(cols, dtype=torch.long)
    matched = corr[r, c]
    return FeatureMatching(torch.stack([r, c], dim=1), matched, matched.abs().mean())
