"""(f) The default fit on a disk-backed store of 50 000 and 200 000 rows of
2 048 floats: time, peak memory and held-out R² (each fit in a fresh
process, so that its peak memory is its own).

Writes up to 1.6 GB into a temporary folder, so it runs only with
``CAPTUM_SRAE_BENCH_STORE=1``::

    CAPTUM_SRAE_BENCH_STORE=1 OMP_NUM_THREADS=2 python -m pytest \
        tests/benchmarks/test_bench_store_fit.py --benchmark-only

``CAPTUM_SRAE_BENCH_STORE_ROWS`` (comma-separated) and
``CAPTUM_SRAE_BENCH_STORE_DIM`` change the sizes (e.g. a quick check with
``CAPTUM_SRAE_BENCH_STORE_ROWS=3000``). The memory to compare across ``N``
is ``peak_anon_mib`` (what the process allocated); ``peak_rss_mib`` also
counts the pages of the mapped shards the fit has read, which belong to the
file cache.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from _bench_env import env_ints, store_fit  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.environ.get("CAPTUM_SRAE_BENCH_STORE") != "1",
    reason="set CAPTUM_SRAE_BENCH_STORE=1 (writes a 1.6 GB store)",
)

ROWS = env_ints("CAPTUM_SRAE_BENCH_STORE_ROWS", "50000,200000")
DIM = int(os.environ.get("CAPTUM_SRAE_BENCH_STORE_DIM", "2048"))


@pytest.mark.parametrize("n", ROWS)
@pytest.mark.benchmark(group=f"f: default fit from a store, N x {DIM}")
def test_f_default_fit_from_store(benchmark, n, tmp_path) -> None:
    result = store_fit(benchmark, n, DIM, tmp_path)
    assert result["rows"] == n and result["dim"] == DIM
