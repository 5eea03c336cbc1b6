#!/usr/bin/env python3
"""Fitting an :class:`~captum_srae.SRAE` on precomputed activations and scores.

The procedure follows the authors' code (see ``docs/method.rst``):

1. greedy layer-wise pretraining of three one-hidden-layer autoencoders,
2. least-squares initialisation of the linear predictor,
3. joint fine-tuning with the full loss (Adam, weight decay, step schedule),
   stopped early on the held-out faithfulness,
4. an automatic re-tuning loop: when fewer than two x-features carry a
   positive mean contribution, or the second largest is below a fraction of the
   largest, ``alpha_rec`` is raised, ``alpha_pt`` lowered, and fine-tuning
   starts again from the pretrained network.

Every epoch is guarded against training faults: a NaN/Inf loss or weight
restores the state at the start of the epoch and retries it at a tenth of the
learning rate (``SRAEConfig.nan_retries`` times), else
:class:`TrainingDivergedError` is raised. With ``checkpoint_dir`` the whole
training state is checkpointed (safetensors + JSON, see
:mod:`captum_srae._checkpoint`) so that an interrupted fit can resume.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import warnings
from collections.abc import Callable
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from captum_srae._checkpoint import Checkpointer, data_fingerprint
from captum_srae._validation import as_float_tensor, check_finite, check_magnitude
from captum_srae.config import SRAEConfig
from captum_srae.losses import srae_loss
from captum_srae.model import SRAE

ArrayLike = Union[Tensor, np.ndarray]  # noqa: UP007
_State = dict[str, Any]


class TrainingDivergedError(RuntimeError):
    """Training produced NaN/Inf losses or weights and could not recover.

    Raised by :func:`fit_srae` after ``SRAEConfig.nan_retries`` retries of one
    epoch, each from the state at the start of the epoch with the learning rate
    divided by 10. No model is returned, so no explainer with NaN weights exists.
    """


class _NonFinite(Exception):
    """Internal: a non-finite loss was met inside an epoch."""


@dataclasses.dataclass
class RoundRecord:
    """One round of the re-tuning loop.

    Attributes:
        round (int): 0-based round index.
        alpha_pred, alpha_rec, alpha_pt (float): Loss weights of the round.
        epochs (int): Fine-tuning epochs run.
        best_epoch (int): Epoch (1-based) whose weights were kept.
        val_mse (float): Held-out faithfulness MSE in standardised score units.
        mean_contributions (list[list[float]]): Mean over training samples of
            ``e_k * v_ck``, shape ``(K, n_concepts)``, in score units.
        accepted (bool): Whether the acceptance rule held.
    """

    round: int
    alpha_pred: float
    alpha_rec: float
    alpha_pt: float
    epochs: int
    best_epoch: int
    val_mse: float
    mean_contributions: list[list[float]]
    accepted: bool


@dataclasses.dataclass
class TrainingHistory:
    """What :func:`fit_srae` did and measured.

    Attributes:
        pretrain (list[dict]): One entry per pretraining epoch
            (``stage``, ``epoch``, ``loss``).
        epochs (list[dict]): One entry per fine-tuning epoch (``round``,
            ``epoch``, ``lr``, mean training ``total``, ``prediction``,
            ``reconstruction``, ``pull_away``, and held-out ``val_mse``,
            ``val_r2``).
        rounds (list[RoundRecord]): The re-tuning rounds.
        chosen_round (int): Index of the round whose model was returned.
        accepted (bool): Whether that round met the acceptance rule.
        n_train, n_val (int): Sizes of the split.
        decoder_relu (bool): Whether the decoder ends with a ReLU.
        train_r2, val_r2 (float): R^2 of the reconstructed scores (mean over
            outputs) on the training and held-out splits.
        val_rmse (float): Held-out RMSE in the units of the scores.
        recoveries (list[dict]): One entry per training fault that was
            recovered from (``stage`` "pretrain" or "finetune", pretraining
            ``layer`` or fine-tuning ``round``, ``epoch``, ``attempt``,
            ``reason`` and the new ``lr``).
        resumed_from (dict or None): ``{"round", "epoch"}`` of the checkpoint
            this fit resumed from, or None.
    """

    pretrain: list[dict[str, float]] = dataclasses.field(default_factory=list)
    epochs: list[dict[str, float]] = dataclasses.field(default_factory=list)
    rounds: list[RoundRecord] = dataclasses.field(default_factory=list)
    chosen_round: int = 0
    accepted: bool = False
    n_train: int = 0
    n_val: int = 0
    decoder_relu: bool = True
    train_r2: float = float("nan")
    val_r2: float = float("nan")
    val_rmse: float = float("nan")
    recoveries: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    resumed_from: dict[str, int] | None = None

    @property
    def alphas(self) -> tuple[float, float, float]:
        """Loss weights ``(alpha_pred, alpha_rec, alpha_pt)`` of the chosen round."""
        r = self.rounds[self.chosen_round]
        return (r.alpha_pred, r.alpha_rec, r.alpha_pt)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dictionary."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingHistory:
        """Rebuild a history from :meth:`to_dict` output."""
        kwargs = dict(data)
        kwargs["rounds"] = [RoundRecord(**r) for r in kwargs.get("rounds", [])]
        return cls(**kwargs)


def r2_score(y: Tensor, y_hat: Tensor) -> float:
    """Coefficient of determination, averaged over the columns of ``y``."""
    y = y.reshape(y.shape[0], -1).double()
    y_hat = y_hat.reshape(y.shape[0], -1).double()
    sse = ((y - y_hat) ** 2).sum(dim=0)
    sst = ((y - y.mean(dim=0)) ** 2).sum(dim=0)
    r2 = 1.0 - sse / sst.clamp_min(1e-12)
    return float(r2.mean())


def acceptance(mean_contributions: Tensor, config: SRAEConfig) -> bool:
    """The authors' acceptance rule, applied to every explained output.

    For each output, at least ``retune_min_positive`` x-features must have a
    positive mean contribution, and the second largest mean contribution must be
    at least ``retune_min_ratio`` times the largest.

    Args:
        mean_contributions (Tensor): Shape ``(K, n_concepts)``.
        config (SRAEConfig): Supplies the two thresholds.
    """
    for row in mean_contributions:
        if int((row > 0).sum()) < config.retune_min_positive:
            return False
        top = torch.sort(row, descending=True).values
        if top.numel() >= 2 and top[1] < config.retune_min_ratio * top[0]:
            return False
    return True


def fit_srae(
    z: ArrayLike,
    y: ArrayLike,
    config: SRAEConfig | None = None,
    *,
    show_progress: bool = True,
    device: str | torch.device | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
) -> tuple[SRAE, TrainingHistory]:
    r"""Fit an SRAE explanation network on activations and the scores they explain.

    Args:
        z (Tensor or ndarray): Activations, shape ``(N, D)``, floating point.
        y (Tensor or ndarray): The model's pre-softmax scores of the explained
            outputs, shape ``(N,)`` or ``(N, K)``, floating point.
        config (SRAEConfig, optional): Hyperparameters. Default: SRAEConfig()
        show_progress (bool, optional): Show ``tqdm`` progress bars.
            Default: True
        device (str or torch.device, optional): Where to train. Default: CPU
        checkpoint_dir (str or PathLike, optional): Folder for a crash-safe
            checkpoint of the whole training state (weights, optimizer, RNG
            states, counters, history; safetensors + JSON, never pickle),
            written atomically at the end of pretraining and after every
            fine-tuning epoch. If it already holds a checkpoint of a fit with
            the same data and config, training resumes from it (at most one
            epoch is lost) and, on CPU, ends with the same model as an
            uninterrupted fit. The checkpoint is deleted when the fit succeeds.
            Default: None (no checkpoint)

    Returns:
        *tuple[SRAE, TrainingHistory]*: the fitted network (in eval mode, on
        ``device``) mapping raw activations to raw scores, and the history.

    Raises:
        TypeError: if ``z``/``y`` are not floating tensors or arrays.
        ValueError: on NaN/Inf or values above 1e18 in magnitude, mismatched
            lengths, wrong ranks, too few samples for the held-out split, or
            ``n_concepts >= D``; or if
            ``checkpoint_dir`` holds a corrupt checkpoint or one written for
            other data or another config.
        TrainingDivergedError: if NaN/Inf losses or weights persist after
            ``config.nan_retries`` retries of an epoch at a lower learning rate.

    Examples::

        >>> import torch
        >>> from captum_srae import SRAEConfig, fit_srae
        >>> z = torch.rand(500, 64)
        >>> y = z[:, :8].sum(1) - z[:, 8:16].sum(1)
        >>> srae, history = fit_srae(z, y, SRAEConfig(hidden_sizes=(64, 32)),
        ...                          show_progress=False)
        >>> srae.encode(z).shape
        torch.Size([500, 5])
    """
    config = SRAEConfig() if config is None else config
    if not isinstance(config, SRAEConfig):
        raise TypeError(f"config must be an SRAEConfig, got {type(config).__name__}")
    z_t, y_t = _check_data(z, y, config)
    dev = torch.device("cpu") if device is None else torch.device(device)
    ckpt = None
    if checkpoint_dir is not None:
        if not isinstance(checkpoint_dir, (str, os.PathLike)):
            raise TypeError(
                "checkpoint_dir must be a path or None, got "
                f"{type(checkpoint_dir).__name__}"
            )
        ckpt = Checkpointer(checkpoint_dir, config, data_fingerprint(z_t, y_t))
    resume = ckpt.load() if ckpt is not None else None
    n = z_t.shape[0]
    n_val = int(round(config.val_fraction * n))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        gen = torch.Generator().manual_seed(config.seed)
        perm = torch.randperm(n, generator=gen)
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        srae = _build(z_t[train_idx], y_t[train_idx], config)
        srae.to(dev)
        zs = srae.standardize_z(z_t.to(dev))
        ys = srae.standardize_y(y_t.to(dev))
        data = _Split(zs[train_idx], ys[train_idx], zs[val_idx], ys[val_idx])
        if resume is None:
            history = TrainingHistory(
                n_train=int(train_idx.numel()),
                n_val=int(val_idx.numel()),
                decoder_relu=srae.decoder_relu,
            )
            _pretrain(srae, data, config, gen, history, show_progress)
            _init_predictor(srae, data)
            _check_weights(srae, "after pretraining")
            run: _State = {
                "round": 0,
                "alphas": [config.alpha_pred, config.alpha_rec, config.alpha_pt],
                "start": copy.deepcopy(srae.state_dict()),
                "chosen": None,
                "loop": None,
            }
        else:
            history = TrainingHistory.from_dict(resume["history"])
            history.resumed_from = {
                "round": int(resume["round"]),
                "epoch": int(resume["loop"]["epoch"]),
            }
            gen.set_state(resume["gen"])
            torch.set_rng_state(resume["rng"])
            run = resume
        _run_rounds(srae, data, config, gen, history, run, ckpt, show_progress)
    if ckpt is not None:
        ckpt.remove()
    srae.eval()
    history.accepted = history.rounds[history.chosen_round].accepted
    if not history.accepted:
        warnings.warn(
            "SRAE re-tuning did not meet the acceptance rule after "
            f"{config.retune_rounds} rounds (one x-feature may carry most of the "
            "score); the last round is returned, see history.rounds",
            RuntimeWarning,
            stacklevel=2,
        )
    with torch.no_grad():
        y_dev = y_t.to(dev)
        pred = srae(z_t.to(dev)).prediction
        history.train_r2 = r2_score(y_dev[train_idx], pred[train_idx])
        history.val_r2 = r2_score(y_dev[val_idx], pred[val_idx])
        history.val_rmse = float(((y_dev[val_idx] - pred[val_idx]) ** 2).mean().sqrt())
    return srae, history


# --------------------------------------------------------------------- helpers
@dataclasses.dataclass
class _Split:
    z_train: Tensor
    y_train: Tensor
    z_val: Tensor
    y_val: Tensor


def _run_rounds(
    srae: SRAE,
    data: _Split,
    config: SRAEConfig,
    gen: torch.Generator,
    history: TrainingHistory,
    run: _State,
    ckpt: Checkpointer | None,
    show_progress: bool,
) -> None:
    """The re-tuning loop, resumable from ``run`` (a checkpointed state)."""

    def save(loop: _State) -> None:
        if ckpt is not None:
            state = {**run, "loop": loop, "history": history.to_dict()}
            state.update(gen=gen.get_state(), rng=torch.get_rng_state())
            ckpt.save(state)

    while run["round"] < config.retune_rounds:
        r = int(run["round"])
        if run["loop"] is None:
            srae.load_state_dict(run["start"])
        alphas = tuple(float(a) for a in run["alphas"])
        record = _finetune(
            srae,
            data,
            config,
            gen,
            history,
            r,
            (alphas[0], alphas[1], alphas[2]),
            show_progress,
            run["loop"],
            save,
        )
        history.rounds.append(record)
        run["chosen"], history.chosen_round = copy.deepcopy(srae.state_dict()), r
        run["loop"] = None
        if record.accepted:
            break
        run["alphas"] = [
            alphas[0],
            alphas[1] * config.retune_rec_factor,
            alphas[2] * config.retune_pt_factor,
        ]
        run["round"] = r + 1
    assert run["chosen"] is not None  # retune_rounds >= 1 is validated
    srae.load_state_dict(run["chosen"])
    _check_weights(srae, "after fine-tuning")


def _nonfinite_weights(module: torch.nn.Module) -> str | None:
    for name, t in module.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return f"non-finite values in {name}"
    return None


def _check_weights(srae: SRAE, where: str) -> None:
    reason = _nonfinite_weights(srae)
    if reason is not None:
        raise TrainingDivergedError(f"SRAE training diverged {where}: {reason}")


def _retrying(
    step: Callable[[], Any],
    srae: SRAE,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    config: SRAEConfig,
    history: TrainingHistory,
    info: dict[str, Any],
) -> Any:
    """Run one epoch ``step``; on NaN/Inf restore its start and retry at lr / 10.

    The model, optimizer and both RNG states are restored, so a retry sees the
    same batches and dropout masks with a smaller learning rate.

    Raises:
        TrainingDivergedError: after ``config.nan_retries`` failed retries.
    """
    snap = (
        copy.deepcopy(srae.state_dict()),
        copy.deepcopy(opt.state_dict()),
        gen.get_state(),
        torch.get_rng_state(),
    )
    attempt = 0
    while True:
        try:
            result = step()
            reason = _nonfinite_weights(srae)
            if reason is None:
                return result
        except _NonFinite as exc:
            reason = str(exc)
        srae.load_state_dict(snap[0])
        opt.load_state_dict(copy.deepcopy(snap[1]))
        gen.set_state(snap[2])
        torch.set_rng_state(snap[3])
        attempt += 1
        where = ", ".join(f"{k} {v}" for k, v in info.items() if k != "stage")
        if attempt > config.nan_retries:
            raise TrainingDivergedError(
                f"SRAE training diverged in {info['stage']} ({where}): {reason}; "
                f"{config.nan_retries} retries from the start of the epoch with "
                "the learning rate divided by 10 each did not help. Lower "
                "SRAEConfig.lr or check the activations and scores."
            )
        for group in opt.param_groups:
            group["lr"] *= 0.1**attempt
        lr = float(opt.param_groups[0]["lr"])
        history.recoveries.append(
            {**info, "attempt": attempt, "reason": reason, "lr": lr}
        )
        warnings.warn(
            f"SRAE training: {reason} ({where}); restored the start of the epoch "
            f"and retrying with lr={lr:g}",
            RuntimeWarning,
            stacklevel=3,
        )


def _check_data(
    z: ArrayLike, y: ArrayLike, config: SRAEConfig
) -> tuple[Tensor, Tensor]:
    z_t = as_float_tensor(z, "z")
    y_t = as_float_tensor(y, "y")
    if z_t.dim() != 2:
        raise ValueError(f"z must have shape (N, D), got {tuple(z_t.shape)}")
    if y_t.dim() == 1:
        y_t = y_t[:, None]
    if y_t.dim() != 2:
        raise ValueError(f"y must have shape (N,) or (N, K), got {tuple(y_t.shape)}")
    if z_t.shape[0] != y_t.shape[0]:
        raise ValueError(
            f"z and y must have the same number of samples, got {z_t.shape[0]} "
            f"and {y_t.shape[0]}"
        )
    if config.n_concepts >= z_t.shape[1]:
        raise ValueError(
            f"n_concepts ({config.n_concepts}) must be smaller than the activation "
            f"dimension D={z_t.shape[1]} of z"
        )
    n = z_t.shape[0]
    n_val = int(round(config.val_fraction * n))
    if n_val < 2 or n - n_val < 2:
        need = next(
            m
            for m in range(4, 10**9)
            if int(round(config.val_fraction * m)) >= 2
            and m - int(round(config.val_fraction * m)) >= 2
        )
        raise ValueError(
            f"z has {n} samples; a held-out split with val_fraction="
            f"{config.val_fraction} needs at least {need}"
        )
    check_finite(z_t, "z")
    check_finite(y_t, "y")
    check_magnitude(z_t, "z")
    check_magnitude(y_t, "y")
    return z_t.float(), y_t.float()


def _build(z_train: Tensor, y_train: Tensor, config: SRAEConfig) -> SRAE:
    decoder_relu = config.decoder_relu
    if decoder_relu is None:
        decoder_relu = bool((z_train >= 0).all())
    srae = SRAE(z_train.shape[1], y_train.shape[1], config, decoder_relu=decoder_relu)
    if config.standardize:
        # Statistics in float64: squares of values near 1e20 overflow float32.
        z64, y64 = z_train.double(), y_train.double()
        srae.z_mean.copy_(z64.mean(dim=0))
        srae.z_scale.copy_(_safe_std(z64))
        srae.y_mean.copy_(y64.mean(dim=0))
        srae.y_scale.copy_(_safe_std(y64))
    return srae


def _safe_std(x: Tensor) -> Tensor:
    std = x.std(dim=0) if x.shape[0] > 1 else torch.ones_like(x[0])
    floor = 1e-6 * float(std.max()) if std.numel() and float(std.max()) > 0 else 0.0
    return torch.where(std > max(floor, 1e-12), std, torch.ones_like(std))


def _adam(params: list[Tensor], lr: float, weight_decay: float) -> torch.optim.Adam:
    # The fused kernel is ~25 % faster on CPU; fall back where it is unsupported.
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def _batches(n: int, batch_size: int, gen: torch.Generator) -> list[Tensor]:
    return list(torch.randperm(n, generator=gen).split(batch_size))


def _pretrain(
    srae: SRAE,
    data: _Split,
    config: SRAEConfig,
    gen: torch.Generator,
    history: TrainingHistory,
    show_progress: bool,
) -> None:
    if config.pretrain_epochs == 0:
        return
    enc, dec = srae.encoder, srae.decoder
    last_act = (lambda t: torch.relu(t)) if config.nonnegative else (lambda t: t)
    stages = [
        # (trainable modules, encode, decode-to-target, target transform)
        (
            [enc[0], dec[4]],
            lambda x: torch.relu(enc[0](x)),
            lambda h: srae.standardize_z(srae._finish_raw(dec[4](h))),
        ),
        (
            [enc[3], dec[2]],
            lambda x: torch.relu(enc[3](x)),
            lambda h: torch.relu(dec[2](h)),
        ),
        (
            [enc[5], dec[0]],
            lambda x: last_act(enc[5](x)),
            lambda h: torch.relu(dec[0](h)),
        ),
    ]
    inputs = data.z_train
    bar = tqdm(
        total=3 * config.pretrain_epochs,
        desc="SRAE pretraining",
        disable=not show_progress,
        leave=False,
    )
    for stage, (modules, encode, decode) in enumerate(stages, start=1):
        if config.revive_dead:
            _center_bias(modules[0], inputs, only_dead=False)
        params = [p for m in modules for p in m.parameters()]
        opt = _adam(params, config.lr, 0.0)
        for epoch in range(1, config.pretrain_epochs + 1):

            def step(
                inputs: Tensor = inputs,
                encode: Callable[[Tensor], Tensor] = encode,
                decode: Callable[[Tensor], Tensor] = decode,
                opt: torch.optim.Optimizer = opt,
            ) -> float:
                total, count = 0.0, 0
                for idx in _batches(inputs.shape[0], config.batch_size, gen):
                    x = inputs[idx]
                    loss = torch.mean((decode(encode(x)) - x) ** 2)
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise _NonFinite(f"non-finite pretraining loss ({value})")
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += value * idx.numel()
                    count += idx.numel()
                return total / count

            info = {"stage": "pretrain", "layer": stage, "epoch": epoch}
            loss = _retrying(step, srae, opt, gen, config, history, info)
            history.pretrain.append({"stage": stage, "epoch": epoch, "loss": loss})
            bar.update(1)
        with torch.no_grad():
            inputs = encode(inputs)
    bar.close()
    if config.revive_dead and config.nonnegative:
        _center_bias(enc[5], _penultimate(srae, data.z_train), only_dead=True)


def _penultimate(srae: SRAE, zs: Tensor) -> Tensor:
    """Input of the last encoder layer (eval mode, no grad)."""
    with torch.no_grad():
        return srae.encoder[:5].eval()(zs)


def _center_bias(linear: torch.nn.Module, inputs: Tensor, only_dead: bool) -> None:
    """Shift biases so a ReLU unit is active on half of ``inputs``.

    With ``only_dead`` only units inactive on every input are shifted: a dead
    unit gets no gradient from any loss term and would stay dead for good.
    """
    with torch.no_grad():
        pre = linear(inputs)
        median = pre.median(dim=0).values
        shift = median
        if only_dead:
            dead = (pre <= 0).all(dim=0)
            shift = torch.where(dead, median, torch.zeros_like(median))
        linear.bias.sub_(shift)


def _revive(srae: SRAE, zs: Tensor, quantile: float = 0.9) -> None:
    """Gently re-activate x-features that are inactive on every training sample.

    The bias of a dead x-feature is raised just enough for it to fire on the
    top 10 % of the training samples, and its predictor weights are zeroed, so
    the reconstructed score does not jump; training then decides its use.
    """
    last = srae.encoder[5]
    with torch.no_grad():
        pre = last(_penultimate(srae, zs))
        dead = (pre <= 0).all(dim=0)
        if not bool(dead.any()):
            return
        level = torch.quantile(pre, quantile, dim=0)
        last.bias.sub_(torch.where(dead, level, torch.zeros_like(level)))
        srae.predictor.weight[:, dead] = 0.0


def _init_predictor(srae: SRAE, data: _Split) -> None:
    srae.eval()
    with torch.no_grad():
        e = srae.encode_standardized(data.z_train).double()
        design = torch.cat([e, torch.ones_like(e[:, :1])], dim=1)
        target = data.y_train.double()
        sol = torch.linalg.pinv(design) @ target  # (n + 1, K), exact least squares
        srae.predictor.weight.copy_(sol[:-1].t().to(srae.predictor.weight.dtype))
        srae.predictor.bias.copy_(sol[-1].to(srae.predictor.bias.dtype))


def _finetune(
    srae: SRAE,
    data: _Split,
    config: SRAEConfig,
    gen: torch.Generator,
    history: TrainingHistory,
    round_index: int,
    alphas: tuple[float, float, float],
    show_progress: bool,
    loop: _State | None = None,
    save: Callable[[_State], None] | None = None,
) -> RoundRecord:
    opt = _adam(list(srae.parameters()), config.lr, config.weight_decay)
    best_mse, best_epoch, best_state = float("inf"), 0, None
    stale, since_decay, decays, first = 0, 0, 0, 0
    if loop is not None:  # resume from a checkpoint
        srae.load_state_dict(loop["model"])
        opt.load_state_dict(loop["opt"])
        best_mse, best_epoch = float(loop["best_mse"]), int(loop["best_epoch"])
        best_state = loop["best_state"]
        stale, since_decay = int(loop["stale"]), int(loop["since_decay"])
        decays, first = int(loop["decays"]), int(loop["epoch"])

    def checkpoint(epoch: int) -> None:
        if save is not None:
            save(
                {
                    "epoch": epoch,
                    "model": srae.state_dict(),
                    "opt": opt.state_dict(),
                    "best_mse": best_mse,
                    "best_epoch": best_epoch,
                    "best_state": best_state,
                    "stale": stale,
                    "since_decay": since_decay,
                    "decays": decays,
                }
            )

    if loop is None:
        checkpoint(0)
    bar = tqdm(
        range(first + 1, config.max_epochs + 1),
        desc=f"SRAE fine-tuning (round {round_index + 1})",
        disable=not show_progress,
        leave=False,
    )
    epoch = first
    for epoch in bar:

        def step() -> tuple[dict[str, float], float, float]:
            sums = _train_epoch(srae, data, config, gen, opt, alphas)
            if config.revive_dead and config.nonnegative:
                srae.eval()
                _revive(srae, data.z_train)
            val_mse, val_r2 = _evaluate(srae, data.z_val, data.y_val)
            if not math.isfinite(val_mse):
                raise _NonFinite(f"non-finite held-out error ({val_mse})")
            return sums, val_mse, val_r2

        info = {"stage": "finetune", "round": round_index, "epoch": epoch}
        sums, val_mse, val_r2 = _retrying(step, srae, opt, gen, config, history, info)
        lr = opt.param_groups[0]["lr"]
        entry: dict[str, float] = {"round": round_index, "epoch": epoch, "lr": lr}
        entry.update(sums)
        entry.update({"val_mse": val_mse, "val_r2": val_r2})
        history.epochs.append(entry)
        bar.set_postfix(val_r2=f"{val_r2:.4f}")
        since_decay += 1
        if val_mse < best_mse:
            best_mse, best_epoch, stale = val_mse, epoch, 0
            best_state = copy.deepcopy(srae.state_dict())
        else:
            stale += 1
        plateau = stale >= config.patience
        if plateau and decays >= config.max_lr_decays:
            break
        if plateau or since_decay >= config.lr_step_epochs:
            # Step the learning rate; on a plateau, early and from the best state.
            if plateau and best_state is not None:
                srae.load_state_dict(best_state)
            for group in opt.param_groups:
                group["lr"] *= config.lr_gamma
            stale, since_decay, decays = 0, 0, decays + 1
        checkpoint(epoch)
    bar.close()
    if best_state is not None:
        srae.load_state_dict(best_state)
    srae.eval()
    with torch.no_grad():
        e = srae.encode_standardized(data.z_train)
        mean_contrib = (e[:, None, :] * srae.weight[None]).mean(dim=0)
    return RoundRecord(
        round=round_index,
        alpha_pred=float(alphas[0]),
        alpha_rec=float(alphas[1]),
        alpha_pt=float(alphas[2]),
        epochs=epoch,
        best_epoch=best_epoch,
        val_mse=best_mse,
        mean_contributions=mean_contrib.tolist(),
        accepted=acceptance(mean_contrib, config),
    )


def _train_epoch(
    srae: SRAE,
    data: _Split,
    config: SRAEConfig,
    gen: torch.Generator,
    opt: torch.optim.Optimizer,
    alphas: tuple[float, float, float],
) -> dict[str, float]:
    """One pass over the shuffled training split; mean of each loss term."""
    a_pred, a_rec, a_pt = alphas
    srae.train()
    sums = dict.fromkeys(("total", "prediction", "reconstruction", "pull_away"), 0.0)
    count = 0
    for idx in _batches(data.z_train.shape[0], config.batch_size, gen):
        zb, yb = data.z_train[idx], data.y_train[idx]
        e = srae.encode_standardized(zb)
        terms = srae_loss(
            zb,
            srae.decode_standardized(e),
            e,
            yb,
            srae.predict_standardized(e),
            srae.predictor.weight,
            config=config,
            alpha_pred=a_pred,
            alpha_rec=a_rec,
            alpha_pt=a_pt,
        )
        total = float(terms.total.detach())
        if not math.isfinite(total):
            raise _NonFinite(f"non-finite training loss ({total})")
        opt.zero_grad(set_to_none=True)
        terms.total.backward()
        opt.step()
        for key, value in zip(sums, terms, strict=True):
            sums[key] += float(value.detach()) * idx.numel()
        count += idx.numel()
    return {key: value / count for key, value in sums.items()}


def _evaluate(srae: SRAE, zs: Tensor, ys: Tensor) -> tuple[float, float]:
    srae.eval()
    with torch.no_grad():
        pred = srae.predict_standardized(srae.encode_standardized(zs))
        return float(torch.mean((pred - ys) ** 2)), r2_score(ys, pred)
