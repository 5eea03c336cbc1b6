"""Benchmarks run only with ``--benchmark-only`` (``tox -e bench``).

In a plain ``pytest tests`` run they are collected and skipped, so the
default run neither spends minutes on them nor fails on a slow machine.
"""

from __future__ import annotations

import os
import platform

import pytest
import torch


def pytest_collection_modifyitems(config, items) -> None:
    try:
        enabled = bool(config.getoption("benchmark_only"))
    except ValueError:  # pytest-benchmark is not installed
        enabled = False
    if enabled:
        return
    skip = pytest.mark.skip(reason="benchmark: run with --benchmark-only")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(skip)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def pytest_benchmark_update_machine_info(config, machine_info) -> None:
    """Record the CPU model, ``nproc`` and torch's threads in the JSON."""
    machine_info.update(
        cpu_model=cpu_model(),
        nproc=len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        torch_version=torch.__version__,
        omp_num_threads=os.environ.get("OMP_NUM_THREADS", ""),
    )
