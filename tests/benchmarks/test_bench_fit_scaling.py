"""(c) Time of the default ``fit_srae`` as the number of rows ``N`` grows
(5 000, 20 000, 80 000, 320 000 rows of 512 activations, 2 threads): once
``N`` exceeds the work budget of an epoch the curve should flatten.

The data are generated outside the timed function. No assertion is about
time. ``CAPTUM_SRAE_BENCH_SCALING_NS`` (comma-separated) overrides the sizes
and ``CAPTUM_SRAE_BENCH_FIT_DIM`` (default 512) the dimension, e.g. a quick
check with ``CAPTUM_SRAE_BENCH_SCALING_NS=600,1200 CAPTUM_SRAE_BENCH_FIT_DIM=64``.
``report.py --plot`` draws the curve.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
from _bench_env import env_ints  # noqa: E402
from helpers import three_factor_problem  # noqa: E402

from captum_srae import SRAEConfig, fit_srae  # noqa: E402

THREADS = 2
DIM = int(os.environ.get("CAPTUM_SRAE_BENCH_FIT_DIM", "512"))
NS = env_ints("CAPTUM_SRAE_BENCH_SCALING_NS", "5000,20000,80000,320000")


@pytest.mark.parametrize("n", NS)
@pytest.mark.benchmark(group=f"c: default fit time vs N (N x {DIM}, {THREADS} threads)")
def test_c_fit_time_vs_n(benchmark, n) -> None:
    z, y = three_factor_problem(n, DIM, seed=0)  # not timed
    config = SRAEConfig()
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        _, history = benchmark.pedantic(
            lambda: fit_srae(z, y, config, show_progress=False),
            rounds=1,
            iterations=1,
        )
    finally:
        torch.set_num_threads(before)
    benchmark.extra_info.update(
        n=n,
        dim=DIM,
        torch_threads=THREADS,
        val_r2=float(history.val_r2),
        accepted=bool(history.accepted),
        rounds=[int(r.epochs) for r in history.rounds],
        n_train=int(history.n_train),
        epoch_samples=config.epoch_samples,
        val_fraction=config.val_fraction,
    )
