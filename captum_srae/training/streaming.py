#!/usr/bin/env python3
r"""Fitting an SRAE straight from an
:class:`~captum_srae.activations.store.ActivationStore`.

:func:`fit_srae_streaming` (also reached as ``fit_srae(store, config=...)``)
runs the stages of :func:`~captum_srae.fit_srae` without ever holding the
``(N, D)`` activations in memory. What it holds is bounded by ``window``
rows of the store plus ``check_rows`` rows for the dead-unit checks (and,
with ``config.epoch_samples`` set, at most ``epoch_samples`` held-out rows
for early stopping), and one byte per row for the split mask, whatever ``N``:

- the train/validation split is the in-memory fit's (the same seeded
  permutation of the row indices), kept as a boolean mask;
- the standardisation statistics come from one streaming pass over the
  training rows, in float64, with chunk means and squared deviations combined
  by Chan's parallel formula (``M2 = M2_a + M2_b + δ² n_a n_b / n``);
- each epoch reads the store in blocks of ``window`` consecutive rows, in a
  freshly shuffled block order, shuffles the training rows inside each
  block and cuts them into minibatches of ``config.batch_size``: a
  *windowed* shuffle. When ``N <= window`` this is a full shuffle; for
  larger stores minibatches mix rows of one or two blocks only;
- the least-squares initialisation of the predictor solves the normal
  equations ``(XᵀX) w = Xᵀy`` accumulated over the training rows (float64,
  ``X`` the x-features with a column of ones), with a pseudo-inverse;
- the bias centring of pretraining and the revival of dead x-features look
  at a fixed random subset of ``check_rows`` training rows (at most
  ``config.epoch_samples`` of them, the in-memory fit's subset when
  ``check_rows`` is at least that);
- with ``config.epoch_samples`` set, the work of every epoch and every
  re-tuning round is bounded whatever ``N``: an epoch reads at most
  ``epoch_samples`` training rows, early stopping evaluates a fixed random
  subset of at most ``epoch_samples`` held-out rows (those of the in-memory
  fit, read once and kept in memory), and the mean contributions that decide
  a round's acceptance are taken on the check rows. With ``epoch_samples``
  None every epoch streams all training and held-out rows, and every round's
  mean contributions all training rows;
- the final held-out R² and mean squared error in the history are
  accumulated chunk by chunk over every held-out row (one pass at the end).

After the one-off passes (the statistics, the least-squares initialisation,
the final metrics) the store is read only by the epochs' minibatches.

The result is not bit-identical to the in-memory fit (another minibatch
order and float rounding), but of the same quality. Checkpointing is not
supported here.
"""

from __future__ import annotations

import numpy as np
import torch

from captum_srae.activations.store import ActivationStore
from captum_srae.core.config import SRAEConfig
from captum_srae.core.model import SRAE
from captum_srae.training.context import FitContext
from captum_srae.training.history import (
    TrainingHistory,
    concept_warnings,
    positive_share,
)
from captum_srae.training.parallel import Parallel
from captum_srae.training.rounds import finish_history, prepare_rounds, run_rounds
from captum_srae.training.stream_split import Moments, StreamSplit, build_from_store
from captum_srae.utils.validation import check_int

__all__ = ["fit_srae_streaming", "fit_store"]


def fit_srae_streaming(
    store: ActivationStore,
    config: SRAEConfig | None = None,
    *,
    show_progress: bool = True,
    device: str | torch.device | None = None,
    window: int = 16384,
    check_rows: int = 8192,
) -> tuple[SRAE, TrainingHistory]:
    r"""Fit an SRAE on a disk-backed store with memory independent of its length.

    Runs the procedure of :func:`~captum_srae.fit_srae` (pretraining,
    least-squares predictor initialisation, fine-tuning with early stopping
    on the held-out mean squared error, re-tuning rounds) while reading the
    memory-mapped shards batch by batch; see :mod:`captum_srae.training.streaming`
    for how each stage streams. ``fit_srae(store, config=config)`` calls this
    with the default ``window`` and ``check_rows``.

    The held-out quality reported in the history is the coefficient of
    determination (higher is better, 1 is perfect)

    ``R² = 1 − Σᵢ (yᵢ − ŷᵢ)² / Σᵢ (yᵢ − ȳ)²``

    averaged over the explained outputs, accumulated over chunks.

    Args:
        store (ActivationStore): the activations and scores.
        config (SRAEConfig, optional): Hyperparameters. Default: SRAEConfig()
        show_progress (bool, optional): ``tqdm`` progress bars. Default: True
        device (str or torch.device, optional): Where to train; each chunk is
            copied there. Default: CPU
        window (int, optional): rows read from the store at a time (the
            shuffling window and the chunk of every streaming pass); memory
            grows with ``window * D``. Default: 16384
        check_rows (int, optional): size of the fixed random subset of
            training rows on which dead ReLU units are detected and biases
            centred (at most ``config.epoch_samples``; with it also the
            rows of the mean contributions). Default: 8192

    Returns:
        *tuple[SRAE, TrainingHistory]*: as :func:`~captum_srae.fit_srae`.

    Raises:
        TypeError: if ``store`` is not an ActivationStore, ``config`` not an
            SRAEConfig, or ``window``/``check_rows`` not an int.
        ValueError: on NaN/Inf or values above 1e18 in magnitude in the
            store, too few rows for the held-out split, ``n_concepts >= D``,
            or a ``window``/``check_rows`` below 1.
        TrainingDivergedError: as :func:`~captum_srae.fit_srae`.

    Examples::

        >>> from captum_srae.activations.store import ActivationStore
        >>> store = ActivationStore("acts/")
        >>> srae, history = fit_srae_streaming(store, SRAEConfig(n_concepts=5))
        >>> history.val_r2 > 0.9
        True
    """
    return fit_store(
        store, config, show_progress, device, Parallel(), window, check_rows
    )


def fit_store(
    store: ActivationStore,
    config: SRAEConfig | None,
    show_progress: bool,
    device: str | torch.device | None,
    parallel: Parallel,
    window: int = 16384,
    check_rows: int = 8192,
) -> tuple[SRAE, TrainingHistory]:
    """:func:`fit_srae_streaming` with each minibatch split as ``parallel``
    says (the distributed fit passes its ranks here).

    Args:
        store (ActivationStore): the activations and scores.
        config (SRAEConfig, optional): hyperparameters; None for the defaults.
        show_progress (bool): show ``tqdm`` progress bars.
        device (str or torch.device, optional): where to train; None for CPU.
        parallel (Parallel): how each minibatch is split.
        window (int, optional): as in :func:`fit_srae_streaming`.
            Default: 16384
        check_rows (int, optional): as in :func:`fit_srae_streaming`.
            Default: 8192

    Returns:
        *tuple[SRAE, TrainingHistory]*: as :func:`fit_srae_streaming`.

    Raises:
        TypeError: if ``store`` is not an ActivationStore, ``config`` not an
            SRAEConfig, or ``window``/``check_rows`` not an int.
        ValueError: as :func:`fit_srae_streaming`.
        TrainingDivergedError: as :func:`~captum_srae.fit_srae`.
    """
    config = SRAEConfig() if config is None else config
    if not isinstance(config, SRAEConfig):
        raise TypeError(f"config must be an SRAEConfig, got {type(config).__name__}")
    if not isinstance(store, ActivationStore):
        raise TypeError(f"store must be an ActivationStore, got {type(store).__name__}")
    window = check_int(window, "window")
    check_rows = check_int(check_rows, "check_rows")
    n, dim = len(store), store.dim
    if config.n_concepts >= dim:
        raise ValueError(
            f"n_concepts ({config.n_concepts}) must be smaller than the activation "
            f"dimension D={dim} of the store"
        )
    n_val = int(round(config.val_fraction * n))
    if n_val < 2 or n - n_val < 2:
        raise ValueError(
            f"the store has {n} rows; a held-out split with val_fraction="
            f"{config.val_fraction} needs at least 2 rows on each side"
        )
    dev = torch.device("cpu") if device is None else torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        gen = torch.Generator().manual_seed(config.seed)
        is_val, subset_rows, watch = _split_rows(n, n_val, gen, config, check_rows)
        srae = build_from_store(store, ~is_val, config, window)
        srae.to(dev)
        parallel.attach(srae)
        data = StreamSplit(
            *(store, srae, is_val, subset_rows, dev, parallel, window),
            val_rows=watch,
            check_contributions=config.epoch_samples is not None,
        )
        history = TrainingHistory(
            n_train=n - n_val, n_val=n_val, decoder_relu=srae.decoder_relu
        )
        ctx = FitContext(srae, data, config, gen, history, show_progress)
        run_rounds(ctx, prepare_rounds(ctx), None)
    srae.eval()
    finish_history(history, config, stacklevel=5)
    _final_metrics(srae, data, history)
    concept_warnings(history, stacklevel=5)
    return srae, history


def _split_rows(
    n: int, n_val: int, gen: torch.Generator, config: SRAEConfig, check_rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The in-memory fit's split (the same seeded permutation): the mask of
    the held-out rows, the check rows (its first ``k`` training rows, ``k``
    at most ``config.epoch_samples``) and the held-out rows early stopping
    watches (its first ``config.epoch_samples``; None to stream them all)."""
    perm = torch.randperm(n, generator=gen)
    is_val = np.zeros(n, dtype=bool)
    is_val[perm[:n_val].numpy()] = True
    cap = config.epoch_samples
    k = check_rows if cap is None else min(check_rows, cap)
    watch = None if cap is None else perm[:n_val][:cap].numpy()
    return is_val, perm[n_val:][:k].numpy(), watch


def _final_metrics(srae: SRAE, data: StreamSplit, history: TrainingHistory) -> None:
    """Training and held-out R², held-out RMSE in score units, and the
    held-out dead x-features and largest positive share (one pass)."""
    k = data.store.n_outputs
    out = {}
    n_k = srae.n_concepts
    e_sum = torch.zeros(n_k, dtype=torch.float64, device=data.device)
    e_max = torch.zeros(n_k, device=data.device)
    with torch.no_grad():
        for val in (False, True):
            sse = torch.zeros(k, dtype=torch.float64, device=data.device)
            mom = Moments(k, data.device)
            for z, y in data.chunks(val=val, raw=True):
                res = srae(z)
                pred = res.prediction
                sse += ((y.double() - pred.double()) ** 2).sum(dim=0)
                mom.add(y)
                if val:
                    e_sum += res.x_features.double().sum(dim=0)
                    e_max = torch.maximum(e_max, res.x_features.max(dim=0).values)
            r2 = float((1.0 - sse / mom.m2.clamp_min(1e-12)).mean())
            out[val] = (r2, float((sse.sum() / (mom.n * k)).sqrt()))
    history.train_r2 = out[False][0]
    history.val_r2, history.val_rmse = out[True]
    history.dead_features = [int(i) for i in torch.nonzero(e_max <= 0)[:, 0]]
    mean_c = (e_sum / max(int(mom.n), 1))[None, :] * srae.weight.detach().double()
    history.top_share = positive_share(mean_c)
