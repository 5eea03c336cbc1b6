"""Disk-backed activations: same numbers as collect_activations, resumable,
sharded by rank, and streaming statistics equal to the in-memory ones."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from captum_srae import collect_activations
from captum_srae.activations.store import ActivationStore, collect_activations_to_disk


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 4),
    ).eval()


X = torch.randn(50, 3, 6, 6, generator=torch.Generator().manual_seed(1))


class Interrupted(Exception):
    pass


def failing_after(batches: int, data: torch.Tensor, size: int):
    """An iterable of batches that dies after ``batches`` of them."""
    for i in range(0, data.shape[0], size):
        if i // size == batches:
            raise Interrupted
        yield (data[i : i + size],)


def test_store_equals_in_memory_collection(tmp_path) -> None:
    net = small_net()
    z_ref, y_ref = collect_activations(net, "1", X, target=[2, 0], batch_size=8)
    store = collect_activations_to_disk(
        net, "1", X, tmp_path, target=[2, 0], batch_size=8, shard_size=16
    )
    assert (len(store), store.dim, store.n_outputs) == (50, 6, 2)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [s["rows"] for s in manifest["shards"]] == [16, 16, 16, 2]
    z, y = store.load()
    torch.testing.assert_close(z, z_ref)
    torch.testing.assert_close(y, y_ref)
    idx = [49, 0, 17, 16, 33]
    zr, yr = store.rows(idx)
    torch.testing.assert_close(zr, z_ref[idx])
    torch.testing.assert_close(yr, y_ref[idx])
    got = torch.cat([b[0] for b in store.batches(7, shuffle=True, seed=3)])
    order = np.random.default_rng(3).permutation(50)
    torch.testing.assert_close(got, z_ref[order])
    ds = store.dataset()
    torch.testing.assert_close(ds[17][0], z_ref[17])
    mean, std = store.stats(chunk=9)
    torch.testing.assert_close(mean, z_ref.double().mean(0))
    torch.testing.assert_close(std, z_ref.double().std(0))
    with pytest.raises(IndexError):
        store.rows([50])


def test_interrupted_collection_resumes_to_the_same_result(tmp_path) -> None:
    net = small_net()
    z_ref, y_ref = collect_activations(net, "1", X, target=1, batch_size=5)
    with pytest.raises(Interrupted):
        collect_activations_to_disk(
            net, "1", failing_after(7, X, 5), tmp_path, target=1, shard_size=10
        )
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert not manifest["complete"] and manifest["batches"] == 6  # 3 shards of 2
    with pytest.raises(ValueError, match="unfinished"):
        ActivationStore(tmp_path)
    calls = []
    net[1].register_forward_hook(lambda *a: calls.append(1))
    store = collect_activations_to_disk(
        net, "1", X, tmp_path, target=1, batch_size=5, shard_size=10
    )
    assert len(calls) == 4  # only the 4 batches after the finished shards ran
    z, y = store.load()
    torch.testing.assert_close(z, z_ref)
    torch.testing.assert_close(y, y_ref)
    with pytest.raises(ValueError, match="collected with"):
        collect_activations_to_disk(net, "1", X, tmp_path, target=2)


def test_ranks_write_their_share_of_batches(tmp_path) -> None:
    net = small_net()
    z_ref, _ = collect_activations(net, "1", X, batch_size=10)
    for rank in (1, 0):
        collect_activations_to_disk(
            net, "1", X, tmp_path, batch_size=10, rank=rank, world_size=2
        )
    z, _ = ActivationStore(tmp_path).load()
    order = [*range(0, 10), *range(20, 30), *range(40, 50)]
    order += [*range(10, 20), *range(30, 40)]
    torch.testing.assert_close(z, z_ref[order])


def test_bad_arguments(tmp_path) -> None:
    net = small_net()
    for kwargs in ({"shard_size": 0}, {"world_size": 0}, {"rank": 2, "world_size": 2}):
        with pytest.raises(ValueError):
            collect_activations_to_disk(net, "1", X, tmp_path, **kwargs)
    with pytest.raises(ValueError, match="no collected"):
        ActivationStore(tmp_path / "missing")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_collection_matches_cpu(tmp_path) -> None:
    z_ref, y_ref = collect_activations(small_net(), "1", X, target=0, batch_size=8)
    net = small_net().cuda()
    store = collect_activations_to_disk(net, "1", X, tmp_path, target=0, batch_size=8)
    z, y = store.load()
    torch.testing.assert_close(z, z_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)


def test_written_activations_read_back_in_shards(tmp_path) -> None:
    from captum_srae.activations.store import write_activations_to_disk

    z = torch.randn(23, 3, generator=torch.Generator().manual_seed(4))
    y = z[:, 0] * 2 + 1
    parts = [(z[:5], y[:5]), (z[5:17].numpy(), y[5:17].numpy()), (z[17:], y[17:])]
    store = write_activations_to_disk(parts, tmp_path / "a", shard_size=10)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert [s["rows"] for s in manifest["shards"]] == [10, 10, 3]
    assert (len(store), store.dim, store.n_outputs) == (23, 3, 1)
    zl, yl = store.load()
    torch.testing.assert_close(zl, z)
    torch.testing.assert_close(yl[:, 0], y)
    with pytest.raises(ValueError, match="already holds"):
        write_activations_to_disk(parts, tmp_path / "a")
    with pytest.raises(ValueError, match="shard_size"):
        write_activations_to_disk(parts, tmp_path / "b", shard_size=0)
    with pytest.raises(ValueError, match="batch 1"):
        write_activations_to_disk([(z, y), (z[:, :2], y)], tmp_path / "c")
    with pytest.raises(ValueError, match="batch 0"):
        write_activations_to_disk([(z, y[:4])], tmp_path / "d")
    with pytest.raises(ValueError, match="at least one row"):
        write_activations_to_disk([], tmp_path / "e")
