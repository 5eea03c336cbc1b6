"""Tests of the helpers every stage uses: R², integer checks, JSON data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import r2_score as sklearn_r2

import captum_srae
from captum_srae.evaluation import metrics
from captum_srae.utils.json_data import to_jsonable
from captum_srae.utils.stats import r2_score
from captum_srae.utils.validation import check_int


def test_one_r2_everywhere() -> None:
    assert captum_srae.r2_score is r2_score
    assert metrics.r2_score is r2_score


@pytest.mark.parametrize("shape", [(7,), (9, 1), (11, 3)])
def test_r2_equals_scikit_learn(shape: tuple[int, ...]) -> None:
    g = np.random.default_rng(sum(shape))
    y = g.normal(size=shape) * 3.0
    y_hat = y + g.normal(size=shape)
    for multioutput in ("uniform_average", "raw_values"):
        ours = r2_score(y, y_hat, multioutput=multioutput)
        ref = sklearn_r2(y, y_hat, multioutput=multioutput)
        np.testing.assert_allclose(np.asarray(ours, dtype=float), ref, rtol=1e-12)
    # argument order matters: R² is not symmetric
    assert r2_score(y, y_hat) != pytest.approx(r2_score(y_hat, y), rel=1e-6)


def test_r2_constant_column_follows_force_finite() -> None:
    y = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]])
    exact = r2_score(y, y.copy(), multioutput="raw_values")
    off = r2_score(y, y + np.array([0.5, 0.0]), multioutput="raw_values")
    assert exact.tolist() == [1.0, 1.0]
    assert off.tolist() == [0.0, 1.0]
    ref = sklearn_r2(y, y + np.array([0.5, 0.0]), multioutput="raw_values")
    np.testing.assert_allclose(off.numpy(), ref)


def test_r2_tensors_and_arrays_agree() -> None:
    y = torch.linspace(0, 1, 10, dtype=torch.float64)
    p = y**2
    assert r2_score(y, p) == pytest.approx(r2_score(y.numpy(), p.numpy()), rel=1e-15)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (([1, 2], np.ones(2)), TypeError, "y_true"),
        ((np.ones(3), np.ones(4)), ValueError, "same shape"),
        ((np.ones(1), np.ones(1)), ValueError, "at least 2 rows"),
        ((np.ones((2, 2, 2)), np.ones((2, 2, 2))), ValueError, "shape"),
        ((np.array([1.0, np.nan]), np.ones(2)), ValueError, "NaN"),
    ],
)
def test_r2_bad_input(args: tuple, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        r2_score(*args)
    with pytest.raises(ValueError, match="multioutput"):
        r2_score(np.ones(3), np.ones(3), multioutput="variance_weighted")


def test_check_int() -> None:
    assert check_int(3, "n") == 3
    assert check_int(np.int64(4), "n") == 4
    assert isinstance(check_int(np.int64(4), "n"), int)
    assert check_int(0, "seed", minimum=0) == 0
    assert check_int(-5, "offset", minimum=None) == -5
    with pytest.raises(TypeError, match="n must be an int, got bool"):
        check_int(True, "n")
    with pytest.raises(TypeError, match="n must be an int, got float"):
        check_int(2.0, "n")
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        check_int(0, "n")


def test_to_jsonable() -> None:
    data = {
        "t": torch.tensor([0.5, float("nan")]),
        1: (2, np.float64(np.inf)),
        "ok": [True, None, "x"],
        "other": object,
    }
    out = to_jsonable(data)
    assert out["t"] == [0.5, None]
    assert out["1"] == [2, None]
    assert out["ok"] == [True, None, "x"]
    assert out["other"] == str(object)
    json.dumps(out, allow_nan=False)  # strict JSON
