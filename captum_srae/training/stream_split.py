#!/usr/bin/env python3
"""The data side of :mod:`captum_srae.training.streaming`: streaming moments, the
network built from the training rows' statistics, and :class:`_StreamSplit`,
the training and held-out rows of a store read ``window`` rows at a time."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from captum_srae.activations.store import ActivationStore
from captum_srae.core.config import SRAEConfig
from captum_srae.core.model import SRAE
from captum_srae.training.fit import steps
from captum_srae.training.parallel import _Parallel


class _Moments:
    """Running count, mean and sum of squared deviations per column (float64),
    combined chunk by chunk with Chan's formula."""

    def __init__(self, width: int, device: torch.device) -> None:
        self.n = 0
        self.mean = torch.zeros(width, dtype=torch.float64, device=device)
        self.m2 = torch.zeros(width, dtype=torch.float64, device=device)

    def add(self, x: Tensor) -> None:
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
        if self.n < 2:
            return torch.ones_like(self.mean)
        return (self.m2 / (self.n - 1)).sqrt()


def _check_chunk(x: Tensor, name: str, start: int) -> None:
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


def _build(
    store: ActivationStore, train: np.ndarray, config: SRAEConfig, window: int
) -> SRAE:
    """The network with the training split's statistics (one streaming pass)."""
    cpu = torch.device("cpu")
    z_mom, y_mom = _Moments(store.dim, cpu), _Moments(store.n_outputs, cpu)
    nonneg = True
    for start in range(0, len(store), window):
        stop = min(start + window, len(store))
        z, y = store.rows(np.arange(start, stop))
        _check_chunk(z, "z", start)
        _check_chunk(y, "y", start)
        mask = torch.from_numpy(train[start:stop])
        z, y = z[mask], y[mask]
        z_mom.add(z)
        y_mom.add(y)
        nonneg = nonneg and bool((z >= 0).all())
    decoder_relu = nonneg if config.decoder_relu is None else config.decoder_relu
    srae = SRAE(store.dim, store.n_outputs, config, decoder_relu=decoder_relu)
    if config.standardize:
        srae.z_mean.copy_(z_mom.mean)
        srae.z_scale.copy_(steps._floor_std(z_mom.std()))
        srae.y_mean.copy_(y_mom.mean)
        srae.y_scale.copy_(steps._floor_std(y_mom.std()))
    return srae


class _StreamSplit:
    """The training and held-out rows of a store, read chunk by chunk; the
    data access of :func:`~captum_srae.training.steps._finetune`."""

    def __init__(
        self,
        store: ActivationStore,
        srae: SRAE,
        is_val: np.ndarray,
        subset_rows: np.ndarray,
        device: torch.device,
        parallel: _Parallel,
        window: int,
    ) -> None:
        self.store, self.srae, self.is_val = store, srae, is_val
        self.device, self.parallel, self.window = device, parallel, window
        z, _ = store.rows(subset_rows)
        with torch.no_grad():
            self.subset = srae.standardize_z(z.to(device))

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
        """One epoch of standardised minibatches: blocks of ``window`` rows in
        a shuffled order, the training rows shuffled within each block; at
        most ``config.epoch_samples`` rows if set."""
        n, size = len(self.store), config.batch_size
        cap = config.epoch_samples
        left = n if cap is None else cap
        order = torch.randperm(-(-n // self.window), generator=gen).tolist()
        carry: tuple[Tensor, Tensor] | None = None
        for block in order:
            if left <= 0:
                break
            start = block * self.window
            stop = min(start + self.window, n)
            rows = start + np.flatnonzero(~self.is_val[start:stop])
            shuffled = torch.randperm(rows.size, generator=gen).numpy()
            rows = rows[shuffled][:left]
            left -= rows.size
            z, y = self._standardized(*self.store.rows(rows))
            if carry is not None:
                z, y = torch.cat([carry[0], z]), torch.cat([carry[1], y])
            full = z.shape[0] - z.shape[0] % size
            for i in range(0, full, size):
                yield z[i : i + size], y[i : i + size], torch.arange(size)
            carry = (z[full:], y[full:])
        if carry is not None and carry[0].shape[0]:
            k = carry[0].shape[0]
            yield carry[0], carry[1], torch.arange(k)

    def train_epoch(
        self,
        srae: SRAE,
        config: SRAEConfig,
        gen: torch.Generator,
        opt: torch.optim.Optimizer,
        alphas: tuple[float, float, float],
    ) -> dict[str, float]:
        batches = self.train_batches(config, gen)
        return steps._train_epoch(srae, batches, config, opt, alphas, self.parallel)

    def revive(self, srae: SRAE, config: SRAEConfig) -> None:
        steps._revive(srae, self.subset[: config.epoch_samples])

    def evaluate(self, srae: SRAE) -> tuple[float, float]:
        """Held-out MSE and R² (standardised units), accumulated over chunks."""
        srae.eval()
        k = self.store.n_outputs
        sse = torch.zeros(k, dtype=torch.float64, device=self.device)
        mom = _Moments(k, self.device)
        with torch.no_grad():
            for zs, ys in self.chunks(val=True):
                pred = srae.predict_standardized(srae.encode_standardized(zs))
                sse += ((pred.double() - ys.double()) ** 2).sum(dim=0)
                mom.add(ys)
        mse = float(sse.sum() / (mom.n * k))
        return mse, float((1.0 - sse / mom.m2.clamp_min(1e-12)).mean())

    def mean_contributions(self, srae: SRAE) -> Tensor:
        """``v_ck · mean_i e_ik`` over the training rows, ``(K, n)``."""
        srae.eval()
        mom = _Moments(srae.n_concepts, self.device)
        with torch.no_grad():
            for zs, _ in self.chunks(val=False):
                mom.add(srae.encode_standardized(zs))
            weight = srae.weight.double()
        return (weight * mom.mean[None]).to(srae.predictor.weight.dtype)
