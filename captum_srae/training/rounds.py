#!/usr/bin/env python3
"""The automatic re-tuning loop shared by the in-memory and the streaming
fit: when fewer than two x-features carry a positive mean contribution, or
the second largest is below a fraction of the largest, ``alpha_rec`` is
raised, ``alpha_pt`` lowered, and fine-tuning goes on from the previous
round (or starts again from the pretrained network with
``retune_warm_start=False``, the authors' way). Also the setup before the rounds
(:func:`prepare_rounds`) and the verdict after them
(:func:`finish_history`)."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch

from captum_srae.core.config import SRAEConfig
from captum_srae.core.model import SRAE
from captum_srae.training.checkpoint import Checkpointer
from captum_srae.training.context import FitContext
from captum_srae.training.finetune import LoopState, finetune
from captum_srae.training.guard import check_weights
from captum_srae.training.history import TrainingHistory, balance
from captum_srae.training.pretrain import pretrain

__all__ = [
    "RunState",
    "finish_history",
    "new_run_state",
    "prepare_rounds",
    "run_rounds",
]

#: the checkpointed state of the re-tuning rounds (see :func:`new_run_state`)
RunState = dict[str, Any]


def new_run_state(srae: SRAE, config: SRAEConfig) -> RunState:
    """The state of the re-tuning rounds before the first round.

    Args:
        srae (SRAE): the pretrained network.
        config (SRAEConfig): supplies the first round's loss weights.

    Returns:
        *RunState*: ``round`` 0, the ``alphas`` of the config, the weights to
        restart each round from (``start``), the ``chosen`` weights (None
        yet) and the fine-tuning ``loop`` state (None: not started).
    """
    return {
        "round": 0,
        "alphas": [config.alpha_pred, config.alpha_rec, config.alpha_pt],
        "start": copy.deepcopy(srae.state_dict()),
        "chosen": None,
        "loop": None,
    }


def prepare_rounds(ctx: FitContext) -> RunState:
    """Pretrain, initialise the predictor by least squares, and start the rounds.

    Args:
        ctx (FitContext): the fit, with a freshly built network (trained in
            place).

    Returns:
        *RunState*: the state before the first round.

    Raises:
        TrainingDivergedError: if pretraining leaves NaN/Inf weights.
    """
    pretrain(ctx)
    ctx.data.init_predictor(ctx.srae)
    check_weights(ctx.srae, "after pretraining")
    return new_run_state(ctx.srae, ctx.config)


def run_rounds(ctx: FitContext, run: RunState, ckpt: Checkpointer | None) -> None:
    """The re-tuning loop, resumable from ``run`` (a checkpointed state).

    The first round fine-tunes from the pretrained weights; a later round
    continues from the previous round's weights (``config.retune_warm_start``,
    so that it converges in a few epochs) or starts again from the pretrained
    weights. An accepted round ends the loop, a rejected one raises
    ``alpha_rec`` and lowers ``alpha_pt`` for the next; warm-started
    re-tuning also stops when a round shares the score no better than the
    round before it (:func:`~captum_srae.training.history.balance`: the rule
    is out of reach). The network ends with the last round's weights.

    Args:
        ctx (FitContext): the fit (its network is trained in place).
        run (RunState): the state to start from (updated in place).
        ckpt (Checkpointer, optional): saves the whole state after every
            epoch.

    Raises:
        TrainingDivergedError: if training diverges beyond recovery.
    """
    srae, config, history = ctx.srae, ctx.config, ctx.history

    def save(loop: LoopState) -> None:
        if ckpt is not None:
            state = {**run, "loop": loop, "history": history.to_dict()}
            state.update(gen=ctx.gen.get_state(), rng=torch.get_rng_state())
            ckpt.save(state)

    while run["round"] < config.retune_rounds:
        r = int(run["round"])
        if run["loop"] is None:
            warm = config.retune_warm_start and run["chosen"] is not None
            srae.load_state_dict(run["chosen"] if warm else run["start"])
        a = tuple(float(a) for a in run["alphas"])
        alphas = (a[0], a[1], a[2])
        record = finetune(ctx, r, alphas, run["loop"], save)
        history.rounds.append(record)
        run["chosen"], history.chosen_round = copy.deepcopy(srae.state_dict()), r
        run["loop"] = None
        if record.accepted or _stalled(history, config):
            break
        run["alphas"] = [
            alphas[0],
            alphas[1] * config.retune_rec_factor,
            alphas[2] * config.retune_pt_factor,
        ]
        run["round"] = r + 1
    assert run["chosen"] is not None  # retune_rounds >= 1 is validated
    srae.load_state_dict(run["chosen"])
    check_weights(srae, "after fine-tuning")


def _stalled(history: TrainingHistory, config: SRAEConfig) -> bool:
    """Whether warm re-tuning stopped moving towards the acceptance rule: the
    last round shared the score no better than the one before it."""
    if not config.retune_warm_start or len(history.rounds) < 2:
        return False
    last, before = (
        balance(torch.tensor(r.mean_contributions)) for r in history.rounds[-2:][::-1]
    )
    return last <= before


def finish_history(
    history: TrainingHistory, config: SRAEConfig, stacklevel: int = 4
) -> None:
    """Record the chosen round's acceptance; warn if re-tuning failed.

    Args:
        history (TrainingHistory): the history of a finished fit.
        config (SRAEConfig): with a single round re-tuning is off by choice
            and no warning is given.
        stacklevel (int, optional): of the warning, to name the user's call.
            Default: 4
    """
    history.accepted = history.rounds[history.chosen_round].accepted
    if not history.accepted and config.retune_rounds > 1:
        warnings.warn(
            "SRAE re-tuning did not meet the acceptance rule after "
            f"{len(history.rounds)} rounds (one x-feature may carry most of the "
            "score); the last round is returned, see history.rounds",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
