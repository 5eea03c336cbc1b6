#!/usr/bin/env python3
r"""Linear-projection baselines: principal components and a random basis.

Both encode ``e = P (z - mu)`` with ``P`` a ``(n, D)`` matrix of orthonormal
rows and ``mu`` the mean activation, decode ``z~ = P^T e + mu`` (the
orthogonal projection onto the ``n``-dimensional subspace) and rebuild the
score with a least-squares linear head.
"""

from __future__ import annotations

from typing import Any

import torch
from sklearn.decomposition import PCA
from torch import Tensor, nn

from captum_srae.evaluation.baselines.base import (
    ConceptBaseline,
    check_fit_data,
    check_seed,
)

__all__ = ["ProjectionBaseline", "fit_pca", "fit_random_basis"]


class ProjectionBaseline(ConceptBaseline):
    r"""x-features ``e = P (z - mu)``; reconstruction ``P^T e + mu``.

    The encoder is a single ``nn.Linear`` (weight ``P``, bias 0) applied after
    subtracting ``mu``, so Grad-CAM, Excitation Backprop and Captum methods all
    apply. Build it with :func:`fit_pca` or :func:`fit_random_basis`.

    Args:
        basis (Tensor): ``P``, shape ``(n_concepts, D)``.
        mean (Tensor): ``mu``, shape ``(D,)``.
        n_outputs (int): number of explained outputs.
        pooling (str): pooling of the activations (``"avg"``/``"flatten"``).
    """

    def __init__(
        self, basis: Tensor, mean: Tensor, n_outputs: int, pooling: str = "avg"
    ) -> None:
        n, d = basis.shape
        super().__init__(d, n, n_outputs, pooling)
        self.encoder = nn.Sequential(nn.Linear(d, n))
        with torch.no_grad():
            self.encoder[0].weight.copy_(basis)
            self.encoder[0].bias.zero_()
            self.z_mean.copy_(mean)
        self.requires_grad_(False)

    @property
    def basis(self) -> Tensor:
        """The projection ``P``, shape ``(n_concepts, D)``."""
        return self.encoder[0].weight

    def _decode(self, e: Tensor) -> Tensor:
        return e @ self.basis + self.z_mean


def fit_pca(
    z: Any, y: Any, n_concepts: int = 5, *, seed: int = 0, pooling: str = "avg"
) -> ProjectionBaseline:
    r"""PCA baseline: the top ``n_concepts`` principal components of ``z``
    (scikit-learn ``PCA``, exact SVD, no whitening) and a least-squares head.

    ``encode(z)`` equals ``PCA.transform(z)`` and ``decode`` equals
    ``PCA.inverse_transform``. Among all ``n``-dimensional linear codes, PCA
    has the smallest squared reconstruction error of ``z``; it ignores ``y``.

    Args:
        z (Tensor or ndarray): activations ``(N, D)``.
        y (Tensor or ndarray): scores ``(N,)`` or ``(N, K)``.
        n_concepts (int, optional): number of components. Default: 5
        seed (int, optional): unused (the exact SVD is deterministic); kept for
            a uniform signature. Default: 0
        pooling (str, optional): pooling of the activations. Default: "avg"

    Returns:
        *ProjectionBaseline*: the fitted baseline (eval mode, CPU, float32).

    Examples::

        >>> pca = fit_pca(torch.rand(100, 16), torch.rand(100), 3)
        >>> pca.encode(torch.rand(4, 16)).shape
        torch.Size([4, 3])
    """
    z64, y64, k = check_fit_data(z, y, n_concepts, pooling)
    check_seed(seed)
    pca = PCA(n_components=k, svd_solver="full").fit(z64.numpy())
    model = ProjectionBaseline(
        torch.from_numpy(pca.components_).float(),
        torch.from_numpy(pca.mean_).float(),
        y64.shape[1],
        pooling,
    )
    return model.fit_head(z64.float(), y64)


def fit_random_basis(
    z: Any, y: Any, n_concepts: int = 5, *, seed: int = 0, pooling: str = "avg"
) -> ProjectionBaseline:
    r"""Random control: ``n_concepts`` orthonormal directions drawn uniformly
    (Haar) and a least-squares head.

    ``P^T`` is the ``Q`` factor of the QR decomposition of a ``(D, n)``
    standard normal matrix from ``torch.Generator().manual_seed(seed)``, with
    column signs fixed by ``sign(diag(R))`` so that it is Haar distributed; the
    mean ``mu`` is the mean of ``z``. A concept method should beat it.

    Args:
        z (Tensor or ndarray): activations ``(N, D)``.
        y (Tensor or ndarray): scores ``(N,)`` or ``(N, K)``.
        n_concepts (int, optional): number of directions. Default: 5
        seed (int, optional): seed of the random directions. Default: 0
        pooling (str, optional): pooling of the activations. Default: "avg"

    Returns:
        *ProjectionBaseline*: the fitted baseline (eval mode, CPU, float32).
    """
    z64, y64, k = check_fit_data(z, y, n_concepts, pooling)
    check_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(z64.shape[1], k, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(g)
    q = q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0)
    model = ProjectionBaseline(q.T.float(), z64.mean(0).float(), y64.shape[1], pooling)
    return model.fit_head(z64.float(), y64)
