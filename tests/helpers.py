"""Literal reference implementations (test oracles) and synthetic problems."""

from __future__ import annotations

import math

import torch
from torch import Tensor

# two_part_problem moved to the package; re-exported for the tests that use it.
from captum_srae.evaluation.study.two_part import two_part_problem  # noqa: F401


# ---------------------------------------------------------------- loss oracles
def ref_faithfulness(y: Tensor, y_hat: Tensor) -> float:
    b, k = y.shape
    total = 0.0
    for i in range(b):
        for c in range(k):
            total += (float(y[i, c]) - float(y_hat[i, c])) ** 2
    return total / (b * k)


def ref_sparse_reconstruction(z: Tensor, z_hat: Tensor, q: float) -> float:
    b, d = z.shape
    total = 0.0
    for col in range(d):
        batch_mean = sum(
            (float(z_hat[i, col]) - float(z[i, col])) ** 2 for i in range(b)
        )
        total += math.log(1.0 + q * batch_mean / b)
    return total / d


def ref_mse(z: Tensor, z_hat: Tensor) -> float:
    b, d = z.shape
    return sum(
        (float(z_hat[i, j]) - float(z[i, j])) ** 2 for i in range(b) for j in range(d)
    ) / (b * d)


def ref_pull_away(f: Tensor, axis: str, eps: float = 1e-8) -> float:
    if axis == "correlation":  # the columns, each centred over the rows
        f = f - f.mean(dim=0, keepdim=True)
    rows = [list(map(float, r)) for r in (f if axis == "images" else f.t())]
    m = len(rows)
    if m < 2:
        return 0.0
    norms = [math.sqrt(sum(x * x for x in r)) + eps for r in rows]
    total = 0.0
    for i in range(m):
        for j in range(m):
            if i != j:
                dot = sum(a * b for a, b in zip(rows[i], rows[j], strict=True))
                total += (dot / (norms[i] * norms[j])) ** 2
    return total / (m * (m - 1))


def ref_pull_away_loss(e: Tensor, v: Tensor, axis: str, v_weighting: bool) -> float:
    if not v_weighting:
        return ref_pull_away(e, axis)
    return sum(ref_pull_away(e * v[c], axis) for c in range(v.shape[0]))


# --------------------------------------------------------- synthetic problems
def three_factor_problem(n: int = 3000, d: int = 256, seed: int = 0):
    """Post-ReLU activations driven by 3 latent factors; a nonlinear score.

    Returns ``(z, y)``; ``y = 3 sin(3 f0) + 4 f1 f2 + 2 f2^2`` is not linear in
    the activations, so the top principal components plus linear regression
    cannot reproduce it.
    """
    g = torch.Generator().manual_seed(seed)
    f = torch.rand(n, 3, generator=g) * 2 - 1
    mixing = torch.randn(3, d, generator=g)
    z = torch.relu(f @ mixing + 0.1 * torch.randn(n, d, generator=g))
    y = 3 * torch.sin(3 * f[:, 0]) + 4 * f[:, 1] * f[:, 2] + 2 * f[:, 2] ** 2
    return z, y


def holdout_split(n: int, val_fraction: float, seed: int):
    """The split fit_srae uses (same permutation)."""
    n_val = int(round(val_fraction * n))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_val:], perm[:n_val]
