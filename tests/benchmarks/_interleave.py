"""Time several functions round-robin, so that each ratio compares times
taken under the same load (the machine may be shared)."""

from __future__ import annotations

import time
from collections.abc import Callable


def interleaved(benchmark, fns: dict[str, Callable[[], object]], rounds: int) -> None:
    """Run ``fns`` ``rounds`` times in turn (after one warm-up each); store
    every time in ``benchmark.extra_info["times"]`` (seconds, by name)."""
    times: dict[str, list[float]] = {name: [] for name in fns}

    def run_all() -> None:
        for fn in fns.values():
            fn()  # warm-up
        for _ in range(rounds):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)

    benchmark.pedantic(run_all, rounds=1, iterations=1)
    benchmark.extra_info["times"] = times
