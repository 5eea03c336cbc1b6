#!/usr/bin/env python3
"""The data a fit trains on: the :class:`TrainingData` protocol that the
stages of a fit read their minibatches from, and its in-memory
implementation :class:`MemorySplit` with :func:`build_network`, the network
built from the training rows' statistics.
(:class:`~captum_srae.training.stream_split.StreamSplit` implements the
protocol over an :class:`~captum_srae.activations.store.ActivationStore`.)"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import torch
from torch import Tensor

from captum_srae.core.config import SRAEConfig
from captum_srae.core.model import SRAE
from captum_srae.training.epochs import epoch_batches
from captum_srae.training.parallel import Parallel
from captum_srae.utils.stats import r2_score

__all__ = [
    "ONE_OFF_ROWS",
    "Encoder",
    "Minibatches",
    "MemorySplit",
    "TrainingData",
    "build_network",
    "floor_std",
    "through",
]

Encoder = Callable[[Tensor], Tensor]

#: With a work budget (``epoch_samples``), the training rows that the one-off
#: passes of an in-memory fit read at most: the encoding of the inputs of the
#: deeper pretraining stages and the least-squares initialisation.
ONE_OFF_ROWS = 65536


class Minibatches(Protocol):
    """Where a training loop draws its minibatches from.

    Attributes:
        parallel (Parallel): how each minibatch is split.
        check_rows (Tensor): the (standardised) training rows, or a fixed
            subset of them, on which dead units are detected and biases
            centred.
    """

    parallel: Parallel

    @property
    def check_rows(self) -> Tensor: ...

    def train_batches(
        self, config: SRAEConfig, gen: torch.Generator
    ) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """One shuffled epoch of ``(z source, y source, rows)`` minibatches."""
        ...


class TrainingData(Minibatches, Protocol):
    """The training and held-out data of a fit, as its stages read them."""

    def encoded(self, encoders: Sequence[Encoder]) -> Minibatches:
        """The training rows seen through the encoders of the finished
        pretraining stages (the inputs of the next stage)."""
        ...

    def init_predictor(self, srae: SRAE) -> None:
        """Set the predictor to the least-squares fit on the x-features."""
        ...

    def init_rows(self) -> tuple[Tensor, Tensor]:
        """Standardised training rows and scores for the x-feature start."""
        ...

    def evaluate(self, srae: SRAE) -> tuple[float, float]:
        """Held-out mean squared error and R² in standardised units."""
        ...

    def mean_contributions(self, srae: SRAE) -> Tensor:
        """Mean contribution of each x-feature to each output, ``(K, n)``."""
        ...


def through(encoders: Sequence[Encoder], x: Tensor) -> Tensor:
    """``x`` passed through ``encoders`` in order, without gradients.

    Args:
        encoders (Sequence[Callable]): the encoders of finished stages.
        x (Tensor): their input.

    Returns:
        *Tensor*: the output of the last encoder (``x`` itself if none).
    """
    with torch.no_grad():
        for fn in encoders:
            x = fn(x)
    return x


def floor_std(std: Tensor) -> Tensor:
    """Replace (near-)zero standard deviations by 1.

    Args:
        std (Tensor): per-column standard deviations.

    Returns:
        *Tensor*: ``std`` with values at or below ``1e-6 * max`` (and at
        least ``1e-12``) replaced by 1.
    """
    floor = 1e-6 * float(std.max()) if std.numel() and float(std.max()) > 0 else 0.0
    return torch.where(std > max(floor, 1e-12), std, torch.ones_like(std))


def build_network(z_train: Tensor, y_train: Tensor, config: SRAEConfig) -> SRAE:
    """The untrained network, standardised with the training rows' statistics.

    Args:
        z_train (Tensor): training activations ``(N, D)``.
        y_train (Tensor): training scores ``(N, K)``.
        config (SRAEConfig): the hyperparameters; with ``decoder_relu`` None
            the decoder ends with a ReLU when every activation is >= 0.

    Returns:
        *SRAE*: the network, on CPU.
    """
    decoder_relu = config.decoder_relu
    if decoder_relu is None:
        decoder_relu = bool((z_train >= 0).all())
    srae = SRAE(z_train.shape[1], y_train.shape[1], config, decoder_relu=decoder_relu)
    if config.standardize:
        # Statistics in float64: squares of values near 1e20 overflow float32.
        z64, y64 = z_train.double(), y_train.double()
        srae.z_mean.copy_(z64.mean(dim=0))
        srae.z_scale.copy_(_safe_std(z64))
        srae.y_mean.copy_(y64.mean(dim=0))
        srae.y_scale.copy_(_safe_std(y64))
    return srae


def _safe_std(x: Tensor) -> Tensor:
    return floor_std(x.std(dim=0) if x.shape[0] > 1 else torch.ones_like(x[0]))


@dataclasses.dataclass
class MemorySplit:
    """The standardised training and held-out rows of an in-memory fit.

    Attributes:
        z_train, y_train (Tensor): training activations and scores.
        z_val, y_val (Tensor): held-out activations and scores (the rows
            that early stopping watches).
        parallel (Parallel): how each minibatch is split.
        check_limit (int, optional): how many training rows
            :attr:`check_rows` holds (dead units, bias centring, mean
            contributions). Default: None (all)
    """

    z_train: Tensor
    y_train: Tensor
    z_val: Tensor
    y_val: Tensor
    parallel: Parallel = dataclasses.field(default_factory=Parallel)
    check_limit: int | None = None

    @property
    def check_rows(self) -> Tensor:
        """The first ``check_limit`` training rows (a random subset: the rows
        are in the order of the seeded split), every row if None."""
        return self.z_train[: self.check_limit]

    def train_batches(
        self, config: SRAEConfig, gen: torch.Generator
    ) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """One pass over the shuffled training rows (``config.epoch_samples``
        of them if set), as ``(z_train, y_train, rows)``."""
        return (
            (self.z_train, self.y_train, idx)
            for idx in epoch_batches(self.z_train.shape[0], config, gen)
        )

    def encoded(self, encoders: Sequence[Encoder]) -> MemorySplit:
        """This split with the training activations passed through
        ``encoders`` once (each minibatch then indexes the result). With a
        ``check_limit`` at most the first :data:`ONE_OFF_ROWS` training rows
        (a random subset) are encoded, so that the deeper pretraining stages
        cost the same whatever ``N``."""
        if not encoders:
            return self
        rows = None if self.check_limit is None else ONE_OFF_ROWS
        z = through(encoders, self.z_train[:rows])
        return dataclasses.replace(self, z_train=z, y_train=self.y_train[:rows])

    def init_rows(self) -> tuple[Tensor, Tensor]:
        """The training rows and scores (at most the first
        :data:`ONE_OFF_ROWS` with a ``check_limit``) the x-feature start of
        ``init="contributions"`` is computed on."""
        rows = None if self.check_limit is None else ONE_OFF_ROWS
        return self.z_train[:rows], self.y_train[:rows]

    def init_predictor(self, srae: SRAE) -> None:
        """Exact least squares of the scores on the x-features (float64), on
        the training rows (at most the first :data:`ONE_OFF_ROWS` with a
        ``check_limit``: a handful of coefficients needs no more)."""
        srae.eval()
        rows = None if self.check_limit is None else ONE_OFF_ROWS
        with torch.no_grad():
            e = srae.encode_standardized(self.z_train[:rows]).double()
            design = torch.cat([e, torch.ones_like(e[:, :1])], dim=1)
            target = self.y_train[:rows].double()
            sol = torch.linalg.pinv(design) @ target  # (n + 1, K)
            srae.predictor.weight.copy_(sol[:-1].t().to(srae.predictor.weight.dtype))
            srae.predictor.bias.copy_(sol[-1].to(srae.predictor.bias.dtype))

    def evaluate(self, srae: SRAE) -> tuple[float, float]:
        """Held-out mean squared error and R² in standardised units."""
        srae.eval()
        with torch.no_grad():
            pred = srae.predict_standardized(srae.encode_standardized(self.z_val))
            return float(torch.mean((pred - self.y_val) ** 2)), r2_score(
                self.y_val, pred
            )

    def mean_contributions(self, srae: SRAE) -> Tensor:
        """Mean contribution of each x-feature to each output, ``(K, n)``."""
        with torch.no_grad():
            e = srae.encode_standardized(self.check_rows)
            return (e[:, None, :] * srae.weight[None]).mean(dim=0)
