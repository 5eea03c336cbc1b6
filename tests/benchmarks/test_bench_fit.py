"""(c) Fitting 5 x-features on 20 000 x 512 activations, next to scikit-learn
NMF(5) and PCA(5) on the same data."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from sklearn import decomposition as sklearn_decomposition

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import three_factor_problem  # noqa: E402

from captum_srae import SRAEConfig, fit_srae  # noqa: E402

#: the large-data configuration documented in docs/performance.md
LARGE = SRAEConfig(
    epoch_samples=4000, pretrain_epochs=2, lr_step_epochs=8, patience=3, max_epochs=20
)


@pytest.fixture(scope="module")
def data():
    return three_factor_problem(20_000, 512, seed=0)


def once(benchmark, fn):
    return benchmark.pedantic(fn, rounds=1, iterations=1)


@pytest.mark.benchmark(group="c: fit 20000 x 512, 5 x-features")
def test_c_fit_srae_large_config(benchmark, data) -> None:
    z, y = data
    _, history = once(benchmark, lambda: fit_srae(z, y, LARGE, show_progress=False))
    benchmark.extra_info["val_r2"] = history.val_r2
    benchmark.extra_info["epochs"] = [r.epochs for r in history.rounds]
    assert history.val_r2 > 0.9


@pytest.mark.benchmark(group="c: fit 20000 x 512, 5 x-features")
def test_c_fit_srae_large_config_2_threads(benchmark, data) -> None:
    z, y = data
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _, history = once(benchmark, lambda: fit_srae(z, y, LARGE, show_progress=False))
    finally:
        torch.set_num_threads(before)
    benchmark.extra_info["val_r2"] = history.val_r2
    benchmark.extra_info["epochs"] = [r.epochs for r in history.rounds]


@pytest.mark.skipif(
    not os.environ.get("CAPTUM_SRAE_BENCH_DEFAULT_FIT"),
    reason="set CAPTUM_SRAE_BENCH_DEFAULT_FIT=1 (takes minutes)",
)
@pytest.mark.benchmark(group="c: fit 20000 x 512, 5 x-features")
def test_c_fit_srae_default_config(benchmark, data) -> None:
    z, y = data
    _, history = once(benchmark, lambda: fit_srae(z, y, show_progress=False))
    benchmark.extra_info["val_r2"] = history.val_r2
    benchmark.extra_info["epochs"] = [r.epochs for r in history.rounds]


@pytest.mark.benchmark(group="c: fit 20000 x 512, 5 x-features")
def test_c_sklearn_nmf5(benchmark, data) -> None:
    z, _ = data
    nmf = sklearn_decomposition.NMF(5, init="nndsvda", max_iter=200, random_state=0)
    once(benchmark, lambda: nmf.fit(z.numpy()))


@pytest.mark.benchmark(group="c: fit 20000 x 512, 5 x-features")
def test_c_sklearn_pca5(benchmark, data) -> None:
    z, _ = data
    pca = sklearn_decomposition.PCA(5, random_state=0)
    once(benchmark, lambda: pca.fit(z.numpy()))
