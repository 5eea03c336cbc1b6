"""Independent fits in worker processes (issue #14): ``run_jobs`` and
``SRAEAttribution.fit(n_jobs=...)`` give exactly the one-thread sequential
result, keep each job's warnings, and fall back to running here."""

from __future__ import annotations

import multiprocessing
import os
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from captum_srae import SRAEAttribution, SRAEConfig
from captum_srae.training import jobs
from captum_srae.training.jobs import resolve_n_jobs, run_jobs

CFG = SRAEConfig(
    n_concepts=3,
    hidden_sizes=(16, 8),
    pretrain_epochs=1,
    max_epochs=4,
    retune_rounds=2,
    batch_size=32,
)


def _power_and_warn(a: int, b: int) -> int:
    warnings.warn(f"job {a}", RuntimeWarning, stacklevel=2)
    return a**b


def _fail(a: int) -> int:
    if a == 2:
        raise KeyError(f"job {a} failed")
    return a


def _threads(_: int) -> int:
    return torch.get_num_threads()


def test_resolve_n_jobs() -> None:
    assert resolve_n_jobs(4, 3) == 3 and resolve_n_jobs(2, 5) == 2
    assert resolve_n_jobs(1, 5) == 1 and resolve_n_jobs(3, 0) == 1
    assert resolve_n_jobs(None, 100) == resolve_n_jobs(-1, 100) == jobs.usable_cpus()
    assert resolve_n_jobs(np.int64(-1), 100) == jobs.usable_cpus()
    assert resolve_n_jobs(np.int64(2), 100) == 2
    for bad in (0, -2):
        with pytest.raises(ValueError, match="n_jobs must be a positive int"):
            resolve_n_jobs(bad, 3)
    with pytest.raises(TypeError, match="n_jobs must be an int"):
        resolve_n_jobs(1.5, 3)  # type: ignore[arg-type]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_run_jobs_keeps_order_results_and_warnings(n_jobs: int) -> None:
    out = run_jobs(_power_and_warn, [(2, 3), (3, 2), (4, 2)], n_jobs)
    assert [r for r, _ in out] == [8, 9, 16]
    assert [w for _, w in out] == [
        [("job 2", RuntimeWarning)],
        [("job 3", RuntimeWarning)],
        [("job 4", RuntimeWarning)],
    ]


def _pid(_: int) -> int:
    return os.getpid()


def _nested(_: int) -> list[int]:
    return [r for r, _ in run_jobs(_pid, [(0,), (1,)], 2)]


def test_workers_run_one_thread_in_other_processes() -> None:
    assert jobs.will_fork(2, 2)  # Linux, no CUDA: the case under test
    pids = [r for r, _ in run_jobs(_pid, [(0,), (1,), (2,)], 2)]
    assert os.getpid() not in pids
    assert [r for r, _ in run_jobs(_threads, [(0,), (1,)], 2)] == [1, 1]
    # a call inside a worker runs in that worker
    for inner, _ in run_jobs(_nested, [(0,), (1,)], 2):
        assert len(set(inner)) == 1 and os.getpid() not in inner
    assert not jobs.will_fork(1, 5) and not jobs.will_fork(4, 1)


def test_errors_reach_the_caller_and_the_next_call_works() -> None:
    with pytest.raises(KeyError, match="job 2 failed"):
        run_jobs(_fail, [(1,), (2,), (3,)], 2)
    assert [r for r, _ in run_jobs(pow, [(2, 2), (3, 3)], 2)] == [4, 27]


def test_without_fork_the_jobs_run_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    assert not jobs.will_fork(2, 2)
    here = torch.get_num_threads()
    assert [r for r, _ in run_jobs(_threads, [(0,), (1,)], 2)] == [here, here]
    assert [r for r, _ in run_jobs(_pid, [(0,), (1,)], 2)] == [os.getpid()] * 2
    with pytest.raises(ValueError, match="n_jobs"):
        SRAEAttribution(_Net(), "body", config=CFG).fit(torch.randn(8, 6), 0, n_jobs=0)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 12), nn.ReLU())
        self.head = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def test_parallel_fit_equals_the_one_thread_sequential_fit() -> None:
    torch.manual_seed(0)
    net = _Net().eval()
    x = torch.randn(300, 6)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fits = {}
        for n_jobs in (1, 2):
            sa = SRAEAttribution(net, "body", config=CFG)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                sa.fit(x, target=[0, 2], show_progress=False, n_jobs=n_jobs)
            fits[n_jobs] = (sa, [str(w.message) for w in caught])
    finally:
        torch.set_num_threads(before)
    (seq, seq_warn), (par, par_warn) = fits[1], fits[2]
    assert sorted(par.sraes_) == [0, 2]
    for t in (0, 2):
        a, b = seq.sraes_[t].state_dict(), par.sraes_[t].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert seq.history_[t].epochs == par.history_[t].epochs
    assert par_warn == seq_warn  # same warnings, same class prefixes
    assert par_warn  # measured: class 0 misses the acceptance rule
    assert all(w.startswith(("class 0: ", "class 2: ")) for w in par_warn)
