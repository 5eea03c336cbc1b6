#!/usr/bin/env python3
"""The data side of :mod:`captum_srae.training.streaming`: streaming moments, the
network built from the training rows' statistics, and :class:`StreamSplit`,
the training and held-out rows of a store read ``window`` rows at a time
(the :class:`~captum_srae.training.split.TrainingData` of a streaming fit)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from captum_srae.activations.store import ActivationStore
from captum_srae.core.config import SRAEConfig
from captum_srae.core.model import SRAE
from captum_srae.training.parallel import Parallel
from captum_srae.training.split import Encoder, floor_std, through

__all__ = ["Moments", "StreamSplit", "build_from_store", "check_chunk"]


class Moments:
    """Running count, mean and sum of squared deviations per column (float64),
    combined chunk by chunk with Chan's formula.

    Args:
        width (int): the number of columns.
        device (torch.device): where the sums are kept.

    Attributes:
        n (int): rows added so far.
        mean (Tensor): per-column mean, float64.
        m2 (Tensor): per-column sum of squared deviations, float64.
    """

    def __init__(self, width: int, device: torch.device) -> None:
        self.n = 0
        self.mean = torch.zeros(width, dtype=torch.float64, device=device)
        self.m2 = torch.zeros(width, dtype=torch.float64, device=device)

    def add(self, x: Tensor) -> None:
        """Add the rows of ``x`` ``(B, width)``."""
        b = x.shape[0]
        if b == 0:
            return
        x = x.double()
        mean_b = x.mean(dim=0)
        m2_b = ((x - mean_b) ** 2).sum(dim=0)
        total = self.n + b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (b / total)
        self.m2 = self.m2 + m2_b + delta**2 * (self.n * b / total)
        self.n = total

    def std(self) -> Tensor:
        """Per-column sample standard deviation (ones below two rows)."""
        if self.n < 2:
            return torch.ones_like(self.mean)
        return (self.m2 / (self.n - 1)).sqrt()


def check_chunk(x: Tensor, name: str, start: int) -> None:
    """Reject NaN/Inf or values above 1e18 in a chunk of the store.

    Args:
        x (Tensor): the chunk ``(B, width)``.
        name (str): ``"z"`` or ``"y"``, for the message.
        start (int): the store row of the chunk's first row.

    Raises:
        ValueError: naming the first bad row of the store.
    """
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        row = start + int(bad.any(dim=1).nonzero()[0])
        kind = "NaN" if bool(torch.isnan(x).any()) else "Inf"
        raise ValueError(
            f"{name} of the store contains {kind} values (first at row {row}); "
            "remove or fix these samples before fitting"
        )
    big = x.abs() > 1e18
    if bool(big.any()):
        row = start + int(big.any(dim=1).nonzero()[0])
        raise ValueError(
            f"{name} of the store has values above 1e18 in magnitude (first at "
            f"row {row}); such values are almost always corrupt data"
        )


def build_from_store(
    store: ActivationStore, train: np.ndarray, config: SRAEConfig, window: int
) -> SRAE:
    """The network with the training split's statistics (one streaming pass).

    Args:
        store (ActivationStore): the activations and scores.
        train (ndarray): boolean mask of the training rows.
        config (SRAEConfig): the hyperparameters.
        window (int): rows read at a time.

    Returns:
        *SRAE*: the untrained network, on CPU.

    Raises:
        ValueError: on NaN/Inf or values above 1e18 in the store.
    """
    cpu = torch.device("cpu")
    z_mom, y_mom = Moments(store.dim, cpu), Moments(store.n_outputs, cpu)
    nonneg = True
    for start in range(0, len(store), window):
        stop = min(start + window, len(store))
        z, y = store.rows(np.arange(start, stop))
        check_chunk(z, "z", start)
        check_chunk(y, "y", start)
        mask = torch.from_numpy(train[start:stop])
        z, y = z[mask], y[mask]
        z_mom.add(z)
        y_mom.add(y)
        nonneg = nonneg and bool((z >= 0).all())
    decoder_relu = nonneg if config.decoder_relu is None else config.decoder_relu
    srae = SRAE(store.dim, store.n_outputs, config, decoder_relu=decoder_relu)
    if config.standardize:
        srae.z_mean.copy_(z_mom.mean)
        srae.z_scale.copy_(floor_std(z_mom.std()))
        srae.y_mean.copy_(y_mom.mean)
        srae.y_scale.copy_(floor_std(y_mom.std()))
    return srae


class StreamSplit:
    """The training and held-out rows of a store, read chunk by chunk.

    Args:
        store (ActivationStore): the activations and scores.
        srae (SRAE): the network (its standardisation is applied).
        is_val (ndarray): boolean mask of the held-out rows.
        subset_rows (ndarray): the training rows kept in memory as
            :attr:`check_rows`.
        device (torch.device): where each chunk is copied.
        parallel (Parallel): how each minibatch is split.
        window (int): store rows read at a time.
        val_rows (ndarray, optional): the held-out rows :meth:`evaluate`
            watches, read once and kept in memory (a fixed subset, so that an
            evaluation does not grow with the store). Default: None (every
            held-out row, streamed at each evaluation)
        check_contributions (bool, optional): take :meth:`mean_contributions`
            on :attr:`check_rows` instead of a pass over every training row.
            Default: False

    Attributes:
        check_rows (Tensor): the standardised ``subset_rows``.
        train_rows (ndarray): the store rows of the training side.
        val_rows (tuple[Tensor, Tensor] or None): the standardised ``(z, y)``
            of ``val_rows``, None when the held-out rows are streamed.
    """

    def __init__(
        self,
        store: ActivationStore,
        srae: SRAE,
        is_val: np.ndarray,
        subset_rows: np.ndarray,
        device: torch.device,
        parallel: Parallel,
        window: int,
        *,
        val_rows: np.ndarray | None = None,
        check_contributions: bool = False,
    ) -> None:
        self.store, self.srae, self.is_val = store, srae, is_val
        self.device, self.parallel, self.window = device, parallel, window
        self.check_contributions = check_contributions
        self.train_rows = np.flatnonzero(~is_val)
        self.check_rows, self.check_scores = self._read(subset_rows)
        self.val_rows = None if val_rows is None else self._read(val_rows)

    def _read(self, rows: np.ndarray) -> tuple[Tensor, Tensor]:
        """The standardised ``(z, y)`` of ``rows`` (in their order), read
        ``window`` rows at a time."""
        parts = [
            self._standardized(*self.store.rows(rows[i : i + self.window]))
            for i in range(0, len(rows), self.window)
        ]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def _standardized(self, z: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        srae = self.srae
        return (
            srae.standardize_z(z.to(self.device)),
            srae.standardize_y(y.to(self.device)),
        )

    def chunks(self, val: bool, raw: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
        """Standardised (or ``raw``) ``(z, y)`` of the held-out (``val``) or
        training rows, in store order, ``window`` store rows at a time."""
        n = len(self.store)
        for start in range(0, n, self.window):
            stop = min(start + self.window, n)
            mask = self.is_val[start:stop] if val else ~self.is_val[start:stop]
            rows = start + np.flatnonzero(mask)
            if not rows.size:
                continue
            z, y = self.store.rows(rows)
            if raw:
                yield z.to(self.device), y.to(self.device)
            else:
                yield self._standardized(z, y)

    def train_batches(
        self, config: SRAEConfig, gen: torch.Generator
    ) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """One epoch of standardised minibatches.

        A full epoch (``config.epoch_samples`` None or at least the training
        rows) reads blocks of ``window`` rows in a shuffled order, the
        training rows shuffled within each block. A capped epoch draws its
        ``epoch_samples`` rows uniformly from *all* training rows (so a store
        written in class order still gives mixed epochs) and reads them
        ``window`` rows at a time, each group read in store order and then
        shuffled."""
        n, cap = len(self.store), config.epoch_samples
        if cap is not None and cap < self.train_rows.size:
            draw = torch.randperm(self.train_rows.size, generator=gen)[:cap]
            picked = self.train_rows[draw.numpy()]
            groups = (
                np.sort(picked[i : i + self.window]) for i in range(0, cap, self.window)
            )
        else:
            order = torch.randperm(-(-n // self.window), generator=gen).tolist()
            groups = (
                b * self.window
                + np.flatnonzero(~self.is_val[b * self.window :][: self.window])
                for b in order
            )
        yield from self._minibatches(groups, config.batch_size, gen)

    def _minibatches(
        self, groups: Iterable[np.ndarray], size: int, gen: torch.Generator
    ) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """Minibatches of ``size`` rows from groups of store rows, each group
        read at once and shuffled; a remainder carries into the next group."""
        carry: tuple[Tensor, Tensor] | None = None
        for rows in groups:
            if not rows.size:
                continue
            z, y = self._standardized(*self.store.rows(rows))
            shuffled = torch.randperm(rows.size, generator=gen)
            z, y = z[shuffled], y[shuffled]
            if carry is not None:
                z, y = torch.cat([carry[0], z]), torch.cat([carry[1], y])
            full = z.shape[0] - z.shape[0] % size
            for i in range(0, full, size):
                yield z[i : i + size], y[i : i + size], torch.arange(size)
            carry = (z[full:], y[full:])
        if carry is not None and carry[0].shape[0]:
            k = carry[0].shape[0]
            yield carry[0], carry[1], torch.arange(k)

    def init_rows(self) -> tuple[Tensor, Tensor]:
        """The standardised check rows and their scores (the rows the
        x-feature start of ``init="contributions"`` is computed on)."""
        return self.check_rows, self.check_scores

    def encoded(self, encoders: Sequence[Encoder]) -> _EncodedStream:
        """The training minibatches, each passed through ``encoders``."""
        return _EncodedStream(self, list(encoders))

    def init_predictor(self, srae: SRAE) -> None:
        """Least squares from the normal equations ``XᵀX w = Xᵀy`` (float64),
        accumulated over the training rows."""
        srae.eval()
        width = srae.n_concepts + 1
        dev = self.device
        xtx = torch.zeros(width, width, dtype=torch.float64, device=dev)
        xty = torch.zeros(width, self.store.n_outputs, dtype=torch.float64, device=dev)
        with torch.no_grad():
            for zs, ys in self.chunks(val=False):
                e = srae.encode_standardized(zs).double()
                design = torch.cat([e, torch.ones_like(e[:, :1])], dim=1)
                xtx += design.t() @ design
                xty += design.t() @ ys.double()
            sol = torch.linalg.pinv(xtx, hermitian=True) @ xty
            srae.predictor.weight.copy_(sol[:-1].t().to(srae.predictor.weight.dtype))
            srae.predictor.bias.copy_(sol[-1].to(srae.predictor.bias.dtype))

    def evaluate(self, srae: SRAE) -> tuple[float, float]:
        """Held-out MSE and R² (standardised units) on :attr:`val_rows`, or
        accumulated over the chunks of every held-out row."""
        srae.eval()
        k = self.store.n_outputs
        sse = torch.zeros(k, dtype=torch.float64, device=self.device)
        mom = Moments(k, self.device)
        held_out = self.chunks(val=True) if self.val_rows is None else [self.val_rows]
        with torch.no_grad():
            for zs, ys in held_out:
                pred = srae.predict_standardized(srae.encode_standardized(zs))
                sse += ((pred.double() - ys.double()) ** 2).sum(dim=0)
                mom.add(ys)
        mse = float(sse.sum() / (mom.n * k))
        return mse, float((1.0 - sse / mom.m2.clamp_min(1e-12)).mean())

    def mean_contributions(self, srae: SRAE) -> Tensor:
        """``v_ck · mean_i e_ik`` over the training rows (over
        :attr:`check_rows` with ``check_contributions``), ``(K, n)``."""
        srae.eval()
        mom = Moments(srae.n_concepts, self.device)
        if self.check_contributions:
            inputs: Iterable[Tensor] = [self.check_rows]
        else:
            inputs = (zs for zs, _ in self.chunks(val=False))
        with torch.no_grad():
            for zs in inputs:
                mom.add(srae.encode_standardized(zs))
            weight = srae.weight.double()
        return (weight * mom.mean[None]).to(srae.predictor.weight.dtype)


class _EncodedStream:
    """The training minibatches of a :class:`StreamSplit` seen through the
    encoders of finished pretraining stages, one minibatch at a time."""

    def __init__(self, split: StreamSplit, encoders: list[Encoder]) -> None:
        self.split, self.encoders = split, encoders
        self.parallel = split.parallel

    @property
    def check_rows(self) -> Tensor:
        """The split's check rows through the encoders."""
        return through(self.encoders, self.split.check_rows)

    def train_batches(
        self, config: SRAEConfig, gen: torch.Generator
    ) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """The split's minibatches with ``z`` through the encoders."""
        for zs, ys, idx in self.split.train_batches(config, gen):
            yield through(self.encoders, zs), ys, idx
