"""Orthogonality metrics against loop oracles and hand values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from captum_srae.core.losses import pull_away_loss
from captum_srae.evaluation.metrics import (
    correlation_offdiag_norm,
    feature_cosine,
    orthogonality,
    pull_away_value,
)


def oracle_cosine(e: np.ndarray) -> np.ndarray:
    k = e.shape[1]
    out = np.zeros((k, k))
    for a in range(k):
        for b in range(k):
            na = np.sqrt(sum(v * v for v in e[:, a]))
            nb = np.sqrt(sum(v * v for v in e[:, b]))
            if na > 0 and nb > 0:
                out[a, b] = sum(e[i, a] * e[i, b] for i in range(len(e))) / (na * nb)
    return out


def oracle_pull_away(f: np.ndarray) -> float:
    m = f.shape[0]
    total = 0.0
    for i, j in itertools.permutations(range(m), 2):
        ni, nj = np.linalg.norm(f[i]) + 1e-8, np.linalg.norm(f[j]) + 1e-8
        total += (f[i] @ f[j] / (ni * nj)) ** 2
    return total / (m * (m - 1))


def test_feature_cosine_matches_oracle_and_dead_column():
    g = np.random.default_rng(0)
    e = g.random((15, 4))
    e[:, 3] = 0.0
    got = feature_cosine(torch.from_numpy(e)).numpy()
    np.testing.assert_allclose(got, oracle_cosine(e), atol=1e-12)
    assert got[3].tolist() == [0.0] * 4


def test_orthogonal_and_parallel_columns():
    e = torch.tensor(
        [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]]
    )
    res = orthogonality(e)
    assert res.mean_abs_cosine.item() == 0.0
    assert res.max_abs_cosine.item() == 0.0
    assert res.pull_away_features.item() == pytest.approx(0.0)
    par = torch.tensor([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])
    assert orthogonality(par).max_abs_cosine.item() == pytest.approx(1.0)
    assert pull_away_value(par, axis="features").item() == pytest.approx(1.0)


def test_weighted_cosine_only_changes_sign_or_zero_weights():
    g = torch.Generator().manual_seed(1)
    e = torch.rand(30, 3, generator=g)
    v = torch.tensor([2.0, -1.0, 0.0])
    plain, weighted = feature_cosine(e), feature_cosine(e, v)
    assert weighted[0, 1].item() == pytest.approx(-plain[0, 1].item())
    assert weighted[0, 2].item() == 0.0
    res = orthogonality(e, v)
    # only the pair (0, 1) has weight: both summaries are its |cos|
    assert res.max_abs_cosine_weighted.item() == pytest.approx(abs(plain[0, 1].item()))
    assert res.mean_abs_cosine_weighted.item() == pytest.approx(abs(plain[0, 1].item()))
    assert torch.isnan(orthogonality(e).mean_abs_cosine_weighted)
    assert torch.isnan(
        orthogonality(e, torch.tensor([1.0, 0.0, 0.0])).max_abs_cosine_weighted
    )


def test_weighted_mean_cosine_matches_the_pair_loop():
    g = torch.Generator().manual_seed(2)
    e = torch.rand(40, 4, generator=g)
    v = torch.tensor([3.0, -0.5, 1.0, 0.1])
    cos = feature_cosine(e)
    num = den = 0.0
    for k in range(4):
        for m in range(k + 1, 4):
            wkm = abs(float(v[k] * v[m]))
            num += wkm * abs(float(cos[k, m]))
            den += wkm
    res = orthogonality(e, v)
    assert res.mean_abs_cosine_weighted.item() == pytest.approx(num / den, rel=1e-6)
    # unlike the plain mean, it depends on the weights
    res2 = orthogonality(e, torch.tensor([0.1, 1.0, 1.0, 3.0]))
    assert res.mean_abs_cosine_weighted.item() != pytest.approx(
        res2.mean_abs_cosine_weighted.item()
    )


def test_pull_away_matches_oracle_and_training_loss():
    g = np.random.default_rng(2)
    e = g.random((12, 5))
    v = g.normal(size=(2, 5))
    et, vt = torch.from_numpy(e), torch.from_numpy(v)
    for axis in ("images", "features"):
        plain = pull_away_value(et, axis=axis).item()
        ref = oracle_pull_away(e if axis == "images" else e.T)
        assert plain == pytest.approx(ref, rel=1e-9)
        weighted = pull_away_value(et, vt, axis=axis).item()
        ref_w = sum(
            oracle_pull_away((e * v[c]) if axis == "images" else (e * v[c]).T)
            for c in range(2)
        )
        assert weighted == pytest.approx(ref_w, rel=1e-9)
        loss = pull_away_loss(et, et, et, et, et, vt, axis=axis, v_weighting=True)
        assert weighted == pytest.approx(loss.item(), rel=1e-12)


def test_correlation_offdiag_norm():
    g = np.random.default_rng(3)
    e = g.normal(size=(40, 4))
    e[:, 3] = 1.5  # constant column: correlation 0 by convention
    c = np.corrcoef(e[:, :3], rowvar=False)
    ref = np.sqrt(sum(c[a, b] ** 2 for a in range(3) for b in range(3) if a != b))
    got = correlation_offdiag_norm(torch.from_numpy(e)).item()
    assert got == pytest.approx(ref, rel=1e-9)
    norm = correlation_offdiag_norm(torch.from_numpy(e), normalize=True).item()
    assert norm == pytest.approx(ref / np.sqrt(12), rel=1e-9)
    x = torch.randn(20, 1, dtype=torch.float64)
    twin = torch.cat([x, 2 * x + 1], dim=1)
    assert correlation_offdiag_norm(twin).item() == pytest.approx(np.sqrt(2))


def test_orthogonality_errors():
    with pytest.raises(ValueError, match="x_features"):
        orthogonality(torch.ones(5, 1))
    with pytest.raises(ValueError, match="weight"):
        orthogonality(torch.ones(5, 3), torch.ones(4))
    with pytest.raises(ValueError, match="axis"):
        pull_away_value(torch.ones(5, 3), axis="rows")
    with pytest.raises(TypeError, match="x_features"):
        feature_cosine(torch.ones(5, 3, dtype=torch.long))
