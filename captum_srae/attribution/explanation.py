#!/usr/bin/env python3
r"""What :class:`~captum_srae.attribution.SRAEAttribution` returns and raises.

Both names are re-exported from :mod:`captum_srae.attribution` and
:mod:`captum_srae`; import them from there.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

__all__ = ["NotFittedError", "SRAEExplanation"]


class NotFittedError(ValueError, AttributeError):
    """The explainer is used before :meth:`SRAEAttribution.fit`."""


@dataclasses.dataclass
class SRAEExplanation:
    r"""Everything :meth:`SRAEAttribution.explain` computes for a batch.

    Attributes:
        x_features (Tensor): ``e``, shape ``(N, n)``.
        weights (Tensor): each example's predictor weights ``v``, ``(N, n)``.
        bias (Tensor): each example's predictor bias ``b``, ``(N,)``.
        contributions (Tensor): ``e_k·v_k``, ``(N, n)``.
        model_score (Tensor): the model's score of the target, ``(N,)``.
        xnn_score (Tensor): the XNN's score ``Σ_k e_k v_k + b``, ``(N,)``.
        heatmaps (Tensor): one map per x-feature, ``(N, n, H, W)``.
        target (Tensor): the explained class of each example, ``(N,)``.
    """

    x_features: Tensor
    weights: Tensor
    bias: Tensor
    contributions: Tensor
    model_score: Tensor
    xnn_score: Tensor
    heatmaps: Tensor
    target: Tensor

    @property
    def ratios(self) -> Tensor:
        """``r_k = e_k v_k / max_j |e_j v_j|``, the panel labels of the paper."""
        top = self.contributions.abs().amax(dim=1, keepdim=True)
        return self.contributions / top.clamp_min(torch.finfo(top.dtype).tiny)
