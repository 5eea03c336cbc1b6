#!/usr/bin/env python3
r"""Independent fits run side by side in worker processes: :func:`run_jobs`.

One SRAE fit does not get faster with more CPU threads: its matrices are
small, and on the 2-core development machine a class of the demo took
10.2 s with one thread and 10.7 s with two. Fitting one XNN per class is a
set of independent fits, so they run in ``n_jobs`` worker processes of one
thread each, and ``k`` classes cost about ``k / n_jobs`` fits.

Workers are forked (Linux and other systems with ``fork``): they inherit the
imported modules and the data, so nothing is re-imported and a user's script
needs no ``if __name__ == "__main__"`` guard. Each worker fit runs with one
torch thread, so its result equals a sequential fit under
``torch.set_num_threads(1)`` exactly. The jobs run in this process instead
(one after the other, with the current threads) when ``n_jobs`` resolves to
1, when there is one job, when ``fork`` is not available, or when CUDA is
initialised (a forked child cannot use it).
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch
from tqdm.auto import tqdm

from captum_srae.utils.validation import check_int

__all__ = ["JobResult", "resolve_n_jobs", "run_jobs", "usable_cpus"]

#: What :func:`run_jobs` returns per job: its result, and the warnings it
#: issued as ``(message, category)`` pairs, for the caller to re-issue.
JobResult = tuple[Any, list[tuple[str, type[Warning]]]]


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, else the CPU count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_n_jobs(n_jobs: int | None, n_tasks: int) -> int:
    r"""The number of worker processes for ``n_tasks`` independent jobs.

    Args:
        n_jobs (int or None): None or -1 for one per usable CPU, else a
            positive number of workers.
        n_tasks (int): the number of jobs.

    Returns:
        *int*: ``min(n_jobs, n_tasks)``, at least 1.

    Raises:
        TypeError: if ``n_jobs`` is not an int or None.
        ValueError: if ``n_jobs`` is 0 or below -1.

    Examples::

        >>> resolve_n_jobs(4, 3), resolve_n_jobs(1, 3)
        (3, 1)
    """
    if n_jobs is None or (isinstance(n_jobs, int) and n_jobs == -1):
        wanted = usable_cpus()
    else:
        wanted = check_int(n_jobs, "n_jobs", minimum=None)
        if wanted < 1:
            raise ValueError(
                f"n_jobs must be a positive int, -1 or None (one worker per "
                f"CPU), got {n_jobs}"
            )
    return max(1, min(wanted, n_tasks))


def _one_thread() -> None:
    torch.set_num_threads(1)


def _recorded(fn: Callable[..., Any], job: tuple) -> JobResult:
    """``fn(*job)`` and the warnings it issued."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*job)
    return out, [(str(w.message), w.category) for w in caught]


#: The function and jobs of the running :func:`run_jobs`, inherited by the
#: forked workers (so the data are never pickled, whatever their size).
_inherited: list[tuple[Callable[..., Any], Sequence[tuple]]] = []


def _run_inherited(i: int) -> JobResult:
    fn, jobs = _inherited[-1]
    return _recorded(fn, jobs[i])


def _can_fork() -> bool:
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    return not (torch.cuda.is_available() and torch.cuda.is_initialized())


def run_jobs(
    fn: Callable[..., Any],
    jobs: Sequence[tuple],
    n_jobs: int | None = None,
    *,
    show_progress: bool = False,
    desc: str = "Fitting",
) -> list[JobResult]:
    r"""Run ``fn(*job)`` for every job, in worker processes where it pays.

    The forked workers inherit ``fn`` and ``jobs`` (nothing is pickled on
    the way in); each result and its warnings are pickled on the way back.

    Args:
        fn (Callable): the function.
        jobs (Sequence[tuple]): the arguments of each call.
        n_jobs (int, optional): worker processes (see
            :func:`resolve_n_jobs`); 1 runs the jobs here, in order.
            Default: None (one per usable CPU)
        show_progress (bool, optional): a ``tqdm`` bar over the finished jobs
            when they run in workers. Default: False
        desc (str, optional): the bar's label. Default: "Fitting"

    Returns:
        *list[JobResult]*: per job, in order, its result and its warnings
        (recorded, not shown: the caller re-issues them, e.g. with the class
        they belong to).

    Raises:
        Exception: the first failing job's exception (the other jobs are
            cancelled or finish first).

    Examples::

        >>> run_jobs(pow, [(2, 3), (3, 2)], n_jobs=2)
        [(8, []), (9, [])]
    """
    n = resolve_n_jobs(n_jobs, len(jobs))
    if n == 1 or not _can_fork():
        return [_recorded(fn, job) for job in jobs]
    context = multiprocessing.get_context("fork")
    _inherited.append((fn, jobs))  # before the workers are forked
    bar = tqdm(total=len(jobs), desc=desc, disable=not show_progress)
    try:
        with ProcessPoolExecutor(n, context, initializer=_one_thread) as pool:
            futures = [pool.submit(_run_inherited, i) for i in range(len(jobs))]
            try:
                for future in futures:
                    future.add_done_callback(lambda _f: bar.update())
                return [f.result() for f in futures]
            finally:
                for future in futures:
                    future.cancel()
    finally:
        bar.close()
        _inherited.pop()
