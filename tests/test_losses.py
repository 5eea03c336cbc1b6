"""Each loss term against a slow literal implementation of its formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import (
    ref_faithfulness,
    ref_mse,
    ref_pull_away,
    ref_pull_away_loss,
    ref_sparse_reconstruction,
)

from captum_srae import SRAEConfig
from captum_srae.core.losses import (
    faithfulness_loss,
    mse_reconstruction_loss,
    pull_away,
    pull_away_loss,
    sparse_reconstruction_loss,
    srae_loss,
)

TOL = 1e-10


def _batch(seed: int, b: int = 7, d: int = 6, n: int = 4, k: int = 3):
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(b, d, generator=g, dtype=torch.float64) * 3
    z_hat = z + torch.randn(b, d, generator=g, dtype=torch.float64)
    e = torch.relu(torch.randn(b, n, generator=g, dtype=torch.float64))
    y = torch.randn(b, k, generator=g, dtype=torch.float64) * 5
    y_hat = y + torch.randn(b, k, generator=g, dtype=torch.float64)
    v = torch.randn(k, n, generator=g, dtype=torch.float64)
    return z, z_hat, e, y, y_hat, v


@pytest.mark.parametrize("seed", range(5))
def test_faithfulness_matches_literal_formula(seed):
    args = _batch(seed)
    got = float(faithfulness_loss(*args))
    assert got == pytest.approx(ref_faithfulness(args[3], args[4]), abs=TOL)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("q", [1.0, 100.0])
def test_sparse_reconstruction_matches_literal_formula(seed, q):
    args = _batch(seed)
    got = float(sparse_reconstruction_loss(*args, q=q))
    assert got == pytest.approx(ref_sparse_reconstruction(args[0], args[1], q), abs=TOL)


def test_sparse_reconstruction_takes_the_batch_mean_inside_the_log():
    z = torch.zeros(2, 1, dtype=torch.float64)
    z_hat = torch.tensor([[1.0], [3.0]], dtype=torch.float64)
    args = (z, z_hat, None, None, None, None)
    # batch mean of squared errors = (1 + 9) / 2 = 5 -> log(1 + 100 * 5)
    assert float(sparse_reconstruction_loss(*args, q=100.0)) == pytest.approx(
        math.log(501.0), abs=TOL
    )
    # the mean of per-sample logs would be (log(101) + log(901)) / 2 instead
    assert float(sparse_reconstruction_loss(*args, q=100.0)) != pytest.approx(
        (math.log(101.0) + math.log(901.0)) / 2, abs=1e-3
    )


def test_sparse_reconstruction_is_robust_to_one_unexplained_dimension():
    z = torch.zeros(10, 4, dtype=torch.float64)
    good = z.clone()
    bad = z.clone()
    bad[:, 3] = 1000.0  # one dimension the decoder gives up on
    log_cost = float(sparse_reconstruction_loss(z, bad, *[None] * 4, q=100.0))
    mse_cost = float(mse_reconstruction_loss(z, bad, *[None] * 4))
    assert float(sparse_reconstruction_loss(z, good, *[None] * 4)) == 0.0
    assert log_cost == pytest.approx(math.log1p(100.0 * 1e6) / 4, abs=TOL)
    assert mse_cost == pytest.approx(1e6 / 4, abs=TOL)


@pytest.mark.parametrize("seed", range(5))
def test_mse_reconstruction_matches_literal_formula(seed):
    args = _batch(seed)
    got = float(mse_reconstruction_loss(*args))
    assert got == pytest.approx(ref_mse(args[0], args[1]), abs=TOL)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("axis", ["images", "features", "correlation"])
@pytest.mark.parametrize("v_weighting", [True, False])
def test_pull_away_matches_literal_formula(seed, axis, v_weighting):
    args = _batch(seed)
    e, v = args[2], args[5]
    got = float(pull_away_loss(*args, axis=axis, v_weighting=v_weighting))
    assert got == pytest.approx(ref_pull_away_loss(e, v, axis, v_weighting), abs=TOL)


def test_pull_away_closed_form_values():
    ortho = torch.eye(3, dtype=torch.float64)
    assert float(pull_away(ortho, "images")) == pytest.approx(0.0, abs=TOL)
    same = torch.ones(4, 3, dtype=torch.float64)
    assert float(pull_away(same, "images")) == pytest.approx(1.0, abs=1e-7)
    # two rows at 60 degrees: cos^2 = 1/4, both ordered pairs, / (2 * 1)
    rows = torch.tensor([[1.0, 0.0], [0.5, math.sqrt(3) / 2]], dtype=torch.float64)
    assert float(pull_away(rows, "images")) == pytest.approx(0.25, abs=1e-7)
    # along features the columns are compared: columns (1, .5), (0, .866)
    cos = 0.5 / math.sqrt(1.25)
    assert float(pull_away(rows, "features")) == pytest.approx(cos**2, abs=1e-7)
    assert float(pull_away(torch.ones(1, 3), "images")) == 0.0
    assert float(ref_pull_away(torch.zeros(3, 2), "images")) == 0.0
    assert float(pull_away(torch.zeros(3, 2), "images")) == 0.0  # eps: no NaN


def test_correlation_pull_away_is_the_mean_squared_pearson_correlation():
    g = torch.Generator().manual_seed(3)
    e = torch.rand(64, 4, generator=g, dtype=torch.float64)
    e[:, 3] = 0.5 * e[:, 0] + 0.2 * e[:, 3]  # one correlated pair
    r = np.corrcoef(e.t().numpy())
    off = r[~np.eye(4, dtype=bool)]
    assert float(pull_away(e, "correlation")) == pytest.approx(
        float(np.mean(off**2)), abs=1e-6
    )
    # two parts present independently (each on half of the images, together
    # on a quarter): uncorrelated, so no penalty, while the cosine of the
    # nonnegative columns ("features") is 1/2
    wing = torch.tensor([1.0, 1.0, 0.0, 0.0] * 4, dtype=torch.float64)
    tail = torch.tensor([1.0, 0.0, 1.0, 0.0] * 4, dtype=torch.float64)
    both = torch.stack([wing, tail], dim=1)
    assert float(pull_away(both, "correlation")) == pytest.approx(0.0, abs=1e-12)
    assert float(pull_away(both, "features")) == pytest.approx(0.25, abs=1e-7)
    # mutually exclusive columns are anti-correlated: penalised
    only = torch.stack([wing * (1 - tail), tail * (1 - wing)], dim=1)
    assert float(pull_away(only, "features")) == pytest.approx(0.0, abs=1e-12)
    assert float(pull_away(only, "correlation")) == pytest.approx(1 / 9, abs=1e-7)


def test_pull_away_rejects_unknown_axis():
    with pytest.raises(ValueError, match="axis"):
        pull_away(torch.ones(2, 2), "rows")


def test_v_weighting_sums_over_outputs():
    e = torch.rand(5, 3, dtype=torch.float64)
    v = torch.tensor([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]], dtype=torch.float64)
    args = (None, None, e, None, None, v)
    expected = float(pull_away(e * v[0])) + float(pull_away(e * v[1]))
    assert float(pull_away_loss(*args)) == pytest.approx(expected, abs=TOL)
    assert float(pull_away_loss(*args, v_weighting=False)) == pytest.approx(
        float(pull_away(e)), abs=TOL
    )


@pytest.mark.parametrize("reconstruction", ["log", "mse"])
@pytest.mark.parametrize("axis", ["images", "features"])
def test_combiner_weights_each_term(reconstruction, axis):
    args = _batch(11)
    cfg = SRAEConfig(
        alpha_pred=2.0,
        alpha_rec=3.0,
        alpha_pt=5.0,
        q=7.0,
        reconstruction=reconstruction,
        pull_away_axis=axis,
    )
    terms = srae_loss(*args, config=cfg)
    z, z_hat, e, y, y_hat, v = args
    pred = ref_faithfulness(y, y_hat)
    rec = (
        ref_sparse_reconstruction(z, z_hat, 7.0)
        if reconstruction == "log"
        else ref_mse(z, z_hat)
    )
    pt = ref_pull_away_loss(e, v, axis, True)
    assert float(terms.prediction) == pytest.approx(pred, abs=TOL)
    assert float(terms.reconstruction) == pytest.approx(rec, abs=TOL)
    assert float(terms.pull_away) == pytest.approx(pt, abs=TOL)
    assert float(terms.total) == pytest.approx(2 * pred + 3 * rec + 5 * pt, abs=1e-9)
    over = srae_loss(*args, config=cfg, alpha_pred=1.0, alpha_rec=0.0, alpha_pt=0.0)
    assert float(over.total) == pytest.approx(pred, abs=TOL)


def test_losses_are_differentiable():
    z, z_hat, e, y, y_hat, v = _batch(3)
    e = e.clone().requires_grad_(True)
    z_hat = z_hat.clone().requires_grad_(True)
    terms = srae_loss(z, z_hat, e, y, y_hat, v, config=SRAEConfig())
    terms.total.backward()
    assert torch.isfinite(e.grad).all() and e.grad.abs().sum() > 0
    assert torch.isfinite(z_hat.grad).all() and z_hat.grad.abs().sum() > 0
    # the gradients are the right ones: analytic == finite differences (float64)
    cfg = SRAEConfig()

    def total(z_hat, e, y_hat, v):
        return srae_loss(z, z_hat, e, y, y_hat, v, config=cfg).total

    args = [t.detach().clone().requires_grad_(True) for t in (z_hat, e, y_hat, v)]
    assert torch.autograd.gradcheck(total, args, eps=1e-6, atol=1e-6, rtol=1e-4)
