"""Training faults (NaN/Inf recovery) and checkpoint/resume of ``fit_srae``."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

import captum_srae.training.epochs as epochs
import captum_srae.training.finetune as finetune
import captum_srae.training.rounds as rounds
from captum_srae import SRAEConfig, fit_srae
from captum_srae.training import TrainingDivergedError
from captum_srae.training.checkpoint import FOLDER, STATE_FILE, TENSOR_FILE

# Two re-tuning rounds (the rule is strict) so resume crosses a round boundary.
TINY = SRAEConfig(
    n_concepts=3,
    hidden_sizes=(16, 8),
    pretrain_epochs=2,
    max_epochs=5,
    patience=2,
    batch_size=32,
    retune_rounds=2,
    retune_min_ratio=0.99,
    epoch_samples=None,  # one pass over the 128 training rows an epoch
)


def _data(n: int = 160, d: int = 12, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    z = torch.relu(torch.randn(n, d, generator=g))
    y = z[:, :4].sum(1) - z[:, 4:8].sum(1)
    return z, y


def _fit(z, y, config=TINY, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fit_srae(z, y, config, show_progress=False, **kwargs)


def _assert_finite_model(srae, z):
    for name, t in srae.state_dict().items():
        assert torch.isfinite(t).all(), name
    out = srae(z)
    assert torch.isfinite(out.prediction).all()
    assert torch.isfinite(srae.encode(z)).all()


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# ------------------------------------------------------------ training faults
@pytest.mark.parametrize("lr", [1e6, 1e30])
def test_absurd_learning_rate_recovers_or_raises_clearly(lr):
    z, y = _data()
    try:
        srae, history = _fit(z, y, TINY.replace(lr=lr))
    except TrainingDivergedError as exc:
        assert "diverged" in str(exc) and "lr" in str(exc)
    else:
        _assert_finite_model(srae, z)
        assert all(math.isfinite(e["total"]) for e in history.epochs)


def _poison_loss(monkeypatch, bad_calls):
    """Make ``srae_loss`` return NaN on the given (0-based) calls."""
    real = epochs.srae_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        terms = real(*args, **kwargs)
        i = calls["n"]
        calls["n"] += 1
        if bad_calls(i):
            return terms._replace(total=terms.total * float("nan"))
        return terms

    monkeypatch.setattr(epochs, "srae_loss", poisoned)
    return calls


@pytest.mark.filterwarnings("ignore:SRAE re-tuning")
def test_nan_loss_restores_the_epoch_and_retries_with_lower_lr(monkeypatch):
    z, y = _data()
    _poison_loss(monkeypatch, lambda i: i == 7)  # inside fine-tuning epoch 2
    with pytest.warns(RuntimeWarning, match="retrying with lr="):
        srae, history = fit_srae(z, y, TINY, show_progress=False)
    _assert_finite_model(srae, z)
    [rec] = history.recoveries
    assert rec["stage"] == "finetune" and rec["attempt"] == 1
    assert rec["lr"] == pytest.approx(TINY.lr * 0.1)
    assert "non-finite" in rec["reason"]
    # The retried epoch and the following ones run at the lower rate.
    after = [e for e in history.epochs if e["round"] == 0 and e["epoch"] >= 2]
    assert after[0]["lr"] == pytest.approx(TINY.lr * 0.1)


def test_persistent_nan_raises_and_returns_no_model(monkeypatch):
    z, y = _data()
    _poison_loss(monkeypatch, lambda i: True)
    cfg = TINY.replace(nan_retries=2)
    with (
        pytest.warns(RuntimeWarning),
        pytest.raises(TrainingDivergedError, match="2 retries"),
    ):
        fit_srae(z, y, cfg, show_progress=False)


def test_nan_retries_zero_raises_at_first_fault(monkeypatch):
    z, y = _data()
    _poison_loss(monkeypatch, lambda i: True)
    with pytest.raises(TrainingDivergedError, match="finetune"):
        fit_srae(z, y, TINY.replace(nan_retries=0), show_progress=False)


@pytest.mark.filterwarnings("ignore:SRAE re-tuning")
def test_nan_weights_in_pretraining_are_restored(monkeypatch):
    z, y = _data()
    real = epochs.shuffled_batches
    calls = {"n": 0}

    def batches(n, bs, gen, cap=None):  # corrupt a weight at the 2nd pretrain epoch
        calls["n"] += 1
        if calls["n"] == 2:
            state["srae"].encoder[0].weight.data[0, 0] = float("inf")
        return real(n, bs, gen, cap)

    state = {}
    real_pretrain = rounds.pretrain

    def pretrain(ctx):
        state["srae"] = ctx.srae
        return real_pretrain(ctx)

    monkeypatch.setattr(epochs, "shuffled_batches", batches)
    monkeypatch.setattr(rounds, "pretrain", pretrain)
    with pytest.warns(RuntimeWarning, match="retrying"):
        srae, history = fit_srae(z, y, TINY, show_progress=False)
    _assert_finite_model(srae, z)
    assert history.recoveries[0]["stage"] == "pretrain"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_poisoned_activations_or_scores_are_rejected(bad):
    z, y = _data()
    z[5, 3] = bad
    with pytest.raises(ValueError, match="z contains"):
        _fit(z, y)
    z, y = _data()
    y[9] = bad
    with pytest.raises(ValueError, match="y contains"):
        _fit(z, y)


@pytest.mark.parametrize("value", [-1, 1.5, True, "3"])
def test_nan_retries_is_validated(value):
    with pytest.raises(ValueError, match="nan_retries"):
        SRAEConfig(nan_retries=value)


# --------------------------------------------------------- checkpoint/resume
class _Stop(KeyboardInterrupt):
    pass


def _interrupt_at(monkeypatch, k):
    """Raise KeyboardInterrupt at the k-th (1-based) fine-tuning epoch."""
    real = finetune.train_epoch
    calls = {"n": 0}

    def epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == k:
            raise _Stop
        return real(*args, **kwargs)

    monkeypatch.setattr(finetune, "train_epoch", epoch)
    return calls


@pytest.fixture(scope="module")
def reference():
    z, y = _data()
    return _fit(z, y)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_interrupted_fit_resumes_bit_exactly(monkeypatch, tmp_path, reference, k):
    z, y = _data()
    ref_srae, ref_hist = reference
    assert len(ref_hist.rounds) == 2 and len(ref_hist.epochs) >= 7
    _interrupt_at(monkeypatch, k)
    with pytest.raises(_Stop):
        _fit(z, y, checkpoint_dir=tmp_path)
    ckpt = tmp_path / FOLDER
    assert (ckpt / TENSOR_FILE).is_file()
    saved = json.loads((ckpt / STATE_FILE).read_text())
    assert "pickle" not in (ckpt / STATE_FILE).read_text()
    monkeypatch.undo()
    srae, hist = _fit(z, y, checkpoint_dir=tmp_path)
    # At most one epoch lost: resumed right after the last completed epoch.
    done = k - 1
    resumed = hist.resumed_from
    assert resumed is not None
    n_before = sum(
        1
        for e in ref_hist.epochs
        if (e["round"], e["epoch"]) <= (resumed["round"], resumed["epoch"])
    )
    assert n_before == done
    assert saved["format_version"] == 1
    _same_state(srae, ref_srae)
    hist.resumed_from = None
    assert hist.to_dict() == ref_hist.to_dict()
    assert not ckpt.exists()  # removed after success


def test_interrupted_fit_with_a_work_budget_resumes_bit_exactly(monkeypatch, tmp_path):
    """The default schedule's pieces: epochs of ``epoch_samples`` rows (more
    than the 128 training rows: several passes), warm-started rounds."""
    z, y = _data()
    cfg = TINY.replace(epoch_samples=200)
    ref_srae, ref_hist = _fit(z, y, cfg)
    assert len(ref_hist.rounds) == 2 and cfg.retune_warm_start
    _interrupt_at(monkeypatch, 6)  # in the second, warm-started round
    with pytest.raises(_Stop):
        _fit(z, y, cfg, checkpoint_dir=tmp_path)
    monkeypatch.undo()
    srae, hist = _fit(z, y, cfg, checkpoint_dir=tmp_path)
    assert hist.resumed_from is not None and hist.resumed_from["round"] == 1
    _same_state(srae, ref_srae)
    hist.resumed_from = None
    assert hist.to_dict() == ref_hist.to_dict()


def test_checkpoint_for_other_config_or_data_is_refused(monkeypatch, tmp_path):
    z, y = _data()
    _interrupt_at(monkeypatch, 2)
    with pytest.raises(_Stop):
        _fit(z, y, checkpoint_dir=tmp_path)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="different config"):
        _fit(z, y, TINY.replace(seed=1), checkpoint_dir=tmp_path)
    z2 = z.clone()
    z2[0, 0] += 1.0
    with pytest.raises(ValueError, match="different data"):
        _fit(z2, y, checkpoint_dir=tmp_path)
    with pytest.raises(TypeError, match="checkpoint_dir"):
        _fit(z, y, checkpoint_dir=3)


@pytest.mark.parametrize("damage", ["truncate", "flip", "json", "version"])
def test_corrupt_checkpoint_raises_clear_error(monkeypatch, tmp_path, damage):
    z, y = _data()
    _interrupt_at(monkeypatch, 2)
    with pytest.raises(_Stop):
        _fit(z, y, checkpoint_dir=tmp_path)
    monkeypatch.undo()
    ckpt = tmp_path / FOLDER
    blob = (ckpt / TENSOR_FILE).read_bytes()
    if damage == "truncate":
        (ckpt / TENSOR_FILE).write_bytes(blob[: len(blob) // 2])
    elif damage == "flip":
        (ckpt / TENSOR_FILE).write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    elif damage == "json":
        (ckpt / STATE_FILE).write_text("{not json")
    else:
        doc = json.loads((ckpt / STATE_FILE).read_text())
        doc["format_version"] = 99
        (ckpt / STATE_FILE).write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="checkpoint"):
        _fit(z, y, checkpoint_dir=tmp_path)


def test_malicious_pickle_in_checkpoint_is_never_loaded(monkeypatch, tmp_path):
    z, y = _data()
    _interrupt_at(monkeypatch, 2)
    with pytest.raises(_Stop):
        _fit(z, y, checkpoint_dir=tmp_path)
    monkeypatch.undo()
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    import pickle

    (tmp_path / FOLDER / TENSOR_FILE).write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ValueError, match="checkpoint"):
        _fit(z, y, checkpoint_dir=tmp_path)
    assert not marker.exists()


_CHILD = """
import json, sys, warnings, torch
sys.path.insert(0, {root!r})
from captum_srae import SRAEConfig, fit_srae
z, y = torch.load({data!r}, weights_only=True)
cfg = SRAEConfig.from_dict(json.loads({config!r}))
warnings.simplefilter("ignore")
fit_srae(z, y, cfg, show_progress=False, checkpoint_dir={ckpt!r})
"""


def test_killed_process_resumes_from_its_checkpoint(tmp_path):
    root = str(Path(__file__).resolve().parents[1])
    z, y = _data()
    cfg = TINY.replace(max_epochs=150, patience=150, lr_step_epochs=150)
    torch.save((z, y), tmp_path / "data.pt")  # the child imports no test module
    config = json.dumps(cfg.to_dict())
    code = _CHILD.format(
        root=root, data=str(tmp_path / "data.pt"), config=config, ckpt=str(tmp_path)
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    state = tmp_path / FOLDER / STATE_FILE
    try:
        deadline = time.monotonic() + 120
        epoch = 0
        while time.monotonic() < deadline and proc.poll() is None:
            if state.is_file():
                try:  # flattened JSON: {"__dict__": [[key, value], ...]}
                    doc = json.loads(state.read_text())
                    loop = dict(doc["state"]["__dict__"])["loop"]
                    epoch = dict(loop["__dict__"])["epoch"]
                except (OSError, ValueError, KeyError, TypeError):
                    pass
                if epoch >= 3:
                    break
            time.sleep(0.02)
        assert proc.poll() is None, "child finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert epoch >= 3
    uninterrupted, ref_hist = _fit(z, y, cfg)
    srae, hist = _fit(z, y, cfg, checkpoint_dir=tmp_path)
    assert hist.resumed_from is not None and hist.resumed_from["epoch"] >= 3
    _same_state(srae, uninterrupted)


def test_interrupt_while_saving_a_checkpoint_keeps_the_previous_one(
    monkeypatch, tmp_path, reference
):
    import captum_srae.training.checkpoint as ckpt_mod

    z, y = _data()
    real = ckpt_mod.atomic_directory
    saves = {"n": 0}

    def failing(path):  # the 4th save dies before its rename
        saves["n"] += 1
        if saves["n"] < 4:
            return real(path)

        class Dying:  # killed after the files are written, before the rename
            def __enter__(self):
                self.cm = real(path)
                return self.cm.__enter__()

            def __exit__(self, *exc):
                self.cm.__exit__(_Stop, _Stop(), None)  # removes the temp folder
                raise _Stop

        return Dying()

    monkeypatch.setattr(ckpt_mod, "atomic_directory", failing)
    with pytest.raises(_Stop):
        _fit(z, y, checkpoint_dir=tmp_path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [FOLDER]  # no temp left
    srae, hist = _fit(z, y, checkpoint_dir=tmp_path)
    assert hist.resumed_from == {"round": 0, "epoch": 2}
    _same_state(srae, reference[0])
