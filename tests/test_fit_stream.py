"""Fitting from a disk-backed ActivationStore: the same split and statistics as
the in-memory fit, exact streamed least squares and held-out metrics, every
training row once per epoch, comparable quality, and no (N, D) array read."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import holdout_split, three_factor_problem

from captum_srae import SRAEConfig, fit_srae
from captum_srae.activations.store import ActivationStore, write_activations_to_disk
from captum_srae.core.model import SRAE
from captum_srae.training import fit_srae_streaming
from captum_srae.training.distributed import fit_srae_distributed
from captum_srae.training.parallel import Parallel
from captum_srae.training.split import MemorySplit
from captum_srae.training.stream_split import StreamSplit
from captum_srae.training.streaming import fit_store

TINY = SRAEConfig(
    n_concepts=3,
    hidden_sizes=(16, 8),
    pretrain_epochs=1,
    max_epochs=3,
    retune_rounds=1,
    batch_size=40,
)


def make_store(tmp_path, z, y, shard_size=256) -> ActivationStore:
    chunks = [(z[i : i + 100], y[i : i + 100]) for i in range(0, len(z), 100)]
    return write_activations_to_disk(chunks, tmp_path / "acts", shard_size=shard_size)


def ref_r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Plain-loop R² averaged over columns."""
    scores = []
    for c in range(y.shape[1]):
        mean = sum(y[:, c]) / len(y)
        sse = sum((a - b) ** 2 for a, b in zip(y[:, c], pred[:, c], strict=True))
        sst = sum((a - mean) ** 2 for a in y[:, c])
        scores.append(1 - sse / sst)
    return sum(scores) / len(scores)


@pytest.mark.parametrize(
    "override", [{}, {"epoch_samples": 400, "batch_size": 50, "lr": 1e-3}]
)
def test_streaming_fit_reaches_the_in_memory_quality(tmp_path, override) -> None:
    z, y = three_factor_problem(3000, 32, seed=1)
    store = make_store(tmp_path, z, y, shard_size=1024)
    cfg = SRAEConfig(
        n_concepts=5,
        hidden_sizes=(64, 32),
        pretrain_epochs=2,
        max_epochs=40,
        retune_rounds=1,
        **override,
    )
    ref, ref_hist = fit_srae(z, y, cfg, show_progress=False)
    got, hist = fit_srae(store, config=cfg, show_progress=False)
    # 40 epochs of 400 rows are a sixth of the work of 40 whole epochs
    assert ref_hist.val_r2 > (0.93 if override else 0.97)  # measured 0.943, 0.98
    # the streaming fit starts the x-features from its check rows, the
    # in-memory fit from all training rows: 0.955 against 0.944 (override 1)
    assert abs(hist.val_r2 - ref_hist.val_r2) < 0.02
    # same split, same standardisation as the in-memory fit
    train, val = holdout_split(3000, cfg.val_fraction, cfg.seed)
    assert (hist.n_train, hist.n_val) == (len(train), len(val))
    for name in ("z_mean", "z_scale", "y_mean", "y_scale"):
        torch.testing.assert_close(
            getattr(got, name), getattr(ref, name), rtol=1e-5, atol=1e-6
        )
    assert got.decoder_relu == ref.decoder_relu
    # the streamed metrics agree with a plain-loop oracle on the held-out rows
    with torch.no_grad():
        pred = got(z).prediction.double().numpy()
    y2 = y[:, None].double().numpy()
    assert hist.val_r2 == pytest.approx(ref_r2(y2[val], pred[val]), abs=1e-6)
    assert hist.train_r2 == pytest.approx(ref_r2(y2[train], pred[train]), abs=1e-6)
    rmse = float(np.sqrt(np.mean((y2[val] - pred[val]) ** 2)))
    assert hist.val_rmse == pytest.approx(rmse, rel=1e-5)


def test_the_store_is_never_loaded_and_reads_are_bounded(tmp_path, monkeypatch) -> None:
    z, y = three_factor_problem(1200, 16, seed=2)
    store = make_store(tmp_path, z, y)
    sizes: list[int] = []
    rows = ActivationStore.rows

    def spy(self, index):
        sizes.append(len(index))
        return rows(self, index)

    def no_load(self):
        raise AssertionError("the streaming fit must not load the store")

    monkeypatch.setattr(ActivationStore, "rows", spy)
    monkeypatch.setattr(ActivationStore, "load", no_load)
    srae, history = fit_srae_streaming(
        store, TINY, show_progress=False, window=128, check_rows=64
    )
    assert max(sizes) <= 128 and len(sizes) > 1200 // 128
    assert np.isfinite(history.val_r2) and history.val_r2 > 0.3
    # the distributed fit streams too
    fit_srae_distributed(store, config=TINY.replace(max_epochs=1), world_size=2)


def identity_store(tmp_path, n: int = 500, d: int = 4) -> ActivationStore:
    """Column 0 of z is the row number (to follow rows through the batches)."""
    z = torch.rand(n, d, generator=torch.Generator().manual_seed(0))
    z[:, 0] = torch.arange(n, dtype=torch.float32)
    return make_store(tmp_path, z, z[:, 1] * 2.0, shard_size=128)


def split_for(store: ActivationStore, cfg: SRAEConfig, window: int) -> StreamSplit:
    n = len(store)
    train, val = holdout_split(n, cfg.val_fraction, cfg.seed)
    is_val = np.zeros(n, dtype=bool)
    is_val[val.numpy()] = True
    srae = SRAE(store.dim, store.n_outputs, cfg)  # identity standardisation
    subset = np.sort(train[:50].numpy())
    return StreamSplit(
        store, srae, is_val, subset, torch.device("cpu"), Parallel(), window
    )


@pytest.mark.parametrize("window", [64, 1000])
def test_an_epoch_visits_every_training_row_once(tmp_path, window) -> None:
    store = identity_store(tmp_path)
    cfg = TINY.replace(batch_size=30)
    data = split_for(store, cfg, window)
    train, _ = holdout_split(500, cfg.val_fraction, cfg.seed)
    gen = torch.Generator().manual_seed(5)
    batches = list(data.train_batches(cfg, gen))
    seen = torch.cat([zb[:, 0] for zb, _, _ in batches]).long()
    assert sorted(seen.tolist()) == sorted(train.tolist())
    assert [len(b[0]) for b in batches[:-1]] == [30] * (len(batches) - 1)
    assert 0 < len(batches[-1][0]) <= 30
    for zb, yb, idx in batches:
        torch.testing.assert_close(yb[:, 0], zb[:, 1] * 2.0)
        assert idx.tolist() == list(range(len(zb)))
    if window == 1000:  # a full shuffle: not in store order
        assert seen.tolist() != sorted(seen.tolist())
    else:  # each batch spans at most two windows
        for zb, _, _ in batches:
            assert len(set((zb[:, 0] // window).long().tolist())) <= 2
    second = torch.cat([b[0][:, 0] for b in data.train_batches(cfg, gen)])
    assert not torch.equal(second.long(), seen)  # reshuffled per epoch
    capped = list(data.train_batches(cfg.replace(epoch_samples=70), gen))
    assert sum(len(b[0]) for b in capped) == 70


def test_a_capped_epoch_draws_from_the_whole_store(tmp_path) -> None:
    # a store written in order (row i holds i): with the old block reading, a
    # capped epoch came from one or two windows; now its rows are drawn
    # uniformly from every training row, without repeats within an epoch
    store = identity_store(tmp_path)
    cfg = TINY.replace(batch_size=30, epoch_samples=70)
    data = split_for(store, cfg, window=64)
    train, _ = holdout_split(500, cfg.val_fraction, cfg.seed)
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(500)
    for epoch in range(60):
        rows = torch.cat([zb[:, 0] for zb, _, _ in data.train_batches(cfg, gen)])
        rows = rows.long()
        assert rows.numel() == 70 and rows.unique().numel() == 70
        assert set(rows.tolist()) <= set(train.tolist())
        if epoch == 0:
            assert len(set((rows // 64).tolist())) >= 6  # of 8 windows
        counts[rows] += 1
    assert float(counts[train].sum()) == 60 * 70
    first, second = counts[:250].sum(), counts[250:].sum()
    n_first = int((train < 250).sum())
    expected = 60 * 70 * n_first / len(train)
    assert abs(float(first) - expected) < 0.1 * expected
    assert float(second) == 60 * 70 - float(first)


def test_streamed_least_squares_and_evaluation_match_in_memory(tmp_path) -> None:
    z, y = three_factor_problem(400, 12, seed=3)
    y = torch.stack([y, z[:, 0] - y], dim=1)  # two outputs
    store = make_store(tmp_path, z, y)
    cfg = TINY.replace(pretrain_epochs=0)
    data = split_for(store, cfg, window=96)
    srae = data.srae
    train, val = holdout_split(400, cfg.val_fraction, cfg.seed)
    mem = MemorySplit(z[train], y[train], z[val], y[val])
    mem.init_predictor(srae)
    w_ref = srae.predictor.weight.clone(), srae.predictor.bias.clone()
    with torch.no_grad():
        srae.predictor.weight.zero_()
    data.init_predictor(srae)
    torch.testing.assert_close(srae.predictor.weight, w_ref[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(srae.predictor.bias, w_ref[1], atol=1e-5, rtol=1e-4)
    mse, r2 = data.evaluate(srae)
    ref_mse, ref = mem.evaluate(srae)
    assert mse == pytest.approx(ref_mse, rel=1e-5)
    assert r2 == pytest.approx(ref, abs=1e-6)
    torch.testing.assert_close(
        data.mean_contributions(srae),
        mem.mean_contributions(srae),
        rtol=1e-4,
        atol=1e-6,
    )


def count_reads(monkeypatch) -> dict[str, list[int]]:
    """Count the rows read from any store between marks: ``epoch``, the rows
    read since the last mark at each held-out evaluation (once per
    fine-tuning epoch), and ``contrib``, the rows read by each round's mean
    contributions."""
    log: dict[str, list[int]] = {"epoch": [], "contrib": []}
    total, mark = [0], [0]
    rows, evaluate = ActivationStore.rows, StreamSplit.evaluate
    contrib = StreamSplit.mean_contributions

    def spy_rows(self, index):
        total[0] += len(index)
        return rows(self, index)

    def spy_evaluate(self, srae):
        out = evaluate(self, srae)
        log["epoch"].append(total[0] - mark[0])
        mark[0] = total[0]
        return out

    def spy_contrib(self, srae):
        out = contrib(self, srae)
        log["contrib"].append(total[0] - mark[0])
        mark[0] = total[0]
        return out

    monkeypatch.setattr(ActivationStore, "rows", spy_rows)
    monkeypatch.setattr(StreamSplit, "evaluate", spy_evaluate)
    monkeypatch.setattr(StreamSplit, "mean_contributions", spy_contrib)
    return log


@pytest.mark.filterwarnings("ignore:SRAE re-tuning did not meet")
@pytest.mark.parametrize("epoch_samples", [150, None])
def test_epoch_and_round_reads_do_not_grow_with_n(
    tmp_path, monkeypatch, epoch_samples
) -> None:
    cfg = TINY.replace(
        max_epochs=3,
        patience=10,
        retune_rounds=2,
        retune_warm_start=False,
        init="autoencoder",  # the contributions start meets even this rule
    )
    cfg = cfg.replace(epoch_samples=epoch_samples, retune_min_ratio=0.99)
    for n in (600, 2400):
        z, y = three_factor_problem(n, 16, seed=2)
        store = make_store(tmp_path / str(n), z, y)
        log = count_reads(monkeypatch)
        _, history = fit_srae_streaming(
            store, cfg, show_progress=False, window=128, check_rows=64
        )
        assert len(history.rounds) == 2 and len(log["contrib"]) == 2
        epochs = log["epoch"][1:]  # the first also holds the one-off passes
        assert len(epochs) == 5
        if epoch_samples is None:  # every training and held-out row, as before
            assert epochs == [n] * 5
            assert log["contrib"] == [history.n_train] * 2
        else:  # the epoch's training rows only: the held-out rows are in memory
            assert epochs == [epoch_samples] * 5
            assert log["contrib"] == [0, 0]
        assert np.isfinite(history.val_r2)


def test_held_out_and_check_subsets_are_the_in_memory_fits(tmp_path) -> None:
    z, y = three_factor_problem(400, 12, seed=3)
    y = y[:, None]
    store = make_store(tmp_path, z, y)
    cfg = TINY.replace(epoch_samples=50)
    train, val = holdout_split(400, cfg.val_fraction, cfg.seed)
    ref = split_for(store, cfg, window=96)
    srae, cpu = ref.srae, torch.device("cpu")
    data = StreamSplit(
        store,
        srae,
        ref.is_val,
        train[:50].numpy(),
        cpu,
        Parallel(),
        32,
        val_rows=val[:50].numpy(),
        check_contributions=True,
    )
    mem = MemorySplit(z[train], y[train], z[val[:50]], y[val[:50]], check_limit=50)
    torch.testing.assert_close(data.check_rows, mem.check_rows)
    assert data.val_rows is not None
    torch.testing.assert_close(data.val_rows[0], mem.z_val)
    mse, r2 = data.evaluate(srae)
    mem_mse, mem_r2 = mem.evaluate(srae)
    assert mse == pytest.approx(mem_mse, rel=1e-5)
    assert r2 == pytest.approx(mem_r2, abs=1e-6)
    torch.testing.assert_close(
        data.mean_contributions(srae),
        mem.mean_contributions(srae),
        rtol=1e-4,
        atol=1e-6,
    )
    # the final metrics still cover every held-out row
    got, history = fit_srae_streaming(store, cfg, show_progress=False, window=96)
    with torch.no_grad():
        pred = got(z).prediction.double().numpy()
    y2 = y.double().numpy()
    assert history.val_r2 == pytest.approx(ref_r2(y2[val], pred[val]), abs=1e-6)


def test_bad_input_is_rejected(tmp_path) -> None:
    z, y = three_factor_problem(200, 8, seed=4)
    store = make_store(tmp_path, z, y)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        fit_srae(store, config=TINY, checkpoint_dir=tmp_path / "ck")
    with pytest.raises(ValueError, match="y must be None"):
        fit_srae(store, y, TINY)
    with pytest.raises(ValueError, match="y must be given"):
        fit_srae(z, config=TINY)
    with pytest.raises(ValueError, match="window"):
        fit_srae_streaming(store, TINY, window=0)
    with pytest.raises(ValueError, match="n_concepts"):
        fit_srae(store, config=TINY.replace(n_concepts=8))
    with pytest.raises(TypeError, match="store"):
        fit_store(z, TINY, False, None, Parallel())  # type: ignore[arg-type]
    bad = z.clone()
    bad[137, 2] = float("nan")
    bad_store = write_activations_to_disk([(bad, y)], tmp_path / "bad")
    with pytest.raises(ValueError, match="row 137"):
        fit_srae(bad_store, config=TINY)
    small = write_activations_to_disk([(z[:5], y[:5])], tmp_path / "small")
    with pytest.raises(ValueError, match="held-out"):
        fit_srae(small, config=TINY)


def test_world_size_one_equals_the_plain_streaming_fit(tmp_path) -> None:
    z, y = three_factor_problem(300, 12, seed=5)
    store = make_store(tmp_path, z, y)
    cfg = TINY.replace(dropout=0.0, max_epochs=2)
    a, _ = fit_srae_distributed(store, config=cfg)
    b, _ = fit_srae(store, config=cfg, show_progress=False)
    for key, value in b.state_dict().items():
        torch.testing.assert_close(a.state_dict()[key], value, rtol=0, atol=0)


# epoch_samples below both sides of the split: every rank must draw the same
# training, check and held-out subsets
DDP_CFG = TINY.replace(
    dropout=0.0, max_epochs=2, hidden_sizes=(24, 8), epoch_samples=50
)


def ddp_worker(rank: int, port: int, path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        srae, _ = fit_srae_distributed(ActivationStore(path), config=DDP_CFG)
        torch.save(
            srae.state_dict(), os.path.join(os.path.dirname(path), f"rank{rank}.pt")
        )
    finally:
        dist.destroy_process_group()


def test_two_ddp_ranks_stream_the_store_as_the_split_fit(tmp_path) -> None:
    z, y = three_factor_problem(300, 32, seed=1)
    store = make_store(tmp_path, z, y, shard_size=100)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(ddp_worker, args=(port, str(store.path)), nprocs=2, join=True)
    ref, _ = fit_srae_distributed(store, config=DDP_CFG, world_size=2)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        for key, value in ref.state_dict().items():
            torch.testing.assert_close(got[key], value, rtol=1e-4, atol=1e-5)
