"""Partial reconstruction and stability metrics."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from captum_srae.evaluation.metrics import (
    match_features,
    partial_reconstruction,
    per_dimension_r2,
)


def test_per_dimension_r2_matches_loop_oracle():
    g = np.random.default_rng(0)
    z = g.normal(size=(25, 6))
    zh = z + g.normal(size=z.shape) * np.array([0.1, 0.5, 1.0, 2.0, 0.0, 3.0])
    got = per_dimension_r2(torch.from_numpy(zh), torch.from_numpy(z)).numpy()
    for d in range(6):
        mean = sum(z[:, d]) / 25
        sse = sum((z[i, d] - zh[i, d]) ** 2 for i in range(25))
        sst = sum((z[i, d] - mean) ** 2 for i in range(25))
        assert got[d] == pytest.approx(1 - sse / sst, rel=1e-10)
    assert got[4] == 1.0


def test_partial_reconstruction_fraction_and_constant_dims():
    z = torch.tensor([[0.0, 1.0, 5.0, 2.0], [1.0, 2.0, 5.0, 4.0], [2.0, 3.0, 5.0, 6.0]])
    zh = z.clone()
    zh[:, 1] = 2.0  # predicts the mean: R² = 0
    zh[:, 3] = torch.tensor([2.5, 4.0, 5.5])  # SSE 0.5, SST 8: R² = 0.9375
    res = partial_reconstruction(zh, z)
    assert torch.isnan(res.r2[2])  # constant dimension
    assert res.n_constant == 1
    assert res.r2[[0, 1, 3]].tolist() == pytest.approx([1.0, 0.0, 0.9375])
    assert res.fraction_explained.item() == pytest.approx(2 / 3)
    mse = torch.tensor([0.0, 2 / 3, 0.0, 0.5 / 3])
    assert res.log_penalty.item() == pytest.approx(torch.log1p(100 * mse).mean().item())
    assert partial_reconstruction(zh, z, threshold=0.95).fraction_explained.item() == (
        pytest.approx(1 / 3)
    )


def test_reconstruction_errors():
    with pytest.raises(ValueError, match="z_hat and z"):
        per_dimension_r2(torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="z has no dimension"):
        partial_reconstruction(torch.ones(3, 2), torch.ones(3, 2))
    with pytest.raises(ValueError, match="z_hat"):
        per_dimension_r2(torch.zeros(1, 2), torch.zeros(1, 2))


def test_stability_of_permuted_scaled_features():
    g = torch.Generator().manual_seed(0)
    e = torch.rand(60, 4, generator=g, dtype=torch.float64)
    perm = [2, 0, 3, 1]
    e2 = e[:, perm] * torch.tensor([3.0, 0.5, 1.0, 2.0], dtype=torch.float64) + 1.0
    m = match_features(e, e2)
    # column k of e is column perm.index(k) of e2
    assert m.pairs.tolist() == [[k, perm.index(k)] for k in range(4)]
    assert m.correlation.tolist() == pytest.approx([1.0] * 4)
    assert m.score.item() == pytest.approx(1.0)
    flipped = match_features(e, -e2)
    assert flipped.correlation.tolist() == pytest.approx([-1.0] * 4)
    assert flipped.score.item() == pytest.approx(1.0)


def test_stability_matches_brute_force_and_is_low_for_independent_fits():
    g = np.random.default_rng(1)
    a = g.normal(size=(80, 4))
    b = a[:, [1, 0, 3, 2]] + g.normal(size=(80, 4)) * 1.5
    m = match_features(torch.from_numpy(a), torch.from_numpy(b))
    c = np.corrcoef(a, b, rowvar=False)[:4, 4:]
    best = max(
        np.mean([abs(c[k, p[k]]) for k in range(4)])
        for p in itertools.permutations(range(4))
    )
    assert m.score.item() == pytest.approx(best, rel=1e-9)
    ind = match_features(torch.from_numpy(a), torch.from_numpy(g.normal(size=(80, 4))))
    assert ind.score.item() < 0.35
    wide = match_features(torch.from_numpy(a), torch.from_numpy(b[:, :2]))
    assert wide.pairs.shape == (2, 2)


def test_stability_errors():
    with pytest.raises(ValueError, match="same samples"):
        match_features(torch.rand(5, 2), torch.rand(6, 2))
    with pytest.raises(TypeError, match="x_features_b"):
        match_features(torch.rand(5, 2), "x")
