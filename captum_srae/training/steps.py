#!/usr/bin/env python3
"""The stages of :func:`~captum_srae.training.fit_srae`: building the network,
layer-wise pretraining, predictor initialisation, fine-tuning epochs, the
revival of dead x-features and the recovery from non-finite losses."""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from captum_srae.core.config import SRAEConfig
from captum_srae.core.losses import srae_loss
from captum_srae.core.model import SRAE
from captum_srae.training.history import (
    RoundRecord,
    TrainingDivergedError,
    TrainingHistory,
    acceptance,
)
from captum_srae.training.parallel import _Parallel
from captum_srae.utils.stats import r2_score

_State = dict[str, Any]


def new_run_state(srae: SRAE, config: SRAEConfig) -> _State:
    """The state of the re-tuning rounds before the first round: the loss
    weights of the config and the weights to restart each round from."""
    return {
        "round": 0,
        "alphas": [config.alpha_pred, config.alpha_rec, config.alpha_pt],
        "start": copy.deepcopy(srae.state_dict()),
        "chosen": None,
        "loop": None,
    }


class _NonFinite(Exception):
    """Internal: a non-finite loss was met inside an epoch."""


@dataclasses.dataclass
class _Split:
    z_train: Tensor
    y_train: Tensor
    z_val: Tensor
    y_val: Tensor
    parallel: _Parallel = dataclasses.field(default_factory=_Parallel)

    # The data access of fine-tuning; ``_fit_stream._StreamSplit`` implements
    # the same four methods over an ActivationStore.
    def train_epoch(
        self,
        srae: SRAE,
        config: SRAEConfig,
        gen: torch.Generator,
        opt: torch.optim.Optimizer,
        alphas: tuple[float, float, float],
    ) -> dict[str, float]:
        """One pass over the shuffled training split (see :func:`_train_epoch`)."""
        batches = (
            (self.z_train, self.y_train, idx)
            for idx in _epoch_batches(self.z_train.shape[0], config, gen)
        )
        return _train_epoch(srae, batches, config, opt, alphas, self.parallel)

    def revive(self, srae: SRAE, config: SRAEConfig) -> None:
        """Revive dead x-features (see :func:`_revive`)."""
        _revive(srae, self.z_train[: config.epoch_samples])

    def evaluate(self, srae: SRAE) -> tuple[float, float]:
        """Held-out mean squared error and R² in standardised units."""
        return _evaluate(srae, self.z_val, self.y_val)

    def mean_contributions(self, srae: SRAE) -> Tensor:
        """Mean contribution of each x-feature to each output, ``(K, n)``."""
        with torch.no_grad():
            e = srae.encode_standardized(self.z_train)
            return (e[:, None, :] * srae.weight[None]).mean(dim=0)


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
    return _floor_std(x.std(dim=0) if x.shape[0] > 1 else torch.ones_like(x[0]))


def _floor_std(std: Tensor) -> Tensor:
    """Replace (near-)zero standard deviations by 1."""
    floor = 1e-6 * float(std.max()) if std.numel() and float(std.max()) > 0 else 0.0
    return torch.where(std > max(floor, 1e-12), std, torch.ones_like(std))


def _adam(params: list[Tensor], lr: float, weight_decay: float) -> torch.optim.Adam:
    # The fused kernel is ~25 % faster on CPU; fall back where it is unsupported.
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def _batches(
    n: int, batch_size: int, gen: torch.Generator, cap: int | None = None
) -> list[Tensor]:
    """Shuffled minibatch indices of one epoch; only ``cap`` samples if set."""
    perm = torch.randperm(n, generator=gen)
    if cap is not None and cap < n:
        perm = perm[:cap]
    return list(perm.split(batch_size))


def _epoch_batches(n: int, config: SRAEConfig, gen: torch.Generator) -> list[Tensor]:
    """The minibatches of one epoch (``config.epoch_samples`` of them if set)."""
    if config.epoch_samples is None:
        return _batches(n, config.batch_size, gen)
    return _batches(n, config.batch_size, gen, config.epoch_samples)


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
    inputs = data.z_train
    bar = tqdm(
        total=3 * config.pretrain_epochs,
        desc="SRAE pretraining",
        disable=not show_progress,
        leave=False,
    )
    for stage, (modules, encode, decode) in enumerate(
        _pretrain_stages(srae, config), start=1
    ):
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
                batches = (
                    (inputs, idx)
                    for idx in _epoch_batches(inputs.shape[0], config, gen)
                )
                return _pretrain_epoch(batches, encode, decode, opt, data.parallel)

            info = {"stage": "pretrain", "layer": stage, "epoch": epoch}
            loss = _retrying(step, srae, opt, gen, config, history, info)
            history.pretrain.append({"stage": stage, "epoch": epoch, "loss": loss})
            bar.update(1)
        with torch.no_grad():
            inputs = encode(inputs)
    bar.close()
    if config.revive_dead and config.nonnegative:
        _center_bias(srae.encoder[5], _penultimate(srae, data.z_train), only_dead=True)


_Stage = tuple[
    list[torch.nn.Module], Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]
]


def _pretrain_stages(srae: SRAE, config: SRAEConfig) -> list[_Stage]:
    """(trainable modules, encode, decode-to-target) of each pretraining stage."""
    enc, dec = srae.encoder, srae.decoder
    last_act = (lambda t: torch.relu(t)) if config.nonnegative else (lambda t: t)
    return [
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


def _pretrain_epoch(
    batches: Iterable[tuple[Tensor, Tensor]],
    encode: Callable[[Tensor], Tensor],
    decode: Callable[[Tensor], Tensor],
    opt: torch.optim.Optimizer,
    parallel: _Parallel,
) -> float:
    """One pretraining epoch over ``(source, rows)`` minibatches; mean loss."""
    total, count = 0.0, 0
    for source, idx in batches:

        def compute(rows: Tensor, source: Tensor = source) -> Tensor:
            x = source[rows]
            return torch.mean((decode(encode(x)) - x) ** 2)

        step_out = parallel.losses(idx, compute)
        if step_out is None:
            continue
        loss, (value,) = step_out
        if not math.isfinite(value):
            raise _NonFinite(f"non-finite pretraining loss ({value})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += value * idx.numel()
        count += idx.numel()
    return total / count


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
            sums = data.train_epoch(srae, config, gen, opt, alphas)
            if config.revive_dead and config.nonnegative:
                srae.eval()
                data.revive(srae, config)
            val_mse, val_r2 = data.evaluate(srae)
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
    mean_contrib = data.mean_contributions(srae)
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
    batches: Iterable[tuple[Tensor, Tensor, Tensor]],
    config: SRAEConfig,
    opt: torch.optim.Optimizer,
    alphas: tuple[float, float, float],
    parallel: _Parallel,
) -> dict[str, float]:
    """One pass over ``(z source, y source, rows)`` minibatches (standardised
    units); mean of each loss term."""
    a_pred, a_rec, a_pt = alphas
    srae.train()
    sums = dict.fromkeys(("total", "prediction", "reconstruction", "pull_away"), 0.0)
    count = 0
    for z_src, y_src, idx in batches:

        def compute(
            rows: Tensor, z_src: Tensor = z_src, y_src: Tensor = y_src
        ) -> tuple[Tensor, ...]:
            zb, yb = z_src[rows], y_src[rows]
            e = srae.encode_standardized(zb)
            return tuple(
                srae_loss(
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
            )

        step_out = parallel.losses(idx, compute)
        if step_out is None:
            continue
        loss, values = step_out
        if not math.isfinite(values[0]):
            raise _NonFinite(f"non-finite training loss ({values[0]})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for key, value in zip(sums, values, strict=True):
            sums[key] += value * idx.numel()
        count += idx.numel()
    return {key: value / count for key, value in sums.items()}


def _evaluate(srae: SRAE, zs: Tensor, ys: Tensor) -> tuple[float, float]:
    srae.eval()
    with torch.no_grad():
        pred = srae.predict_standardized(srae.encode_standardized(zs))
        return float(torch.mean((pred - ys) ** 2)), r2_score(ys, pred)
