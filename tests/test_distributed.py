"""Two CPU processes (gloo) fit the same SRAE as one process cutting its
minibatches the same way, and collect the same activations."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import three_factor_problem
from torch import nn

from captum_srae import SRAEConfig, collect_activations, fit_srae
from captum_srae.training.distributed import (
    collect_activations_distributed,
    fit_srae_distributed,
)

CFG = SRAEConfig(
    n_concepts=3,
    hidden_sizes=(24, 8),
    dropout=0.0,
    pretrain_epochs=1,
    max_epochs=4,
    retune_rounds=1,
    batch_size=40,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    ).eval()


def worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        z, y = three_factor_problem(300, 32, seed=1)
        srae, history = fit_srae_distributed(z, y, CFG)
        x = torch.randn(30, 3, 6, 6, generator=torch.Generator().manual_seed(2))
        store = collect_activations_distributed(
            small_net(), "1", x, os.path.join(out, "acts"), batch_size=4
        )
        torch.save(
            {
                "state": srae.state_dict(),
                "val_r2": history.val_r2,
                "z": store.load()[0],
            },
            os.path.join(out, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ddp"))
    mp.spawn(worker, args=(free_port(), out), nprocs=2, join=True)
    return [torch.load(os.path.join(out, f"rank{r}.pt")) for r in range(2)]


def test_ddp_fit_equals_single_process_split_fit(ranks) -> None:
    z, y = three_factor_problem(300, 32, seed=1)
    ref, history = fit_srae_distributed(z, y, CFG, world_size=2)
    for got in ranks:
        for key, value in ref.state_dict().items():
            torch.testing.assert_close(got["state"][key], value, rtol=1e-4, atol=1e-5)
        assert got["val_r2"] == pytest.approx(history.val_r2, abs=1e-4)
    # the split changes the loss (it is not a mean over samples), so the
    # split fit is a different run from the plain one, of the same quality
    plain, plain_history = fit_srae(z, y, CFG, show_progress=False)
    assert abs(plain_history.val_r2 - history.val_r2) < 0.2
    assert not torch.allclose(plain.predictor.weight, ref.predictor.weight)


def test_ranks_collect_interleaved_batches(ranks) -> None:
    x = torch.randn(30, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    z_ref, _ = collect_activations(small_net(), "1", x, batch_size=4)
    # rank 0 has batches 0, 2, ..., rank 1 batches 1, 3, ... (4 rows each)
    order = [i for b in range(0, 8, 2) for i in range(4 * b, min(4 * b + 4, 30))]
    order += [i for b in range(1, 8, 2) for i in range(4 * b, min(4 * b + 4, 30))]
    for got in ranks:
        torch.testing.assert_close(got["z"], z_ref[order])


def test_world_size_one_is_the_plain_fit() -> None:
    z, y = three_factor_problem(120, 16, seed=3)
    cfg = CFG.replace(max_epochs=2)
    a, _ = fit_srae_distributed(z, y, cfg)
    b, _ = fit_srae(z, y, cfg, show_progress=False)
    for key, value in b.state_dict().items():
        torch.testing.assert_close(a.state_dict()[key], value, rtol=0, atol=0)
    with pytest.raises(ValueError, match="world_size"):
        fit_srae_distributed(z, y, cfg, world_size=0)
    with pytest.raises(ValueError, match="y must"):
        fit_srae_distributed(z)
