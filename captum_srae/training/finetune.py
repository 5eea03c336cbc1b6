#!/usr/bin/env python3
"""Joint fine-tuning with the full loss, one re-tuning round: Adam with
weight decay, a step learning-rate schedule, early stopping on the held-out
faithfulness and the revival of dead x-features; resumable from a
checkpointed state of the loop."""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from captum_srae.core.config import SRAEConfig
from captum_srae.core.model import SRAE
from captum_srae.training.context import FitContext
from captum_srae.training.dead_units import revive
from captum_srae.training.epochs import adam, train_epoch
from captum_srae.training.guard import NonFiniteStep, retrying
from captum_srae.training.history import RoundRecord, acceptance

__all__ = ["EarlyStopping", "LoopState", "epoch_limit", "finetune"]

#: the checkpointed state of a fine-tuning loop (see :meth:`EarlyStopping.loop`)
LoopState = dict[str, Any]


@dataclasses.dataclass
class EarlyStopping:
    """Early stopping and the learning-rate schedule of one round.

    Attributes:
        best_mse (float): the lowest held-out error so far.
        best_epoch (int): the epoch (1-based) that reached it; 0 before any.
        best_state (dict or None): the weights of that epoch.
        stale (int): epochs since the last improvement (or rate step).
        since_decay (int): epochs since the last learning-rate step.
        decays (int): learning-rate steps taken.
    """

    best_mse: float = float("inf")
    best_epoch: int = 0
    best_state: dict[str, Tensor] | None = None
    stale: int = 0
    since_decay: int = 0
    decays: int = 0

    @classmethod
    def from_loop(cls, loop: LoopState) -> EarlyStopping:
        """The state saved in a checkpointed ``loop`` (see :meth:`loop`)."""
        return cls(
            best_mse=float(loop["best_mse"]),
            best_epoch=int(loop["best_epoch"]),
            best_state=loop["best_state"],
            stale=int(loop["stale"]),
            since_decay=int(loop["since_decay"]),
            decays=int(loop["decays"]),
        )

    def loop(self, epoch: int, srae: SRAE, opt: torch.optim.Optimizer) -> LoopState:
        """The checkpointed state of the loop after ``epoch``.

        Args:
            epoch (int): the last finished epoch (0 before the first).
            srae (SRAE): the network.
            opt (torch.optim.Optimizer): its optimizer.

        Returns:
            *LoopState*: the epoch, the model and optimizer states and the
            early-stopping state.
        """
        return {
            "epoch": epoch,
            "model": srae.state_dict(),
            "opt": opt.state_dict(),
            "best_mse": self.best_mse,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "stale": self.stale,
            "since_decay": self.since_decay,
            "decays": self.decays,
        }

    def update(
        self,
        epoch: int,
        val_mse: float,
        srae: SRAE,
        opt: torch.optim.Optimizer,
        config: SRAEConfig,
    ) -> bool:
        """Record an epoch's held-out error; step the learning rate when due.

        The rate is multiplied by ``config.lr_gamma`` every
        ``config.lr_step_epochs`` epochs, and early on a plateau of
        ``config.patience`` epochs, from the best weights so far.

        Args:
            epoch (int): the finished epoch.
            val_mse (float): its held-out mean squared error.
            srae (SRAE): the network (the best weights are restored on a
                plateau).
            opt (torch.optim.Optimizer): its optimizer.
            config (SRAEConfig): the schedule.

        Returns:
            *bool*: True to stop: a plateau after ``config.max_lr_decays``
            rate steps.
        """
        self.since_decay += 1
        if val_mse < self.best_mse:
            self.best_mse, self.best_epoch, self.stale = val_mse, epoch, 0
            self.best_state = copy.deepcopy(srae.state_dict())
        else:
            self.stale += 1
        plateau = self.stale >= config.patience
        if plateau and self.decays >= config.max_lr_decays:
            return True
        if plateau or self.since_decay >= config.lr_step_epochs:
            if plateau and self.best_state is not None:
                srae.load_state_dict(self.best_state)
            for group in opt.param_groups:
                group["lr"] *= config.lr_gamma
            self.stale, self.since_decay, self.decays = 0, 0, self.decays + 1
        return False


def finetune(
    ctx: FitContext,
    round_index: int,
    alphas: tuple[float, float, float],
    loop: LoopState | None = None,
    save: Callable[[LoopState], None] | None = None,
) -> RoundRecord:
    """Fine-tune every layer with the full loss for one re-tuning round.

    Every epoch runs under :func:`~captum_srae.training.guard.retrying` and
    is recorded in ``ctx.history.epochs``; the network is left with the
    weights of the epoch with the lowest held-out error.

    Args:
        ctx (FitContext): the fit (its network is trained in place).
        round_index (int): the 0-based round.
        alphas (tuple[float, float, float]): the round's loss weights.
        loop (LoopState, optional): a checkpointed state to resume from.
            Default: None (start afresh)
        save (Callable, optional): receives the loop state at the start and
            after every epoch (for checkpoints). Default: None

    Returns:
        *RoundRecord*: the round's settings, best epoch, held-out error,
        mean contributions and acceptance.

    Raises:
        TrainingDivergedError: if an epoch stays non-finite after the retries.
    """
    srae, config, history = ctx.srae, ctx.config, ctx.history
    opt = adam(list(srae.parameters()), config.lr, config.weight_decay)
    stop, first = EarlyStopping(), 0
    if loop is not None:  # resume from a checkpoint
        srae.load_state_dict(loop["model"])
        opt.load_state_dict(loop["opt"])
        stop, first = EarlyStopping.from_loop(loop), int(loop["epoch"])
    elif save is not None:
        save(stop.loop(0, srae, opt))
    bar = tqdm(
        range(first + 1, epoch_limit(config, round_index) + 1),
        desc=f"SRAE fine-tuning (round {round_index + 1})",
        disable=not ctx.show_progress,
        leave=False,
    )
    epoch = first
    for epoch in bar:
        step = _epoch_step(ctx, opt, alphas)
        info = {"stage": "finetune", "round": round_index, "epoch": epoch}
        sums, val_mse, val_r2 = retrying(
            step, srae, opt, ctx.gen, config, history, info
        )
        lr = opt.param_groups[0]["lr"]
        entry: dict[str, float] = {"round": round_index, "epoch": epoch, "lr": lr}
        entry.update(sums)
        entry.update({"val_mse": val_mse, "val_r2": val_r2})
        history.epochs.append(entry)
        bar.set_postfix(val_r2=f"{val_r2:.4f}")
        if stop.update(epoch, val_mse, srae, opt, config):
            break
        if save is not None:
            save(stop.loop(epoch, srae, opt))
    bar.close()
    if stop.best_state is not None:
        srae.load_state_dict(stop.best_state)
    srae.eval()
    mean_contrib = ctx.data.mean_contributions(srae)
    return RoundRecord(
        round=round_index,
        alpha_pred=float(alphas[0]),
        alpha_rec=float(alphas[1]),
        alpha_pt=float(alphas[2]),
        epochs=epoch,
        best_epoch=stop.best_epoch,
        val_mse=stop.best_mse,
        mean_contributions=mean_contrib.tolist(),
        accepted=acceptance(mean_contrib, config),
    )


def epoch_limit(config: SRAEConfig, round_index: int) -> int:
    """The fine-tuning epochs a round may run.

    ``config.max_epochs`` for the first round, and for every round when
    re-tuning restarts from the pretrained weights; a quarter of it (at
    least one epoch) for a warm-started re-tuning round
    (``config.retune_warm_start``), which only has to rebalance weights that
    already fit.

    Args:
        config (SRAEConfig): the schedule.
        round_index (int): the 0-based round.

    Returns:
        *int*: the largest epoch number of the round.
    """
    if round_index > 0 and config.retune_warm_start:
        return max(1, math.ceil(config.max_epochs / 4))
    return config.max_epochs


def _epoch_step(
    ctx: FitContext, opt: torch.optim.Optimizer, alphas: tuple[float, float, float]
) -> Callable[[], tuple[dict[str, float], float, float]]:
    """One fine-tuning epoch and its held-out evaluation, as a step for
    ``retrying``."""
    srae, data, config = ctx.srae, ctx.data, ctx.config

    def step() -> tuple[dict[str, float], float, float]:
        batches = data.train_batches(config, ctx.gen)
        sums = train_epoch(srae, batches, config, opt, alphas, data.parallel)
        if config.revive_dead and config.nonnegative:
            srae.eval()
            revive(srae, data.check_rows[: config.epoch_samples])
        val_mse, val_r2 = data.evaluate(srae)
        if not math.isfinite(val_mse):
            raise NonFiniteStep(f"non-finite held-out error ({val_mse})")
        return sums, val_mse, val_r2

    return step
