"""Faithfulness, agreement and completeness metrics against numpy oracles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from captum_srae.evaluation.metrics import (
    completeness,
    concept_scores,
    faithfulness,
    ice_relative_error,
    r2_score,
    relative_rmse,
    rmse,
    top1_agreement,
)


def oracle_scores(yh: np.ndarray, y: np.ndarray) -> tuple[list, list, list]:
    """RMSE, relative RMSE and R² per column with plain loops."""
    out_rmse, out_rel, out_r2 = [], [], []
    n, k = y.shape
    for c in range(k):
        sq = 0.0
        for i in range(n):
            sq += (yh[i, c] - y[i, c]) ** 2
        mean = sum(y[i, c] for i in range(n)) / n
        sst = sum((y[i, c] - mean) ** 2 for i in range(n))
        out_rmse.append((sq / n) ** 0.5)
        out_rel.append((sq / n) ** 0.5 / (max(y[:, c]) - min(y[:, c])))
        out_r2.append(1 - sq / sst)
    return out_rmse, out_rel, out_r2


def test_scores_match_loop_oracle():
    g = np.random.default_rng(0)
    y = g.normal(size=(30, 3)) * [1.0, 5.0, 20.0]
    yh = y + g.normal(size=y.shape)
    o_rmse, o_rel, o_r2 = oracle_scores(yh, y)
    yt, yht = torch.from_numpy(y), torch.from_numpy(yh)
    np.testing.assert_allclose(rmse(yht, yt).numpy(), o_rmse, rtol=1e-10)
    np.testing.assert_allclose(relative_rmse(yht, yt).numpy(), o_rel, rtol=1e-10)
    np.testing.assert_allclose(
        r2_score(yt, yht, multioutput="raw_values").numpy(), o_r2, rtol=1e-10
    )


def test_hand_values_and_perfect_reconstruction():
    y = torch.tensor([0.0, 1.0, 2.0, 3.0])
    yh = torch.tensor([0.0, 1.0, 2.0, 5.0])
    assert rmse(yh, y).item() == pytest.approx(1.0)  # sqrt(4/4)
    assert relative_rmse(yh, y).item() == pytest.approx(1.0 / 3.0)
    assert r2_score(y, yh) == pytest.approx(1 - 4 / 5)  # SST = 5
    assert rmse(y, y).item() == 0.0
    assert r2_score(y, y) == 1.0
    # predicting the mean gives R² = 0
    assert r2_score(y, torch.full((4,), 1.5)) == pytest.approx(0.0)


def test_constant_column_conventions():
    y = torch.ones(5, 1)
    assert r2_score(y, y) == 1.0
    assert r2_score(y, y + 1) == 0.0
    assert relative_rmse(y, y).item() == 0.0
    assert relative_rmse(y + 1, y).item() == float("inf")


def test_ice_error_sample_variant_with_floor():
    y = torch.tensor([2.0, -4.0, 0.0, 10.0])
    yh = torch.tensor([3.0, -4.0, 1.0, 8.0])
    # mean |y| = 4, floor 0.1 -> 0.4: denominators 2, 4, 0.4, 10
    expected = (1 / 2 + 0 / 4 + 1 / 0.4 + 2 / 10) / 4
    assert ice_relative_error(yh, y).item() == pytest.approx(expected)
    # floor 0.5 -> 2: the zero score is measured against 2
    expected = (1 / 2 + 0 + 1 / 2 + 2 / 10) / 4
    assert ice_relative_error(yh, y, floor=0.5).item() == pytest.approx(expected)
    assert ice_relative_error(y, y).item() == 0.0
    assert ice_relative_error(torch.zeros(3), torch.zeros(3)).item() == 0.0


def test_ice_error_mean_variant():
    y = torch.tensor([[2.0], [4.0]])
    yh = torch.tensor([[3.0], [2.0]])
    # mean |err| = 1.5, |mean y| = 3
    assert ice_relative_error(yh, y, denominator="mean").item() == pytest.approx(0.5)


class FakeExplainer:
    """A linear 'explainer': e = z[:, :2], y_hat = e @ v + b."""

    def encode(self, z):
        return z[:, :2]

    def predict(self, e):
        return e @ torch.tensor([[2.0], [-1.0]]) + 0.5


def test_faithfulness_duck_typed():
    g = torch.Generator().manual_seed(1)
    z = torch.rand(20, 4, generator=g)
    y_exact = FakeExplainer().predict(z[:, :2])
    res = faithfulness(FakeExplainer(), z, y_exact)
    assert res.rmse.item() == pytest.approx(0.0, abs=1e-6)
    assert res.r2.item() == pytest.approx(1.0)
    noisy = y_exact + 0.1 * torch.randn(20, 1, generator=g)
    res = faithfulness(FakeExplainer(), z, noisy[:, 0])
    assert res.rmse.item() == pytest.approx(rmse(y_exact, noisy).item())
    assert res.r2.item() == pytest.approx(r2_score(noisy, y_exact))
    with pytest.raises(TypeError, match="model_like"):
        faithfulness(object(), z, noisy)


def test_faithfulness_argument_errors():
    with pytest.raises(ValueError, match="y_hat and y"):
        rmse(torch.zeros(3), torch.zeros(4))
    with pytest.raises(TypeError, match="y_hat"):
        rmse([1.0, 2.0], torch.zeros(2))
    with pytest.raises(ValueError, match="y"):
        r2_score(torch.zeros(2, 2, 2), torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match="denominator"):
        ice_relative_error(torch.ones(2), torch.ones(2), denominator="max")
    with pytest.raises(ValueError, match="floor"):
        ice_relative_error(torch.ones(2), torch.ones(2), floor=-1.0)


def test_top1_agreement_hand_values_and_input_forms():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 4.0]])
    xnn = torch.tensor([[2.1, 0.9, 0.1], [3.5, 3.0, 1.0], [1.0, 0.0, 0.5]])
    # row 0 agrees, row 1 -> class 0 (disagree), row 2 -> class 0 (disagree)
    assert top1_agreement(logits, xnn).item() == pytest.approx(1 / 3)
    as_dict = {c: xnn[:, c] for c in range(3)}
    as_seq = [xnn[:, c] for c in range(3)]
    assert top1_agreement(logits, as_dict).item() == pytest.approx(1 / 3)
    assert top1_agreement(logits, as_seq).item() == pytest.approx(1 / 3)
    assert top1_agreement(logits, lambda c: xnn[:, c]).item() == pytest.approx(1 / 3)
    # a partial mapping replaces only class 0; row 1 then flips to class 0
    partial = concept_scores(logits, {0: torch.tensor([2.0, 5.0, 0.0])})
    assert partial[:, 1:].equal(logits[:, 1:])
    assert top1_agreement(logits, {0: torch.tensor([2.0, 5.0, 0.0])}).item() == (
        pytest.approx(2 / 3)
    )
    assert top1_agreement(logits, logits).item() == 1.0


def test_top1_agreement_matches_loop_oracle_and_sign_case():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(50, 4, generator=g)
    xnn = logits + 0.8 * torch.randn(50, 4, generator=g)
    agree = sum(
        int(np.argmax(logits[i].numpy()) == np.argmax(xnn[i].numpy()))
        for i in range(50)
    )
    assert top1_agreement(logits, xnn).item() == pytest.approx(agree / 50)
    one = torch.tensor([[1.0], [-2.0], [0.5]])
    assert top1_agreement(one, torch.tensor([2.0, 1.0, 0.1])).item() == pytest.approx(
        2 / 3
    )


def test_top1_agreement_errors():
    logits = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="xnn_scores"):
        top1_agreement(logits, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="xnn_scores"):
        top1_agreement(logits, {5: torch.zeros(3)})
    with pytest.raises(ValueError, match=r"xnn_scores\[0\]"):
        top1_agreement(logits, {0: torch.zeros(4)})
    with pytest.raises(TypeError, match="xnn_scores"):
        top1_agreement(logits, 3)


def test_completeness_hand_values():
    labels = torch.tensor([0, 1, 0, 1])
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    # model accuracy 3/4; concepts flip row 0 -> accuracy 2/4; chance 1/2
    xnn = logits.clone()
    xnn[0] = torch.tensor([0.0, 1.0])
    eta = completeness(labels, logits, xnn)
    assert eta.item() == pytest.approx((0.5 - 0.5) / (0.75 - 0.5))
    assert completeness(labels, logits, logits).item() == pytest.approx(1.0)
    assert completeness(labels, logits, xnn, chance=0.25).item() == pytest.approx(
        (0.5 - 0.25) / (0.75 - 0.25)
    )


def test_completeness_errors():
    labels = torch.tensor([0, 1])
    bad_model = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # accuracy 0
    with pytest.raises(ValueError, match="chance"):
        completeness(labels, bad_model, bad_model)
    with pytest.raises(TypeError, match="labels"):
        completeness(labels.float(), bad_model, bad_model)
    with pytest.raises(ValueError, match="chance"):
        completeness(labels, bad_model, bad_model, chance=1.5)
