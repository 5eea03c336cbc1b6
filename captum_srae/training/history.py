#!/usr/bin/env python3
"""What a fit records and decides: :class:`TrainingHistory`, :class:`RoundRecord`,
the re-tuning acceptance rule and :class:`TrainingDivergedError`."""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from captum_srae.core.config import SRAEConfig


class TrainingDivergedError(RuntimeError):
    """Training produced NaN/Inf losses or weights and could not recover.

    Raised by :func:`fit_srae` after ``SRAEConfig.nan_retries`` retries of one
    epoch, each from the state at the start of the epoch with the learning rate
    divided by 10. No model is returned, so no explainer with NaN weights exists.
    """


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
        dead_features (list[int]): x-features that are zero on every
            held-out row (they explain nothing).
        top_share (float): the largest share of the positive score carried
            by one x-feature on the held-out rows (largest over outputs; see
            :func:`positive_share`); NaN before the fit ends.
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
    dead_features: list[int] = dataclasses.field(default_factory=list)
    top_share: float = float("nan")

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


def balance(mean_contributions: Tensor) -> float:
    """How far the x-features share the score: the smallest, over outputs, of
    the second largest mean contribution divided by the largest positive one.

    The acceptance rule asks for at least ``config.retune_min_ratio``; 0 when
    one x-feature carries all the positive score (or none is positive).

    Args:
        mean_contributions (Tensor): Shape ``(K, n_concepts)``.

    Returns:
        *float*: in ``(-inf, 1]``; 1 when the two largest are equal.
    """
    worst = 1.0
    for row in mean_contributions:
        top = torch.sort(row, descending=True).values
        if top.numel() < 2 or float(top[0]) <= 0:
            return 0.0
        worst = min(worst, float(top[1] / top[0]))
    return worst


#: :func:`concept_warnings` calls an explanation monopolised when one
#: x-feature carries at least this share of the positive score.
MONOPOLY_SHARE = 0.9


def positive_share(mean_contributions: Tensor) -> float:
    r"""The largest share of the positive score one x-feature carries.

    ``max_k pos_k / Σ_l pos_l`` with ``pos_k = max(c_k, 0)`` for the mean
    contributions ``c`` of each output, the largest over outputs; NaN when
    no mean contribution is positive.

    Args:
        mean_contributions (Tensor): Shape ``(K, n_concepts)``.

    Returns:
        *float*: in ``[1/n_concepts, 1]``, or NaN.
    """
    pos = mean_contributions.double().clamp_min(0)
    total = pos.sum(dim=1)
    keep = total > 0
    if not bool(keep.any()):
        return float("nan")
    return float((pos[keep].max(dim=1).values / total[keep]).max())


def record_concepts(
    history: TrainingHistory, x_features: Tensor, weight: Tensor
) -> None:
    """Record the dead x-features and the largest positive share of a fit.

    Args:
        history (TrainingHistory): updated in place.
        x_features (Tensor): ``e`` of the held-out rows ``(M, n_concepts)``.
        weight (Tensor): the predictor weights ``v`` ``(K, n_concepts)``.
    """
    e = x_features.detach()
    history.dead_features = [int(k) for k in torch.nonzero((e > 0).sum(0) == 0)[:, 0]]
    mean_c = e.mean(dim=0)[None, :] * weight.detach().to(e.dtype)
    history.top_share = positive_share(mean_c)


#: Regular expressions of the warnings :func:`~captum_srae.fit_srae` gives
#: about the explanation's quality (the acceptance rule, dead and
#: monopolising x-features), for callers that record them as numbers
#: instead (:func:`quiet_quality_warnings`).
QUALITY_WARNINGS = tuple(
    r"(class \d+: )?" + message  # SRAEAttribution.fit names the class first
    for message in (
        "SRAE re-tuning did not meet the acceptance rule",
        r"x-feature\(s\) .* are zero on every held-out sample",
        "one x-feature carries",
    )
)


@contextlib.contextmanager
def quiet_quality_warnings() -> Iterator[None]:
    """Silence :data:`QUALITY_WARNINGS` inside the block (other warnings
    still show)."""
    with warnings.catch_warnings():
        for message in QUALITY_WARNINGS:
            warnings.filterwarnings("ignore", message, RuntimeWarning)
        yield


def concept_warnings(history: TrainingHistory, stacklevel: int = 4) -> None:
    """Warn in plain words when a fit has dead or monopolising x-features.

    Args:
        history (TrainingHistory): a finished fit's history (after
            :func:`record_concepts`).
        stacklevel (int, optional): of the warnings. Default: 4
    """
    if history.dead_features:
        ks = ", ".join(str(k) for k in history.dead_features)
        warnings.warn(
            f"x-feature(s) {ks} are zero on every held-out sample and explain "
            "nothing; try SRAEConfig(revive_dead=True), fewer n_concepts or "
            "another seed",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
    if history.top_share >= MONOPOLY_SHARE:
        warnings.warn(
            f"one x-feature carries {100 * history.top_share:.0f} % of the "
            "positive score: the explanation is a single concept; try more "
            "re-tuning rounds (retune_rounds), a larger alpha_rec or another "
            "seed, and check whether the class really has several parts of "
            "evidence",
            RuntimeWarning,
            stacklevel=stacklevel,
        )


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
