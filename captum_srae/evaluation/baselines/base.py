#!/usr/bin/env python3
r"""The interface shared by the SRAE and the baselines, and their common parts.

:class:`ConceptModel` is the protocol that
:class:`~captum_srae.attribution.SRAEAttribution`,
:func:`~captum_srae.attribution.heatmaps.gradcam_maps` and
:class:`~captum_srae.attribution.heatmaps.XFeatureModel` rely on;
:class:`~captum_srae.SRAE` satisfies it, and so does every
:class:`ConceptBaseline`.
"""

from __future__ import annotations

from typing import Any, Protocol, Self, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from captum_srae.core.config import POOLINGS, SRAEConfig
from captum_srae.core.model import SRAEOutput
from captum_srae.utils.validation import (
    activations_and_scores,
    check_finite,
    check_int,
    check_magnitude,
)

__all__ = [
    "ConceptBaseline",
    "ConceptModel",
    "check_fit_data",
    "check_seed",
    "fit_linear_head",
]


@runtime_checkable
class ConceptModel(Protocol):
    r"""What the attribution machinery needs from an explanation network.

    Raw activations ``z`` ``(N, D)`` go in, x-features ``e`` ``(N, n)`` come
    out of a differentiable :meth:`encode`; the explained scores are rebuilt
    linearly, ``predict(e) = e @ weight.T + bias`` in score units, and
    ``contributions(e)[:, c, k] = e_k * weight[c, k]``.

    Attributes:
        in_features (int): the activation dimension ``D``.
        n_outputs (int): the number ``K`` of explained outputs.
        config (SRAEConfig): read for ``pooling`` (and ``n_concepts``).
        z_mean (Tensor): a buffer whose dtype and device are the model's.
    """

    in_features: int
    n_outputs: int
    config: SRAEConfig
    z_mean: Tensor

    @property
    def n_concepts(self) -> int: ...  # noqa: D102

    @property
    def weight(self) -> Tensor: ...  # noqa: D102

    @property
    def bias(self) -> Tensor: ...  # noqa: D102

    def encode(self, z: Tensor) -> Tensor: ...  # noqa: D102

    def decode(self, e: Tensor) -> Tensor: ...  # noqa: D102

    def predict(self, e: Tensor) -> Tensor: ...  # noqa: D102

    def contributions(self, e: Tensor) -> Tensor: ...  # noqa: D102


class ConceptBaseline(nn.Module):
    r"""Base of the baselines: an encoder, a decoder and a linear score head.

    ``encode(z) = encoder((z - z_mean) / z_scale)``; ``predict(e) = e @
    weight.T + bias`` with the head fitted by least squares in score units;
    :meth:`decode` is defined by each subclass. Everything is float32 and
    differentiable in ``z``, so the heatmap machinery of the SRAE applies.

    Args:
        in_features (int): activation dimension ``D``.
        n_concepts (int): number of x-features ``n``.
        n_outputs (int): number of explained outputs ``K``.
        pooling (str): how the activations were pooled (``"avg"`` or
            ``"flatten"``); stored in :attr:`config` for the explainer.
    """

    encoder: nn.Module

    def __init__(
        self, in_features: int, n_concepts: int, n_outputs: int, pooling: str
    ) -> None:
        super().__init__()
        self.in_features = int(in_features)
        self.n_outputs = int(n_outputs)
        # only n_concepts and pooling are read; the other fields are unused
        self.config = SRAEConfig(n_concepts=int(n_concepts), pooling=pooling)  # type: ignore[arg-type]
        self.register_buffer("z_mean", torch.zeros(in_features))
        self.register_buffer("z_scale", torch.ones(in_features))
        self.register_buffer("head_weight", torch.zeros(n_outputs, n_concepts))
        self.register_buffer("head_bias", torch.zeros(n_outputs))

    @property
    def n_concepts(self) -> int:
        """Number of x-features."""
        return self.config.n_concepts

    @property
    def weight(self) -> Tensor:
        """Score-head weights ``v`` in score units, shape ``(K, n_concepts)``."""
        return self.head_weight

    @property
    def bias(self) -> Tensor:
        """Score-head bias ``b`` in score units, shape ``(K,)``."""
        return self.head_bias

    def standardize_z(self, z: Tensor) -> Tensor:
        """``(z - z_mean) / z_scale``."""
        return (z - self.z_mean) / self.z_scale

    def encode_standardized(self, zs: Tensor) -> Tensor:
        """The encoder on already standardised activations."""
        return self.encoder(zs)

    def encode(self, z: Tensor) -> Tensor:
        """Map raw activations ``(N, D)`` to x-features ``(N, n_concepts)``."""
        self.check_input(z, self.in_features, "z")
        return self.encode_standardized(self.standardize_z(z))

    def decode(self, e: Tensor) -> Tensor:
        """Map x-features ``(N, n_concepts)`` to reconstructed raw activations."""
        self.check_input(e, self.n_concepts, "e")
        return self._decode(e)

    def predict(self, e: Tensor) -> Tensor:
        """Map x-features to rebuilt scores ``e @ weight.T + bias``, ``(N, K)``."""
        self.check_input(e, self.n_concepts, "e")
        return e @ self.head_weight.T + self.head_bias

    def forward(self, z: Tensor) -> SRAEOutput:
        """Return :class:`~captum_srae.core.model.SRAEOutput` for activations ``z``."""
        e = self.encode(z)
        return SRAEOutput(e, self._decode(e), e @ self.head_weight.T + self.head_bias)

    def contributions(self, e: Tensor) -> Tensor:
        """Contributions ``e_k * v_ck``, shape ``(N, K, n_concepts)``; summed
        over the last dimension and added to :attr:`bias` they give
        :meth:`predict`."""
        self.check_input(e, self.n_concepts, "e")
        return e[:, None, :] * self.head_weight[None, :, :]

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Not supported: baselines are refitted (deterministically) instead."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot be saved; refit it with fit_baseline "
            "(fits are deterministic for a given seed)"
        )

    def _decode(self, e: Tensor) -> Tensor:
        raise NotImplementedError

    def fit_head(self, z: Tensor, y: Tensor) -> Self:
        """Fit the score head by least squares on the x-features of ``z`` and
        ``y`` (no gradient); return the model in eval mode."""
        with torch.no_grad():
            w, b = fit_linear_head(self.encode(z), y)
            self.head_weight.copy_(w)
            self.head_bias.copy_(b)
        return self.eval()

    def check_input(self, x: Any, dim: int, name: str) -> None:
        """Raise a TypeError unless ``x`` is a tensor of the model's dtype, a
        ValueError unless its shape is ``(N, dim)``; ``name`` names it."""
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dtype != self.z_mean.dtype:
            raise TypeError(
                f"{name} must have the model's dtype {self.z_mean.dtype}, got "
                f"{x.dtype} (convert with {name}.to({self.z_mean.dtype}))"
            )
        if x.dim() != 2 or x.shape[1] != dim:
            raise ValueError(f"{name} must have shape (N, {dim}), got {tuple(x.shape)}")


def fit_linear_head(e: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    r"""Least-squares score head ``min_{W,b} ||y - e W^T - b||^2`` (float64).

    The minimum-norm solution is taken, so an x-feature that is constant
    (e.g. a dead TopK atom) gets weight 0.

    Args:
        e (Tensor): x-features ``(N, n)``.
        y (Tensor): scores ``(N, K)``.

    Returns:
        *tuple[Tensor, Tensor]*: ``W`` ``(K, n)`` and ``b`` ``(K,)``, float32.
    """
    e64 = e.detach().cpu().double().numpy()
    y64 = y.detach().cpu().double().numpy()
    design = np.hstack([e64, np.ones((e64.shape[0], 1))])
    coef = np.linalg.lstsq(design, y64, rcond=None)[0]  # (n + 1, K)
    w = torch.from_numpy(coef[:-1].T.copy()).float()
    b = torch.from_numpy(coef[-1].copy()).float()
    return w, b


def check_fit_data(
    z: Any, y: Any, n_concepts: Any, pooling: Any = "avg"
) -> tuple[Tensor, Tensor, int]:
    """Check the data of a baseline fit; return ``z`` ``(N, D)`` and ``y``
    ``(N, K)`` as float64 tensors and ``n_concepts``.

    Raises:
        TypeError: if ``z``/``y`` are not floating tensors or arrays, or
            ``n_concepts`` is not an int.
        ValueError: on wrong shapes, NaN/Inf, mismatched lengths,
            ``n_concepts`` not in ``[1, D)`` or at least ``N``, or an unknown
            ``pooling``.
    """
    check_int(n_concepts, "n_concepts", minimum=None)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    z_t, y_t = activations_and_scores(z, y)
    n, d = z_t.shape
    if not 1 <= n_concepts < d:
        raise ValueError(
            f"n_concepts must be in [1, D) for activations of dimension D={d}, "
            f"got {n_concepts}"
        )
    if n <= n_concepts:
        raise ValueError(
            f"z has {n} samples; fitting {n_concepts} concepts and a score head "
            f"needs more than n_concepts={n_concepts}"
        )
    for t, name in ((z_t, "z"), (y_t, "y")):
        check_finite(t, name)
        check_magnitude(t, name)
    return z_t.double(), y_t.double(), n_concepts


def check_seed(seed: Any) -> int:
    """Return ``seed`` if it is a nonnegative int (see :func:`check_int`)."""
    return check_int(seed, "seed", minimum=0)
