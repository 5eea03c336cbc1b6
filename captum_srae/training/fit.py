#!/usr/bin/env python3
"""Fitting an :class:`~captum_srae.SRAE` on precomputed activations and scores.

The procedure follows the authors' code (see ``docs/method.rst``):

1. greedy layer-wise pretraining of three one-hidden-layer autoencoders,
2. least-squares initialisation of the linear predictor,
3. joint fine-tuning with the full loss (Adam, weight decay, step schedule),
   stopped early on the held-out faithfulness,
4. an automatic re-tuning loop: when fewer than two x-features carry a
   positive mean contribution, or the second largest is below a fraction of the
   largest, ``alpha_rec`` is raised, ``alpha_pt`` lowered, and fine-tuning
   starts again from the pretrained network.

Every epoch is guarded against training faults: a NaN/Inf loss or weight
restores the state at the start of the epoch and retries it at a tenth of the
learning rate (``SRAEConfig.nan_retries`` times), else
:class:`TrainingDivergedError` is raised. With ``checkpoint_dir`` the whole
training state is checkpointed (safetensors + JSON, see
:mod:`captum_srae.training.checkpoint`) so that an interrupted fit can resume.
"""

from __future__ import annotations

import copy
import os
import warnings
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor

from captum_srae.activations.store import ActivationStore
from captum_srae.core.config import SRAEConfig
from captum_srae.core.model import SRAE
from captum_srae.training import steps
from captum_srae.training.checkpoint import Checkpointer, data_fingerprint
from captum_srae.training.history import (
    RoundRecord,
    TrainingDivergedError,
    TrainingHistory,
    acceptance,
)
from captum_srae.training.steps import _Parallel, _Split
from captum_srae.utils.stats import r2_score
from captum_srae.utils.validation import (
    activations_and_scores,
    check_finite,
    check_magnitude,
)

__all__ = [
    "RoundRecord",
    "TrainingDivergedError",
    "TrainingHistory",
    "acceptance",
    "fit_srae",
    "fit_srae_streaming",
]

ArrayLike = Union[Tensor, np.ndarray]  # noqa: UP007
_State = dict[str, Any]


def fit_srae(
    z: ArrayLike | ActivationStore,
    y: ArrayLike | None = None,
    config: SRAEConfig | None = None,
    *,
    show_progress: bool = True,
    device: str | torch.device | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
) -> tuple[SRAE, TrainingHistory]:
    r"""Fit an SRAE explanation network on activations and the scores they explain.

    Args:
        z (Tensor, ndarray or ActivationStore): Activations, shape ``(N, D)``,
            floating point; or a disk-backed
            :class:`~captum_srae.activations.store.ActivationStore`, which is then read
            batch by batch with memory independent of ``N`` (see
            :func:`~captum_srae.training.fit_srae_streaming`; not bit-identical
            to the in-memory fit, and without ``checkpoint_dir``).
        y (Tensor or ndarray, optional): The model's pre-softmax scores of the
            explained outputs, shape ``(N,)`` or ``(N, K)``, floating point;
            required for in-memory ``z``, taken from the store otherwise.
        config (SRAEConfig, optional): Hyperparameters. Default: SRAEConfig()
        show_progress (bool, optional): Show ``tqdm`` progress bars.
            Default: True
        device (str or torch.device, optional): Where to train. Default: CPU
        checkpoint_dir (str or PathLike, optional): Folder for a crash-safe
            checkpoint of the whole training state (weights, optimizer, RNG
            states, counters, history; safetensors + JSON, never pickle),
            written atomically at the end of pretraining and after every
            fine-tuning epoch. If it already holds a checkpoint of a fit with
            the same data and config, training resumes from it (at most one
            epoch is lost) and, on CPU, ends with the same model as an
            uninterrupted fit. The checkpoint is deleted when the fit succeeds.
            Not supported when ``z`` is an ActivationStore.
            Default: None (no checkpoint)

    Returns:
        *tuple[SRAE, TrainingHistory]*: the fitted network (in eval mode, on
        ``device``) mapping raw activations to raw scores, and the history.

    Raises:
        TypeError: if ``z``/``y`` are not floating tensors or arrays.
        ValueError: on NaN/Inf or values above 1e18 in magnitude, mismatched
            lengths, wrong ranks, too few samples for the held-out split, or
            ``n_concepts >= D``; or if
            ``checkpoint_dir`` holds a corrupt checkpoint or one written for
            other data or another config; if ``y`` is missing for in-memory
            ``z`` or given with a store, or ``checkpoint_dir`` is given with a
            store.
        TrainingDivergedError: if NaN/Inf losses or weights persist after
            ``config.nan_retries`` retries of an epoch at a lower learning rate.

    Examples::

        >>> import torch
        >>> from captum_srae import SRAEConfig, fit_srae
        >>> z = torch.rand(500, 64)
        >>> y = z[:, :8].sum(1) - z[:, 8:16].sum(1)
        >>> srae, history = fit_srae(z, y, SRAEConfig(hidden_sizes=(64, 32)),
        ...                          show_progress=False)
        >>> srae.encode(z).shape
        torch.Size([500, 5])
    """
    if isinstance(z, ActivationStore):
        if y is not None:
            raise ValueError("y must be None when z is an ActivationStore")
        if checkpoint_dir is not None:
            raise ValueError(
                "checkpoint_dir is not supported when fitting from an "
                "ActivationStore (streaming fit); pass checkpoint_dir=None or "
                "load the store in memory with store.load()"
            )
        return fit_srae_streaming(z, config, show_progress=show_progress, device=device)
    if y is None:
        raise ValueError("y must be given unless z is an ActivationStore")
    return _fit(z, y, config, show_progress, device, checkpoint_dir, _Parallel())


def _fit(
    z: ArrayLike,
    y: ArrayLike,
    config: SRAEConfig | None,
    show_progress: bool,
    device: str | torch.device | None,
    checkpoint_dir: str | os.PathLike[str] | None,
    parallel: _Parallel,
) -> tuple[SRAE, TrainingHistory]:
    """:func:`fit_srae` with each minibatch split as ``parallel`` says."""
    config = SRAEConfig() if config is None else config
    if not isinstance(config, SRAEConfig):
        raise TypeError(f"config must be an SRAEConfig, got {type(config).__name__}")
    z_t, y_t = _check_data(z, y, config)
    dev = torch.device("cpu") if device is None else torch.device(device)
    ckpt = None
    if checkpoint_dir is not None:
        if not isinstance(checkpoint_dir, (str, os.PathLike)):
            raise TypeError(
                "checkpoint_dir must be a path or None, got "
                f"{type(checkpoint_dir).__name__}"
            )
        ckpt = Checkpointer(checkpoint_dir, config, data_fingerprint(z_t, y_t))
    resume = ckpt.load() if ckpt is not None else None
    n = z_t.shape[0]
    n_val = int(round(config.val_fraction * n))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        gen = torch.Generator().manual_seed(config.seed)
        perm = torch.randperm(n, generator=gen)
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        srae = steps._build(z_t[train_idx], y_t[train_idx], config)
        srae.to(dev)
        parallel.attach(srae)
        zs = srae.standardize_z(z_t.to(dev))
        ys = srae.standardize_y(y_t.to(dev))
        data = _Split(zs[train_idx], ys[train_idx], zs[val_idx], ys[val_idx], parallel)
        if resume is None:
            history = TrainingHistory(
                n_train=int(train_idx.numel()),
                n_val=int(val_idx.numel()),
                decoder_relu=srae.decoder_relu,
            )
            steps._pretrain(srae, data, config, gen, history, show_progress)
            steps._init_predictor(srae, data)
            steps._check_weights(srae, "after pretraining")
            run: _State = steps.new_run_state(srae, config)
        else:
            history = TrainingHistory.from_dict(resume["history"])
            history.resumed_from = {
                "round": int(resume["round"]),
                "epoch": int(resume["loop"]["epoch"]),
            }
            gen.set_state(resume["gen"])
            torch.set_rng_state(resume["rng"])
            run = resume
        _run_rounds(srae, data, config, gen, history, run, ckpt, show_progress)
    if ckpt is not None:
        ckpt.remove()
    srae.eval()
    _finish_history(history, config)
    with torch.no_grad():
        y_dev = y_t.to(dev)
        pred = srae(z_t.to(dev)).prediction
        history.train_r2 = r2_score(y_dev[train_idx], pred[train_idx])
        history.val_r2 = r2_score(y_dev[val_idx], pred[val_idx])
        history.val_rmse = float(((y_dev[val_idx] - pred[val_idx]) ** 2).mean().sqrt())
    return srae, history


def _finish_history(
    history: TrainingHistory, config: SRAEConfig, stacklevel: int = 4
) -> None:
    """Record the chosen round's acceptance; warn if re-tuning failed."""
    history.accepted = history.rounds[history.chosen_round].accepted
    # with a single round re-tuning is off by choice: history.accepted says it
    if not history.accepted and config.retune_rounds > 1:
        warnings.warn(
            "SRAE re-tuning did not meet the acceptance rule after "
            f"{config.retune_rounds} rounds (one x-feature may carry most of the "
            "score); the last round is returned, see history.rounds",
            RuntimeWarning,
            stacklevel=stacklevel,
        )


def _run_rounds(
    srae: SRAE,
    data: _Split | _StreamSplit,
    config: SRAEConfig,
    gen: torch.Generator,
    history: TrainingHistory,
    run: _State,
    ckpt: Checkpointer | None,
    show_progress: bool,
) -> None:
    """The re-tuning loop, resumable from ``run`` (a checkpointed state)."""

    def save(loop: _State) -> None:
        if ckpt is not None:
            state = {**run, "loop": loop, "history": history.to_dict()}
            state.update(gen=gen.get_state(), rng=torch.get_rng_state())
            ckpt.save(state)

    while run["round"] < config.retune_rounds:
        r = int(run["round"])
        if run["loop"] is None:
            srae.load_state_dict(run["start"])
        alphas = tuple(float(a) for a in run["alphas"])
        record = steps._finetune(
            srae,
            data,
            config,
            gen,
            history,
            r,
            (alphas[0], alphas[1], alphas[2]),
            show_progress,
            run["loop"],
            save,
        )
        history.rounds.append(record)
        run["chosen"], history.chosen_round = copy.deepcopy(srae.state_dict()), r
        run["loop"] = None
        if record.accepted:
            break
        run["alphas"] = [
            alphas[0],
            alphas[1] * config.retune_rec_factor,
            alphas[2] * config.retune_pt_factor,
        ]
        run["round"] = r + 1
    assert run["chosen"] is not None  # retune_rounds >= 1 is validated
    srae.load_state_dict(run["chosen"])
    steps._check_weights(srae, "after fine-tuning")


def _check_data(
    z: ArrayLike, y: ArrayLike, config: SRAEConfig
) -> tuple[Tensor, Tensor]:
    z_t, y_t = activations_and_scores(z, y)
    if config.n_concepts >= z_t.shape[1]:
        raise ValueError(
            f"n_concepts ({config.n_concepts}) must be smaller than the activation "
            f"dimension D={z_t.shape[1]} of z"
        )
    n = z_t.shape[0]
    n_val = int(round(config.val_fraction * n))
    if n_val < 2 or n - n_val < 2:
        need = next(
            m
            for m in range(4, 10**9)
            if int(round(config.val_fraction * m)) >= 2
            and m - int(round(config.val_fraction * m)) >= 2
        )
        raise ValueError(
            f"z has {n} samples; a held-out split with val_fraction="
            f"{config.val_fraction} needs at least {need}"
        )
    check_finite(z_t, "z")
    check_finite(y_t, "y")
    check_magnitude(z_t, "z")
    check_magnitude(y_t, "y")
    return z_t.float(), y_t.float()


# imported last: the streaming fit uses _run_rounds and _finish_history above
from captum_srae.training.stream_split import _StreamSplit  # noqa: E402
from captum_srae.training.streaming import fit_srae_streaming  # noqa: E402
