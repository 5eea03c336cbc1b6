#!/usr/bin/env python3
"""Dead ReLU units: the input of the last encoder layer, the bias centring of
pretraining and the revival of x-features inactive on every sample."""

from __future__ import annotations

import torch
from torch import Tensor

from captum_srae.core.model import SRAE

__all__ = ["center_bias", "penultimate", "revive"]


def penultimate(srae: SRAE, zs: Tensor) -> Tensor:
    """The input of the last encoder layer (in eval mode, without gradients).

    Args:
        srae (SRAE): the network (left in eval mode).
        zs (Tensor): standardised activations ``(N, D)``.

    Returns:
        *Tensor*: the penultimate encoder outputs of ``zs``.
    """
    with torch.no_grad():
        return srae.encoder[:5].eval()(zs)


def center_bias(linear: torch.nn.Module, inputs: Tensor, only_dead: bool) -> None:
    """Shift biases so a ReLU unit is active on half of ``inputs``.

    With ``only_dead`` only units inactive on every input are shifted: a dead
    unit gets no gradient from any loss term and would stay dead for good.

    Args:
        linear (nn.Module): the linear layer before the ReLU (changed in place).
        inputs (Tensor): the layer's inputs ``(N, in_features)``.
        only_dead (bool): shift only the units inactive on every input.
    """
    with torch.no_grad():
        pre = linear(inputs)
        median = pre.median(dim=0).values
        shift = median
        if only_dead:
            dead = (pre <= 0).all(dim=0)
            shift = torch.where(dead, median, torch.zeros_like(median))
        linear.bias.sub_(shift)


def revive(srae: SRAE, zs: Tensor, quantile: float = 0.9) -> None:
    """Gently re-activate x-features that are inactive on every training sample.

    The bias of a dead x-feature is raised just enough for it to fire on the
    top 10 % of the training samples, and its predictor weights are zeroed, so
    the reconstructed score does not jump; training then decides its use.

    Args:
        srae (SRAE): the network (changed in place, left in eval mode).
        zs (Tensor): standardised training activations ``(N, D)``.
        quantile (float, optional): the quantile of a dead feature's
            pre-activations it is raised to fire above. Default: 0.9
    """
    last = srae.encoder[5]
    with torch.no_grad():
        pre = last(penultimate(srae, zs))
        dead = (pre <= 0).all(dim=0)
        if not bool(dead.any()):
            return
        level = torch.quantile(pre, quantile, dim=0)
        last.bias.sub_(torch.where(dead, level, torch.zeros_like(level)))
        srae.predictor.weight[:, dead] = 0.0
