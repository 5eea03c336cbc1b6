#!/usr/bin/env python3
r"""The plain-autoencoder ablation of the SRAE.

The same network (:class:`~captum_srae.SRAE`), the same training procedure
(:func:`~captum_srae.fit_srae`: layer-wise pretraining, least-squares
predictor initialisation, fine-tuning with early stopping, dead-unit revival,
standardisation) and the same faithfulness weight, with the SRAE-specific
parts of the objective removed. Only these fields of the configuration differ
(:data:`ABLATED_FIELDS`):

- ``reconstruction="mse"`` instead of ``"log"``: plain mean squared
  reconstruction of every activation dimension instead of the sparse
  reconstruction penalty ``log(1 + q * mse_d)``;
- ``alpha_pt=0`` instead of 10: no pull-away term;
- ``retune_rounds=1`` instead of 5: no re-tuning loop (it only trades
  ``alpha_rec`` against ``alpha_pt`` to spread the score over x-features, which
  is part of the SRAE method, not of an autoencoder).

The result is an :class:`~captum_srae.SRAE`, so it can be saved and used
everywhere an SRAE can.
"""

from __future__ import annotations

from typing import Any

from captum_srae.core.config import SRAEConfig
from captum_srae.core.model import SRAE
from captum_srae.evaluation.baselines.base import check_fit_data, check_seed
from captum_srae.training import fit_srae
from captum_srae.training.history import TrainingHistory, quiet_quality_warnings

__all__ = ["ABLATED_FIELDS", "autoencoder_config", "fit_autoencoder"]

#: The configuration fields that the ablation sets, and their values.
ABLATED_FIELDS: dict[str, Any] = {
    "reconstruction": "mse",
    "alpha_pt": 0.0,
    "retune_rounds": 1,
}


def autoencoder_config(
    config: SRAEConfig | None = None, n_concepts: int = 5, seed: int = 0
) -> SRAEConfig:
    r"""The ablation of ``config``: ``config`` with ``n_concepts``, ``seed`` and
    :data:`ABLATED_FIELDS` set.

    Args:
        config (SRAEConfig, optional): the SRAE configuration to ablate.
            Default: None (``SRAEConfig()``)
        n_concepts (int, optional): number of x-features. Default: 5
        seed (int, optional): training seed. Default: 0

    Returns:
        *SRAEConfig*: the configuration of the plain autoencoder.

    Examples::

        >>> autoencoder_config().reconstruction, autoencoder_config().alpha_pt
        ('mse', 0.0)
    """
    config = SRAEConfig() if config is None else config
    if not isinstance(config, SRAEConfig):
        raise TypeError(f"config must be an SRAEConfig, got {type(config).__name__}")
    return config.replace(n_concepts=n_concepts, seed=seed, **ABLATED_FIELDS)


def fit_autoencoder(
    z: Any,
    y: Any,
    n_concepts: int = 5,
    *,
    seed: int = 0,
    pooling: str | None = None,
    config: SRAEConfig | None = None,
    show_progress: bool = False,
) -> tuple[SRAE, TrainingHistory]:
    r"""Fit the plain-autoencoder ablation with :func:`~captum_srae.fit_srae`.

    The SRAE acceptance rule (several x-features with a positive mean
    contribution) is not a goal of the ablation, so its warning is not shown;
    ``history.accepted`` still records it.

    Args:
        z (Tensor or ndarray): activations ``(N, D)``.
        y (Tensor or ndarray): scores ``(N,)`` or ``(N, K)``.
        n_concepts (int, optional): number of x-features. Default: 5
        seed (int, optional): training seed. Default: 0
        pooling (str, optional): pooling of the activations.
            Default: None (``config.pooling``)
        config (SRAEConfig, optional): the SRAE configuration to ablate
            (e.g. with fewer epochs). Default: None (``SRAEConfig()``)
        show_progress (bool, optional): progress bars. Default: False

    Returns:
        *tuple[SRAE, TrainingHistory]*: the fitted network and its history.
    """
    if config is not None and not isinstance(config, SRAEConfig):
        raise TypeError(f"config must be an SRAEConfig, got {type(config).__name__}")
    if pooling is None:
        pooling = "avg" if config is None else config.pooling
    check_fit_data(z, y, n_concepts, pooling)
    check_seed(seed)
    cfg = autoencoder_config(config, n_concepts, seed).replace(pooling=pooling)
    with quiet_quality_warnings():  # a baseline: its numbers say it all
        return fit_srae(z, y, cfg, show_progress=show_progress)
