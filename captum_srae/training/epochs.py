#!/usr/bin/env python3
"""One pass over the minibatches: the shuffled minibatch indices of an
epoch, the optimizer, and the epochs of pretraining (:func:`pretrain_epoch`)
and fine-tuning (:func:`train_epoch`), each step split as a
:class:`~captum_srae.training.parallel.Parallel` says."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from captum_srae.core.config import SRAEConfig
from captum_srae.core.losses import srae_loss
from captum_srae.core.model import SRAE
from captum_srae.training.guard import NonFiniteStep
from captum_srae.training.parallel import Parallel

__all__ = [
    "adam",
    "epoch_batches",
    "pretrain_epoch",
    "shuffled_batches",
    "train_epoch",
]


def adam(params: list[Tensor], lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam over ``params``, with the fused kernel where it is supported.

    Args:
        params (list[Tensor]): the trained parameters.
        lr (float): the learning rate.
        weight_decay (float): the L2 weight decay.

    Returns:
        *torch.optim.Adam*: the optimizer (the fused kernel is ~25 % faster
        on CPU).
    """
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def shuffled_batches(
    n: int, batch_size: int, gen: torch.Generator, cap: int | None = None
) -> list[Tensor]:
    """Shuffled minibatch indices of one epoch.

    Args:
        n (int): the number of rows.
        batch_size (int): rows per minibatch (the last may be smaller).
        gen (torch.Generator): draws the permutation.
        cap (int, optional): the rows of the epoch: the first ``cap`` rows
            of the permutation, or, when ``cap`` exceeds ``n``, of as many
            fresh permutations as it takes (a fixed amount of work per epoch
            whatever ``n``). Default: None (all rows, once)

    Returns:
        *list[Tensor]*: the row indices of each minibatch.
    """
    perm = torch.randperm(n, generator=gen)
    if cap is not None and cap < n:
        perm = perm[:cap]
    elif cap is not None and cap > n:  # small data: several passes, one epoch
        extra = [torch.randperm(n, generator=gen) for _ in range((cap - 1) // n)]
        perm = torch.cat([perm, *extra])[:cap]
    return list(perm.split(batch_size))


def epoch_batches(n: int, config: SRAEConfig, gen: torch.Generator) -> list[Tensor]:
    """The minibatches of one epoch over ``n`` rows.

    Args:
        n (int): the number of training rows.
        config (SRAEConfig): supplies ``batch_size`` and ``epoch_samples``
            (the rows of one epoch, all if None).
        gen (torch.Generator): draws the permutation.

    Returns:
        *list[Tensor]*: the row indices of each minibatch.
    """
    if config.epoch_samples is None:
        return shuffled_batches(n, config.batch_size, gen)
    return shuffled_batches(n, config.batch_size, gen, config.epoch_samples)


def _step(
    opt: torch.optim.Optimizer,
    parallel: Parallel,
    idx: Tensor,
    compute: Callable[[Tensor], Tensor | tuple[Tensor, ...]],
    what: str,
) -> list[float] | None:
    """One optimizer step on the minibatch ``idx``; the mean of each loss term,
    or None for a minibatch too small to split (skipped)."""
    step_out = parallel.losses(idx, compute)
    if step_out is None:
        return None
    loss, values = step_out
    if not math.isfinite(values[0]):
        raise NonFiniteStep(f"non-finite {what} loss ({values[0]})")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return values


def pretrain_epoch(
    batches: Iterable[tuple[Tensor, Tensor, Tensor]],
    encode: Callable[[Tensor], Tensor],
    decode: Callable[[Tensor], Tensor],
    opt: torch.optim.Optimizer,
    parallel: Parallel,
) -> float:
    """One epoch of an autoencoder stage of the layer-wise pretraining.

    Args:
        batches (Iterable): ``(inputs, scores, rows)`` minibatches; the stage
            reconstructs ``inputs[rows]`` (the scores are not used).
        encode (Callable): the stage's encoder.
        decode (Callable): the stage's decoder, back to the inputs.
        opt (torch.optim.Optimizer): the optimizer of the stage's layers.
        parallel (Parallel): how each minibatch is split.

    Returns:
        *float*: the mean reconstruction error over the rows.

    Raises:
        NonFiniteStep: on a NaN/Inf loss.
    """
    total, count = 0.0, 0
    for source, _, idx in batches:

        def compute(rows: Tensor, source: Tensor = source) -> Tensor:
            x = source[rows]
            return torch.mean((decode(encode(x)) - x) ** 2)

        values = _step(opt, parallel, idx, compute, "pretraining")
        if values is None:
            continue
        total += values[0] * idx.numel()
        count += idx.numel()
    return total / count


def train_epoch(
    srae: SRAE,
    batches: Iterable[tuple[Tensor, Tensor, Tensor]],
    config: SRAEConfig,
    opt: torch.optim.Optimizer,
    alphas: tuple[float, float, float],
    parallel: Parallel,
) -> dict[str, float]:
    """One fine-tuning epoch with the full loss, in standardised units.

    Args:
        srae (SRAE): the network (put in training mode).
        batches (Iterable): ``(z source, y source, rows)`` minibatches.
        config (SRAEConfig): the loss settings.
        opt (torch.optim.Optimizer): the optimizer of every parameter.
        alphas (tuple[float, float, float]): ``alpha_pred``, ``alpha_rec``,
            ``alpha_pt`` of the round.
        parallel (Parallel): how each minibatch is split.

    Returns:
        *dict[str, float]*: the mean over the rows of each loss term
        (``total``, ``prediction``, ``reconstruction``, ``pull_away``).

    Raises:
        NonFiniteStep: on a NaN/Inf loss.
    """
    a_pred, a_rec, a_pt = alphas
    srae.train()
    sums = dict.fromkeys(("total", "prediction", "reconstruction", "pull_away"), 0.0)
    count = 0
    for z_src, y_src, idx in batches:

        def compute(
            rows: Tensor, z_src: Tensor = z_src, y_src: Tensor = y_src
        ) -> tuple[Tensor, ...]:
            zb, yb = z_src[rows], y_src[rows]
            e = srae.encode_standardized(zb)
            return tuple(
                srae_loss(
                    zb,
                    srae.decode_standardized(e),
                    e,
                    yb,
                    srae.predict_standardized(e),
                    srae.predictor.weight,
                    config=config,
                    alpha_pred=a_pred,
                    alpha_rec=a_rec,
                    alpha_pt=a_pt,
                )
            )

        values = _step(opt, parallel, idx, compute, "training")
        if values is None:
            continue
        for key, value in zip(sums, values, strict=True):
            sums[key] += value * idx.numel()
        count += idx.numel()
    return {key: value / count for key, value in sums.items()}
