"""Conciseness metrics against loop oracles and hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from captum_srae.evaluation.metrics import (
    hoyer_sparsity,
    l0_sparsity,
    significant_features,
)


def oracle_significant(c: np.ndarray, fraction: float) -> list[int]:
    out = []
    for row in c:
        pos = sorted((v for v in row if v > 0), reverse=True)
        total = sum(pos)
        if total == 0:
            out.append(0)
            continue
        acc, m = 0.0, 0
        for v in pos:
            acc += v
            m += 1
            if acc >= fraction * total - 1e-12:
                break
        out.append(m)
    return out


def test_significant_features_hand_values():
    c = torch.tensor(
        [
            [3.0, 1.0, -2.0, 0.0],  # P=4, 90 % = 3.6 -> 3, 1 -> 2
            [9.0, 1.0, 0.0, 0.0],  # P=10, 9 reaches 9 -> 1
            [-1.0, -2.0, 0.0, -0.5],  # no positive contribution -> 0
            [1.0, 1.0, 1.0, 1.0],  # 3.6 needs 4
        ]
    )
    assert significant_features(c).tolist() == [2, 1, 0, 4]
    assert significant_features(c, fraction=0.5).tolist() == [1, 1, 0, 2]
    assert significant_features(c, fraction=1.0).tolist() == [2, 2, 0, 4]


def test_significant_features_match_oracle():
    g = np.random.default_rng(3)
    c = g.normal(size=(200, 6))
    c[g.random(c.shape) < 0.3] = 0.0
    for frac in (0.5, 0.9):
        got = significant_features(torch.from_numpy(c), frac).tolist()
        assert got == oracle_significant(c, frac)


def test_l0_sparsity():
    e = torch.tensor([[0.0, 1e-8, 2.0, -3.0], [0.0, 0.0, 0.0, 0.0]])
    assert l0_sparsity(e).tolist() == [2, 0]
    assert l0_sparsity(e, tol=0.0).tolist() == [3, 0]
    assert l0_sparsity(e, as_fraction=True).tolist() == [0.5, 0.0]
    with pytest.raises(ValueError, match="tol"):
        l0_sparsity(e, tol=-1.0)


def test_hoyer_sparsity_values():
    e = torch.tensor(
        [[0.0, 0.0, 5.0, 0.0], [1.0, -1.0, 1.0, 1.0], [0.0] * 4, [3.0, 4.0, 0.0, 0.0]]
    )
    h = hoyer_sparsity(e)
    expected_last = (2 - 7 / 5) / (2 - 1)  # sqrt(4) = 2, L1 = 7, L2 = 5
    assert h.tolist() == pytest.approx([1.0, 0.0, 1.0, expected_last])
    g = np.random.default_rng(4)
    x = g.random((20, 7))
    oracle = [
        (math.sqrt(7) - sum(abs(v) for v in r) / math.sqrt(sum(v * v for v in r)))
        / (math.sqrt(7) - 1)
        for r in x
    ]
    np.testing.assert_allclose(hoyer_sparsity(torch.from_numpy(x)).numpy(), oracle)


def test_conciseness_errors():
    with pytest.raises(ValueError, match="fraction"):
        significant_features(torch.ones(2, 3), fraction=0.0)
    with pytest.raises(ValueError, match="contributions"):
        significant_features(torch.ones(3))
    with pytest.raises(ValueError, match="x_features"):
        hoyer_sparsity(torch.ones(4, 1))
    with pytest.raises(ValueError, match="x_features"):
        l0_sparsity(torch.tensor([[float("nan"), 1.0]]))
