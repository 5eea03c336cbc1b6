#!/usr/bin/env python3
"""Greedy layer-wise pretraining, the first stage of every fit: three
one-hidden-layer autoencoders, each trained on the outputs of the encoders
before it. The one loop serves the in-memory and the streaming fit; each
reads its minibatches from its
:class:`~captum_srae.training.split.TrainingData`."""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from captum_srae.core.config import SRAEConfig
from captum_srae.core.model import SRAE
from captum_srae.training.context import FitContext
from captum_srae.training.contributions import init_from_contributions
from captum_srae.training.dead_units import center_bias, penultimate
from captum_srae.training.epochs import adam, pretrain_epoch
from captum_srae.training.guard import retrying
from captum_srae.training.split import Encoder, Minibatches

__all__ = ["Stage", "pretrain", "pretrain_stages"]

#: (trainable modules, encode, decode back to the stage's input)
Stage = tuple[list[torch.nn.Module], Encoder, Encoder]


def pretrain_stages(srae: SRAE, config: SRAEConfig) -> list[Stage]:
    """The three autoencoder stages of the layer-wise pretraining.

    Args:
        srae (SRAE): the network whose layers the stages train.
        config (SRAEConfig): ``nonnegative`` sets the last encoder's ReLU.

    Returns:
        *list[Stage]*: ``(trainable modules, encode, decode)`` of each stage;
        the first decodes to standardised activations.
    """
    enc, dec = srae.encoder, srae.decoder
    last_act = (lambda t: torch.relu(t)) if config.nonnegative else (lambda t: t)
    return [
        (
            [enc[0], dec[4]],
            lambda x: torch.relu(enc[0](x)),
            lambda h: srae.standardize_z(srae.raw_reconstruction(dec[4](h))),
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


def pretrain(ctx: FitContext) -> None:
    """Train the three stages for ``config.pretrain_epochs`` epochs each.

    Stage ``k`` reads its minibatches from ``ctx.data.encoded(encoders)``,
    the training rows seen through the encoders of the stages before it.
    With ``config.revive_dead`` each stage's first layer is centred on its
    inputs first, and dead units of the last encoder layer are revived at
    the end. Every epoch runs under
    :func:`~captum_srae.training.guard.retrying` and is recorded in
    ``ctx.history.pretrain``.

    Args:
        ctx (FitContext): the fit (its network is trained in place).

    Raises:
        TrainingDivergedError: if an epoch stays non-finite after the retries.
    """
    srae, config, gen, history = ctx.srae, ctx.config, ctx.gen, ctx.history
    if config.pretrain_epochs == 0:
        return
    bar = tqdm(
        total=3 * config.pretrain_epochs,
        desc="SRAE pretraining",
        disable=not ctx.show_progress,
        leave=False,
    )
    done: list[Encoder] = []
    for stage, (modules, encode, decode) in enumerate(
        pretrain_stages(srae, config), start=1
    ):
        if stage == 3 and config.init == "contributions":
            _start_from_contributions(ctx)
            bar.update(config.pretrain_epochs)
            break
        inputs = ctx.data.encoded(done)
        if config.revive_dead:
            center_bias(modules[0], inputs.check_rows, only_dead=False)
        opt = adam([p for m in modules for p in m.parameters()], config.lr, 0.0)
        for epoch in range(1, config.pretrain_epochs + 1):
            step = _epoch_step(inputs, encode, decode, opt, config, gen)
            info = {"stage": "pretrain", "layer": stage, "epoch": epoch}
            loss = retrying(step, srae, opt, gen, config, history, info)
            history.pretrain.append({"stage": stage, "epoch": epoch, "loss": loss})
            bar.update(1)
        done.append(encode)
    bar.close()
    if config.revive_dead and config.nonnegative:
        center_bias(srae.encoder[5], penultimate(srae, ctx.data.check_rows), True)


def _start_from_contributions(ctx: FitContext) -> None:
    """``config.init == "contributions"``: the x-feature layer from the
    contribution targets of the split's :meth:`init_rows`."""
    zs, ys = ctx.data.init_rows()
    config = ctx.config
    init_from_contributions(ctx.srae, zs, ys, config.seed, config.init_explained)


def _epoch_step(
    inputs: Minibatches,
    encode: Encoder,
    decode: Encoder,
    opt: torch.optim.Optimizer,
    config: SRAEConfig,
    gen: torch.Generator,
) -> Callable[[], float]:
    """One pretraining epoch of a stage, as a step for ``retrying``."""

    def step() -> float:
        batches = inputs.train_batches(config, gen)
        return pretrain_epoch(batches, encode, decode, opt, inputs.parallel)

    return step
