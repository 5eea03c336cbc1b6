#!/usr/bin/env python3
r"""Independent fits run side by side in worker processes: :func:`run_jobs`.

One SRAE fit does not get faster with more CPU threads: its matrices are
small, and on the 2-core development machine a class of the demo took
10.2 s with one thread and 10.7 s with two. Fitting one XNN per class is a
set of independent fits, so they run in ``n_jobs`` worker processes of one
thread each, and ``k`` classes cost about ``k / n_jobs`` fits.

Workers are forked (on Linux): they inherit the imported modules and the
data, so nothing is re-imported and a user's script needs no ``if __name__ ==
"__main__"`` guard. Each worker fit runs with one torch thread, so its result
equals a sequential fit under ``torch.set_num_threads(1)`` exactly. The jobs
run in this process instead, one after the other with the current threads
(so a result can differ in the last bits from a worker's), when ``n_jobs``
resolves to 1, for one job, off Linux, inside a worker or another daemonic
process, or once CUDA is initialised (:func:`will_fork`).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import pickle
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from captum_srae.utils.validation import check_int

__all__ = ["JobResult", "resolve_n_jobs", "run_jobs", "usable_cpus", "will_fork"]

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
    wanted = usable_cpus()
    if n_jobs is not None and check_int(n_jobs, "n_jobs", minimum=None) != -1:
        wanted = int(n_jobs)
        if wanted < 1:
            raise ValueError(
                f"n_jobs must be a positive int, -1 or None (one worker per "
                f"CPU), got {n_jobs}"
            )
    return max(1, min(wanted, n_tasks))


def will_fork(n_jobs: int | None, n_tasks: int) -> bool:
    r"""Whether :func:`run_jobs` would run these jobs in worker processes.

    Only on Linux (where ``fork`` is safe), not inside a worker or another
    daemonic process, not once CUDA is initialised, and for more than one
    worker.

    Args:
        n_jobs (int or None): as for :func:`resolve_n_jobs`.
        n_tasks (int): the number of jobs.

    Returns:
        *bool*: True for worker processes.
    """
    if resolve_n_jobs(n_jobs, n_tasks) < 2 or _worker[0]:
        return False
    if not sys.platform.startswith("linux") or multiprocessing.current_process().daemon:
        return False
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    return not (torch.cuda.is_available() and torch.cuda.is_initialized())


#: Whether this process is a worker of :func:`run_jobs` (nested calls then
#: run in the worker itself).
_worker = [False]
#: The functions and jobs of the running :func:`run_jobs` calls, by key,
#: inherited by the forked workers (so the data are never pickled).
_inherited: dict[int, tuple[Callable[..., Any], Sequence[tuple]]] = {}
_keys = itertools.count()


def _worker_init() -> None:
    _worker[0] = True
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the pool


def _recorded(fn: Callable[..., Any], job: tuple) -> JobResult:
    """``fn(*job)`` and the warnings it issued."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*job)
    return out, [(str(w.message), w.category) for w in caught]


def _run_inherited(key: int, i: int) -> bytes:
    """Job ``i`` of call ``key``, pickled here (so that tensors come back as
    bytes, not through shared memory)."""
    fn, jobs = _inherited[key]
    return pickle.dumps(_recorded(fn, jobs[i]))


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
    An exception or an interrupt in this process terminates the workers.

    Args:
        fn (Callable): the function.
        jobs (Sequence[tuple]): the arguments of each call.
        n_jobs (int, optional): worker processes (see
            :func:`resolve_n_jobs`); 1 runs the jobs here, in order.
            Default: None (one per usable CPU)
        show_progress (bool, optional): a ``tqdm`` bar over the jobs.
            Default: False
        desc (str, optional): the bar's label. Default: "Fitting"

    Returns:
        *list[JobResult]*: per job, in order, its result and its warnings
        (recorded, not shown: the caller re-issues them, e.g. with the class
        they belong to).

    Raises:
        Exception: the first failing job's exception.

    Examples::

        >>> run_jobs(pow, [(2, 3), (3, 2)], n_jobs=2)
        [(8, []), (9, [])]
    """
    n = resolve_n_jobs(n_jobs, len(jobs))
    bar = tqdm(total=len(jobs), desc=desc, disable=not show_progress)
    try:
        if not will_fork(n, len(jobs)):
            out = []
            for job in jobs:
                out.append(_recorded(fn, job))
                bar.update()
            return out
        return _in_workers(fn, jobs, n, bar)
    finally:
        bar.close()


def _in_workers(
    fn: Callable[..., Any], jobs: Sequence[tuple], n: int, bar: Any
) -> list[JobResult]:
    key = next(_keys)
    _inherited[key] = (fn, jobs)  # before the workers are forked
    try:
        pool = multiprocessing.get_context("fork").Pool(n, _worker_init)
        try:
            pending = [
                pool.apply_async(_run_inherited, (key, i)) for i in range(len(jobs))
            ]
            out = []
            for result in pending:
                out.append(pickle.loads(result.get()))
                bar.update()
            pool.close()
            return out
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()
    finally:
        del _inherited[key]
