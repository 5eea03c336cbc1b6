#!/usr/bin/env python3
"""What the stages of one fit share (:class:`FitContext`): the network, its
data, the hyperparameters, the generator of the minibatch order and the
history being recorded."""

from __future__ import annotations

import dataclasses

import torch

from captum_srae.core.config import SRAEConfig
from captum_srae.core.model import SRAE
from captum_srae.training.history import TrainingHistory
from captum_srae.training.split import TrainingData

__all__ = ["FitContext"]


@dataclasses.dataclass
class FitContext:
    """What the stages of one fit (pretraining, fine-tuning, re-tuning
    rounds) share; the in-memory and the streaming fit each build one.

    Attributes:
        srae (SRAE): the network being trained (in place).
        data (TrainingData): the training and held-out data.
        config (SRAEConfig): the hyperparameters.
        gen (torch.Generator): draws the minibatch order.
        history (TrainingHistory): what the fit records.
        show_progress (bool): show ``tqdm`` progress bars.
    """

    srae: SRAE
    data: TrainingData
    config: SRAEConfig
    gen: torch.Generator
    history: TrainingHistory
    show_progress: bool
