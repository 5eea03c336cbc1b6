"""(c) The default ``fit_srae`` on 20 000 x 512 activations (5 x-features),
next to scikit-learn NMF(5) and PCA(5) on the same data, and (slow, opt-in)
the acceptance rule of the new defaults side by side with the old ones.

Every benchmark here runs with 2 threads (``torch.set_num_threads(2)`` and
the same limit on the BLAS/OpenMP pools of scikit-learn), restored after.
No assertion is about time.

Environment variables:

- ``CAPTUM_SRAE_BENCH_FIT_ROWS`` (default 20000) and
  ``CAPTUM_SRAE_BENCH_FIT_DIM`` (default 512): size of the training data
  (a quick check: ``CAPTUM_SRAE_BENCH_FIT_ROWS=1500 CAPTUM_SRAE_BENCH_FIT_DIM=64``).
- ``CAPTUM_SRAE_BENCH_TEST_ROWS`` (default 4000): extra rows of the same
  problem on which the test R² is measured.
- ``CAPTUM_SRAE_BENCH_DEFAULT_FIT=1`` enables the side-by-side acceptance
  benchmark (the old defaults take minutes per fit), on the seeds of
  ``CAPTUM_SRAE_BENCH_SEEDS`` (default "0,1,2") and
  ``CAPTUM_SRAE_BENCH_ACCEPT_ROWS`` training rows (default: the fit rows).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator

import pytest
import torch
from sklearn import decomposition as sklearn_decomposition
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import three_factor_problem  # noqa: E402

from captum_srae import SRAEConfig, fit_srae  # noqa: E402
from captum_srae.core.config import QI2021_SCHEDULE  # noqa: E402

THREADS = 2
ROWS = int(os.environ.get("CAPTUM_SRAE_BENCH_FIT_ROWS", "20000"))
DIM = int(os.environ.get("CAPTUM_SRAE_BENCH_FIT_DIM", "512"))
TEST_ROWS = int(os.environ.get("CAPTUM_SRAE_BENCH_TEST_ROWS", "4000"))
ACCEPT_ROWS = int(os.environ.get("CAPTUM_SRAE_BENCH_ACCEPT_ROWS", str(ROWS)))
SEEDS = [
    int(s) for s in os.environ.get("CAPTUM_SRAE_BENCH_SEEDS", "0,1,2").split(",") if s
]
GROUP = f"c: fit {ROWS} x {DIM}, 5 x-features, {THREADS} threads"


@contextlib.contextmanager
def threads(n: int = THREADS) -> Iterator[None]:
    """Run torch and the BLAS/OpenMP pools with ``n`` threads, then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before)


def split_problem(
    rows: int, dim: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``rows`` training rows and ``TEST_ROWS`` test rows of one problem."""
    z, y = three_factor_problem(rows + TEST_ROWS, dim, seed=seed)
    return z[:rows], y[:rows], z[rows:], y[rows:]


def unseen_r2(srae, z: torch.Tensor, y: torch.Tensor) -> float:
    """R² of the fitted network's reconstructed scores on unseen rows."""
    with torch.no_grad():
        y_hat = srae(z).prediction.reshape(y.shape).double()
    y = y.double()
    return float(1 - ((y - y_hat) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def record(seconds: float | None, srae, history, z_test, y_test) -> dict:
    """What one fit achieved, as JSON-friendly values."""
    out = {
        "val_r2": float(history.val_r2),
        "test_r2": unseen_r2(srae, z_test, y_test),
        "accepted": bool(history.accepted),
        "rounds": [int(r.epochs) for r in history.rounds],
    }
    if seconds is not None:
        out["seconds"] = seconds
    return out


@pytest.fixture(scope="module")
def data():
    return split_problem(ROWS, DIM, seed=0)


def once(benchmark, fn):
    return benchmark.pedantic(fn, rounds=1, iterations=1)


def size_info(benchmark, rows: int) -> None:
    benchmark.extra_info.update(
        n=rows, dim=DIM, test_rows=TEST_ROWS, torch_threads=THREADS
    )


@pytest.mark.benchmark(group=GROUP)
def test_c_fit_srae_default(benchmark, data) -> None:
    z, y, z_test, y_test = data
    with threads():
        srae, history = once(benchmark, lambda: fit_srae(z, y, show_progress=False))
    size_info(benchmark, ROWS)
    benchmark.extra_info.update(record(None, srae, history, z_test, y_test))
    assert history.val_r2 > 0.9


@pytest.mark.benchmark(group=GROUP)
def test_c_sklearn_nmf5(benchmark, data) -> None:
    z = data[0].numpy()
    nmf = sklearn_decomposition.NMF(5, init="nndsvda", max_iter=200, random_state=0)
    with threads():
        once(benchmark, lambda: nmf.fit(z))
    size_info(benchmark, ROWS)


@pytest.mark.benchmark(group=GROUP)
def test_c_sklearn_pca5(benchmark, data) -> None:
    z = data[0].numpy()
    pca = sklearn_decomposition.PCA(5, random_state=0)
    with threads():
        once(benchmark, lambda: pca.fit(z))
    size_info(benchmark, ROWS)


@pytest.mark.skipif(
    os.environ.get("CAPTUM_SRAE_BENCH_DEFAULT_FIT") != "1",
    reason="set CAPTUM_SRAE_BENCH_DEFAULT_FIT=1 (the old defaults take minutes)",
)
@pytest.mark.benchmark(group=f"c: acceptance, new vs old defaults, {THREADS} threads")
def test_c_acceptance_side_by_side(benchmark) -> None:
    new = SRAEConfig()
    configs = {
        "new": new,
        "old": SRAEConfig(**QI2021_SCHEDULE).replace(seed=new.seed),
    }
    problems = {seed: split_problem(ACCEPT_ROWS, DIM, seed) for seed in SEEDS}
    runs: list[dict] = []

    def all_fits() -> None:
        for seed, (z, y, z_test, y_test) in problems.items():
            for label, config in configs.items():
                start = time.perf_counter()
                srae, history = fit_srae(z, y, config, show_progress=False)
                seconds = time.perf_counter() - start
                run = {"seed": seed, "config": label, "config_seed": config.seed}
                run.update(record(seconds, srae, history, z_test, y_test))
                runs.append(run)

    with threads():
        once(benchmark, all_fits)
    size_info(benchmark, ACCEPT_ROWS)
    benchmark.extra_info["seeds"] = SEEDS
    benchmark.extra_info["runs"] = runs
