"""What several benchmark files share: sizes read from environment
variables, and the default fit from a disk store timed in a fresh process
(``_store_fit_probe.py``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

PROBE = os.path.join(os.path.dirname(__file__), "_store_fit_probe.py")


def env_ints(name: str, default: str) -> list[int]:
    """The positive ints of the comma-separated variable ``name`` (or of
    ``default``); empty items and zeros are skipped."""
    return [int(n) for n in os.environ.get(name, default).split(",") if n and int(n)]


def run_probe(*args: str) -> dict:
    """Run the store probe in a fresh process; its last JSON line."""
    out = subprocess.run(
        [sys.executable, PROBE, *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def store_fit(benchmark, n: int, dim: int, tmp_path: Path, *fit_args: str) -> dict:
    """Write an ``n x dim`` store (not timed), time the probe's default fit
    of it (``fit_args``: e.g. a device), remove the store; the probe's
    result, also put into ``benchmark.extra_info``."""
    folder = tmp_path / "acts"
    run_probe("write", str(n), str(dim), str(folder))
    result: dict = {}
    try:
        benchmark.pedantic(
            lambda: result.update(run_probe("fit", str(folder), *fit_args)),
            rounds=1,
            iterations=1,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    benchmark.extra_info.update(result)
    return result
