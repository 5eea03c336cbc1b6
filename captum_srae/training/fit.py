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

import os
from typing import Union

import numpy as np
import torch
from torch import Tensor

from captum_srae.activations.store import ActivationStore
from captum_srae.core.config import SRAEConfig
from captum_srae.core.model import SRAE
from captum_srae.training.checkpoint import Checkpointer, data_fingerprint
from captum_srae.training.context import FitContext
from captum_srae.training.history import (
    TrainingHistory,
    concept_warnings,
    record_concepts,
)
from captum_srae.training.parallel import Parallel
from captum_srae.training.rounds import (
    RunState,
    finish_history,
    prepare_rounds,
    run_rounds,
)
from captum_srae.training.split import MemorySplit, build_network
from captum_srae.training.streaming import fit_srae_streaming
from captum_srae.utils.stats import r2_score
from captum_srae.utils.validation import (
    activations_and_scores,
    check_finite,
    check_magnitude,
)

__all__ = ["ArrayLike", "check_data", "fit_in_memory", "fit_srae"]

ArrayLike = Union[Tensor, np.ndarray]  # noqa: UP007


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
    return fit_in_memory(
        z, y, config, show_progress, device, checkpoint_dir, Parallel()
    )


def fit_in_memory(
    z: ArrayLike,
    y: ArrayLike,
    config: SRAEConfig | None,
    show_progress: bool,
    device: str | torch.device | None,
    checkpoint_dir: str | os.PathLike[str] | None,
    parallel: Parallel,
) -> tuple[SRAE, TrainingHistory]:
    """:func:`fit_srae` on in-memory data, each minibatch split as
    ``parallel`` says (the distributed fit passes its ranks here).

    Args:
        z (Tensor or ndarray): activations ``(N, D)``.
        y (Tensor or ndarray): scores ``(N,)`` or ``(N, K)``.
        config (SRAEConfig, optional): hyperparameters; None for the defaults.
        show_progress (bool): show ``tqdm`` progress bars.
        device (str or torch.device, optional): where to train; None for CPU.
        checkpoint_dir (str or PathLike, optional): as in :func:`fit_srae`.
        parallel (Parallel): how each minibatch is split.

    Returns:
        *tuple[SRAE, TrainingHistory]*: as :func:`fit_srae`.

    Raises:
        TypeError: if ``config`` is not an SRAEConfig or ``checkpoint_dir``
            not a path; as :func:`fit_srae` otherwise.
        ValueError: as :func:`fit_srae`.
        TrainingDivergedError: as :func:`fit_srae`.
    """
    config = SRAEConfig() if config is None else config
    if not isinstance(config, SRAEConfig):
        raise TypeError(f"config must be an SRAEConfig, got {type(config).__name__}")
    z_t, y_t = check_data(z, y, config)
    dev = torch.device("cpu") if device is None else torch.device(device)
    ckpt = _checkpointer(checkpoint_dir, config, z_t, y_t)
    resume = ckpt.load() if ckpt is not None else None
    n = z_t.shape[0]
    n_val = int(round(config.val_fraction * n))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        gen = torch.Generator().manual_seed(config.seed)
        perm = torch.randperm(n, generator=gen)
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        srae = build_network(z_t[train_idx], y_t[train_idx], config)
        srae.to(dev)
        parallel.attach(srae)
        zs = srae.standardize_z(z_t.to(dev))
        ys = srae.standardize_y(y_t.to(dev))
        watch = val_idx[: config.epoch_samples]  # early stopping's held-out rows
        data = MemorySplit(
            zs[train_idx],
            ys[train_idx],
            zs[watch],
            ys[watch],
            parallel,
            check_limit=config.epoch_samples,
        )
        if resume is None:
            history = TrainingHistory(
                n_train=int(train_idx.numel()),
                n_val=int(val_idx.numel()),
                decoder_relu=srae.decoder_relu,
            )
            ctx = FitContext(srae, data, config, gen, history, show_progress)
            run = prepare_rounds(ctx)
        else:
            history, run = _resume(resume, gen)
            ctx = FitContext(srae, data, config, gen, history, show_progress)
        run_rounds(ctx, run, ckpt)
    if ckpt is not None:
        ckpt.remove()
    srae.eval()
    finish_history(history, config)
    _final_scores(srae, history, z_t.to(dev), y_t.to(dev), train_idx, val_idx)
    concept_warnings(history)
    return srae, history


def _final_scores(
    srae: SRAE,
    history: TrainingHistory,
    z: Tensor,
    y: Tensor,
    train_idx: Tensor,
    val_idx: Tensor,
) -> None:
    """The fitted network's R² on every training and held-out row, its
    held-out RMSE, dead x-features and largest positive share, into
    ``history``."""
    with torch.no_grad():
        e = srae.encode(z)
        pred = srae.predict(e)
        record_concepts(history, e[val_idx], srae.weight)
    history.train_r2 = r2_score(y[train_idx], pred[train_idx])
    history.val_r2 = r2_score(y[val_idx], pred[val_idx])
    history.val_rmse = float(((y[val_idx] - pred[val_idx]) ** 2).mean().sqrt())


def _checkpointer(
    checkpoint_dir: str | os.PathLike[str] | None,
    config: SRAEConfig,
    z: Tensor,
    y: Tensor,
) -> Checkpointer | None:
    """The checkpointer of ``checkpoint_dir`` for this data, or None."""
    if checkpoint_dir is None:
        return None
    if not isinstance(checkpoint_dir, (str, os.PathLike)):
        raise TypeError(
            "checkpoint_dir must be a path or None, got "
            f"{type(checkpoint_dir).__name__}"
        )
    return Checkpointer(checkpoint_dir, config, data_fingerprint(z, y))


def _resume(resume: RunState, gen: torch.Generator) -> tuple[TrainingHistory, RunState]:
    """The history and round state of a checkpoint; restores both RNGs."""
    history = TrainingHistory.from_dict(resume["history"])
    history.resumed_from = {
        "round": int(resume["round"]),
        "epoch": int(resume["loop"]["epoch"]),
    }
    gen.set_state(resume["gen"])
    torch.set_rng_state(resume["rng"])
    return history, resume


def check_data(z: ArrayLike, y: ArrayLike, config: SRAEConfig) -> tuple[Tensor, Tensor]:
    """Check the activations and scores of an in-memory fit.

    Args:
        z (Tensor or ndarray): activations ``(N, D)``.
        y (Tensor or ndarray): scores ``(N,)`` or ``(N, K)``.
        config (SRAEConfig): supplies ``n_concepts`` and ``val_fraction``.

    Returns:
        *tuple[Tensor, Tensor]*: ``z`` ``(N, D)`` and ``y`` ``(N, K)`` as
        float32 tensors.

    Raises:
        TypeError: if ``z``/``y`` are not floating tensors or arrays.
        ValueError: on wrong shapes, ``n_concepts >= D``, too few samples
            for the held-out split, NaN/Inf or values above 1e18.
    """
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
