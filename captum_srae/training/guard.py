#!/usr/bin/env python3
"""The guard against training faults shared by every stage of a fit: an epoch
that meets a NaN/Inf loss or weight is restored and retried at a lower
learning rate (:func:`retrying`), else :class:`TrainingDivergedError` is
raised."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from captum_srae.core.config import SRAEConfig
from captum_srae.core.model import SRAE
from captum_srae.training.history import TrainingDivergedError, TrainingHistory

__all__ = ["NonFiniteStep", "check_weights", "nonfinite_weights", "retrying"]

T = TypeVar("T")


class NonFiniteStep(Exception):
    """A non-finite loss met inside an epoch; :func:`retrying` catches it and
    restores the start of the epoch (never escapes a fit)."""


def nonfinite_weights(module: torch.nn.Module) -> str | None:
    """Say which floating tensor of ``module``'s state holds NaN/Inf, if any.

    Args:
        module (nn.Module): the network.

    Returns:
        *str or None*: ``"non-finite values in <name>"`` for the first such
        tensor, None when every value is finite.
    """
    for name, t in module.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return f"non-finite values in {name}"
    return None


def check_weights(srae: SRAE, where: str) -> None:
    """Raise if the network holds NaN/Inf weights.

    Args:
        srae (SRAE): the network.
        where (str): the stage, for the message (e.g. ``"after pretraining"``).

    Raises:
        TrainingDivergedError: if a weight or buffer is not finite.
    """
    reason = nonfinite_weights(srae)
    if reason is not None:
        raise TrainingDivergedError(f"SRAE training diverged {where}: {reason}")


def retrying(
    step: Callable[[], T],
    srae: SRAE,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    config: SRAEConfig,
    history: TrainingHistory,
    info: dict[str, Any],
) -> T:
    """Run one epoch ``step``; on NaN/Inf restore its start and retry at lr / 10.

    The model, optimizer and both RNG states are restored, so a retry sees the
    same batches and dropout masks with a smaller learning rate. Every
    recovery is recorded in ``history.recoveries`` and warned about.

    Args:
        step (Callable[[], T]): one epoch; raises :class:`NonFiniteStep` on a
            non-finite loss.
        srae (SRAE): the trained network.
        opt (torch.optim.Optimizer): its optimizer.
        gen (torch.Generator): the generator of the minibatch order.
        config (SRAEConfig): supplies ``nan_retries``.
        history (TrainingHistory): receives the recoveries.
        info (dict): ``stage`` and the position (layer or round, epoch), for
            the messages and the record.

    Returns:
        *T*: what ``step`` returned on its first finite run.

    Raises:
        TrainingDivergedError: after ``config.nan_retries`` failed retries.
    """
    snap = (
        copy.deepcopy(srae.state_dict()),
        copy.deepcopy(opt.state_dict()),
        gen.get_state(),
        torch.get_rng_state(),
    )
    attempt = 0
    while True:
        try:
            result = step()
            reason = nonfinite_weights(srae)
            if reason is None:
                return result
        except NonFiniteStep as exc:
            reason = str(exc)
        srae.load_state_dict(snap[0])
        opt.load_state_dict(copy.deepcopy(snap[1]))
        gen.set_state(snap[2])
        torch.set_rng_state(snap[3])
        attempt += 1
        where = ", ".join(f"{k} {v}" for k, v in info.items() if k != "stage")
        if attempt > config.nan_retries:
            raise TrainingDivergedError(
                f"SRAE training diverged in {info['stage']} ({where}): {reason}; "
                f"{config.nan_retries} retries from the start of the epoch with "
                "the learning rate divided by 10 each did not help. Lower "
                "SRAEConfig.lr or check the activations and scores."
            )
        for group in opt.param_groups:
            group["lr"] *= 0.1**attempt
        lr = float(opt.param_groups[0]["lr"])
        history.recoveries.append(
            {**info, "attempt": attempt, "reason": reason, "lr": lr}
        )
        warnings.warn(
            f"SRAE training: {reason} ({where}); restored the start of the epoch "
            f"and retrying with lr={lr:g}",
            RuntimeWarning,
            stacklevel=3,
        )
