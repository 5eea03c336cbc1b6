"""(g) The fit benchmarks of (c) and (f) on a CUDA device, skipped without one.

- the default ``fit_srae`` on 20 000 x 512 activations, seeds 0, 1 and 2,
  with the held-out R² on 4 000 more rows and the acceptance rule, next to
  scikit-learn NMF(5) on the same data on that machine's CPU;
- the default fit time as ``N`` grows (``CAPTUM_SRAE_BENCH_SCALING_NS``,
  default 5 000, 20 000, 80 000 and 320 000 rows);
- the default fit from a disk-backed store of 200 000 x 2 048 floats
  (``CAPTUM_SRAE_BENCH_CUDA_STORE_ROWS``, comma-separated, ``0`` to skip), in
  a fresh process, with its peak host and GPU memory.

A small fit on the device runs first, untimed, so that CUDA's start-up is
not counted. No assertion is about time::

    python -m pytest tests/benchmarks/test_bench_fit_cuda.py --benchmark-only \
        --benchmark-json=cuda.json
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
from _bench_env import env_ints, store_fit  # noqa: E402
from helpers import three_factor_problem  # noqa: E402

from captum_srae import SRAEConfig, fit_srae  # noqa: E402

#: the device (``CAPTUM_SRAE_BENCH_DEVICE``, default ``cuda``; ``cpu`` checks
#: this file on a machine without a GPU)
DEVICE = os.environ.get("CAPTUM_SRAE_BENCH_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(
    torch.device(DEVICE).type == "cuda" and not torch.cuda.is_available(),
    reason="needs a CUDA device",
)

ROWS = int(os.environ.get("CAPTUM_SRAE_BENCH_FIT_ROWS", "20000"))
DIM = int(os.environ.get("CAPTUM_SRAE_BENCH_FIT_DIM", "512"))
TEST_ROWS = int(os.environ.get("CAPTUM_SRAE_BENCH_TEST_ROWS", "4000"))
NS = env_ints("CAPTUM_SRAE_BENCH_SCALING_NS", "5000,20000,80000,320000")
STORE_ROWS = env_ints("CAPTUM_SRAE_BENCH_CUDA_STORE_ROWS", "200000")
STORE_DIM = int(os.environ.get("CAPTUM_SRAE_BENCH_STORE_DIM", "2048"))


def synchronize() -> None:
    if torch.device(DEVICE).type == "cuda":
        torch.cuda.synchronize()


def timed_fit(z: torch.Tensor, y: torch.Tensor, seed: int):
    """The default fit (with ``seed``) on the device, synchronised."""
    out = fit_srae(z, y, SRAEConfig(seed=seed), show_progress=False, device=DEVICE)
    synchronize()
    return out


def unseen_r2(srae, z: torch.Tensor, y: torch.Tensor) -> float:
    """R² of the fitted network's reconstructed scores on unseen rows."""
    with torch.no_grad():
        y_hat = srae(z.to(DEVICE)).prediction.reshape(y.shape).double().cpu()
    y = y.double()
    return float(1 - ((y - y_hat) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def device_info(benchmark) -> None:
    cuda = torch.device(DEVICE).type == "cuda"
    name = torch.cuda.get_device_name(torch.device(DEVICE)) if cuda else "cpu"
    benchmark.extra_info.update(device=name, torch=torch.__version__)


@pytest.fixture(scope="module", autouse=True)
def warm_up() -> None:
    """One small untimed fit, so that CUDA's start-up is not timed."""
    z, y = three_factor_problem(2000, 64, seed=1)
    timed_fit(z, y, seed=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.benchmark(group=f"g: CUDA fit {ROWS} x {DIM}, 5 x-features")
def test_g_fit_srae_default_cuda(benchmark, seed) -> None:
    z, y = three_factor_problem(ROWS + TEST_ROWS, DIM, seed=seed)
    srae, history = benchmark.pedantic(
        lambda: timed_fit(z[:ROWS], y[:ROWS], seed), rounds=1, iterations=1
    )
    device_info(benchmark)
    benchmark.extra_info.update(
        n=ROWS,
        dim=DIM,
        seed=seed,
        val_r2=float(history.val_r2),
        test_r2=unseen_r2(srae, z[ROWS:], y[ROWS:]),
        accepted=bool(history.accepted),
        rounds=[int(r.epochs) for r in history.rounds],
    )
    assert history.val_r2 > 0.9


@pytest.mark.benchmark(group=f"g: CUDA fit {ROWS} x {DIM}, 5 x-features")
def test_g_sklearn_nmf5_same_machine(benchmark) -> None:
    from sklearn import decomposition as sklearn_decomposition

    z = three_factor_problem(ROWS + TEST_ROWS, DIM, seed=0)[0][:ROWS].numpy()
    nmf = sklearn_decomposition.NMF(5, init="nndsvda", max_iter=200, random_state=0)
    benchmark.pedantic(lambda: nmf.fit(z), rounds=1, iterations=1)
    benchmark.extra_info.update(n=ROWS, dim=DIM, cpu_threads=torch.get_num_threads())


@pytest.mark.parametrize("n", NS)
@pytest.mark.benchmark(group=f"g: CUDA default fit time vs N (N x {DIM})")
def test_g_fit_time_vs_n_cuda(benchmark, n) -> None:
    z, y = three_factor_problem(n, DIM, seed=0)  # not timed
    _, history = benchmark.pedantic(
        lambda: timed_fit(z, y, seed=0), rounds=1, iterations=1
    )
    device_info(benchmark)
    benchmark.extra_info.update(
        n=n,
        dim=DIM,
        val_r2=float(history.val_r2),
        accepted=bool(history.accepted),
        rounds=[int(r.epochs) for r in history.rounds],
    )


@pytest.mark.parametrize("n", STORE_ROWS)
@pytest.mark.benchmark(group=f"g: CUDA default fit from a store, N x {STORE_DIM}")
def test_g_store_fit_cuda(benchmark, n, tmp_path) -> None:
    result = store_fit(benchmark, n, STORE_DIM, tmp_path, DEVICE)
    device_info(benchmark)
    assert result["rows"] == n and result["dim"] == STORE_DIM
