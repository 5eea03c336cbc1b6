#!/usr/bin/env python3
r"""The metrics every study problem shares: :func:`common_metrics`.

All are measured on the held-out rows of the problem's data. ``srae`` is
anything with the SRAE's ``encode``, ``decode``, ``predict``,
``contributions`` and ``weight`` (a fitted :class:`~captum_srae.SRAE`, or a
stand-in in tests).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from captum_srae.evaluation.metrics.orthogonality import orthogonality, pull_away_value
from captum_srae.evaluation.metrics.reconstruction import partial_reconstruction
from captum_srae.evaluation.study.problems import ProblemData
from captum_srae.training.history import TrainingHistory
from captum_srae.utils.stats import r2_score

__all__ = ["HeldOut", "common_metrics", "held_out", "positive_shares"]


class HeldOut(NamedTuple):
    """A fitted SRAE applied to the held-out rows.

    Attributes:
        x_features (Tensor): ``e``, ``(M, n_concepts)``.
        prediction (Tensor): the reconstructed scores, ``(M, K)``.
        reconstruction (Tensor): the decoder's output, ``(M, D)``.
        mean_contributions (Tensor): mean over rows of ``e_k v_ck``,
            ``(K, n_concepts)``.
    """

    x_features: Tensor
    prediction: Tensor
    reconstruction: Tensor
    mean_contributions: Tensor


def held_out(srae: Any, data: ProblemData) -> HeldOut:
    """Encode, predict, decode and the mean contributions on the held-out rows.

    Args:
        srae: a fitted SRAE or a stand-in with its methods.
        data (ProblemData): the problem's data.

    Returns:
        *HeldOut*
    """
    with torch.no_grad():
        e = srae.encode(data.z_test)
        return HeldOut(
            e,
            srae.predict(e),
            srae.decode(e),
            srae.contributions(e).mean(dim=0),
        )


def positive_shares(mean_contributions: Tensor) -> Tensor:
    r"""Each x-feature's share of the positive score, per output.

    ``share_k = pos_k / Σ_l pos_l`` with ``pos_k = max(mean_i e_ik v_k, 0)``;
    NaN for an output where no mean contribution is positive.

    Args:
        mean_contributions (Tensor): ``(K, n_concepts)``.

    Returns:
        *Tensor*: ``(K, n_concepts)``, float64.
    """
    pos = mean_contributions.double().clamp_min(0)
    total = pos.sum(dim=1, keepdim=True)
    return torch.where(total > 0, pos / torch.where(total > 0, total, 1.0), math.nan)


def _mean(values: Tensor) -> float:
    """Mean of the non-NaN values (NaN if none)."""
    values = values.double()
    keep = ~torch.isnan(values)
    return float(values[keep].mean()) if bool(keep.any()) else math.nan


def _orthogonality(e: Tensor, weight: Tensor) -> dict[str, float]:
    """Mean ``|cos|`` between x-feature columns and the v-weighted pull-away
    values along images and features (NaN with fewer than 2 x-features)."""
    if e.shape[1] < 2:
        keys = ("mean_abs_cos", "pull_away_images", "pull_away_features")
        return dict.fromkeys(keys, math.nan)
    w = weight.detach()
    return {
        "mean_abs_cos": float(orthogonality(e).mean_abs_cosine),
        "pull_away_images": float(pull_away_value(e, w, "images")),
        "pull_away_features": float(pull_away_value(e, w, "features")),
    }


def common_metrics(
    srae: Any,
    data: ProblemData,
    history: TrainingHistory | None = None,
    fit_seconds: float = math.nan,
) -> dict[str, float]:
    r"""The metrics of one fit that every problem reports, on held-out rows.

    - ``r2``: R² of the reconstructed scores (mean over outputs);
    - ``dead_features``: x-features never positive on any held-out row;
    - ``top_share``: largest share of the positive score,
      ``max_k pos_k / Σ_k pos_k`` (:func:`positive_shares`; NaN if no mean
      contribution is positive; mean over outputs);
    - ``n_positive``: x-features with a positive mean contribution (mean
      over outputs);
    - ``accepted``: 1 if the acceptance rule held on the chosen round;
    - ``mean_abs_cos``: mean ``|cos|`` between x-feature columns
      (:func:`~captum_srae.evaluation.metrics.orthogonality`);
    - ``pull_away_images``, ``pull_away_features``: the v-weighted pull-away
      term (:func:`~captum_srae.evaluation.metrics.pull_away_value`);
    - ``reconstructed_fraction``: fraction of the activation dimensions the
      decoder rebuilds with R² > 0.5
      (:func:`~captum_srae.evaluation.metrics.partial_reconstruction`);
    - ``rounds``: re-tuning rounds run; ``fit_seconds``: fitting time.

    Args:
        srae: a fitted SRAE (or a stand-in with its methods).
        data (ProblemData): the problem's data.
        history (TrainingHistory, optional): the fit's history; without it
            ``accepted`` and ``rounds`` are NaN. Default: None
        fit_seconds (float, optional): seconds the fit took. Default: NaN

    Returns:
        *dict[str, float]*

    Examples::

        >>> srae, history = fit_srae(data.z_train, data.y_train, config)
        >>> common_metrics(srae, data, history)["r2"]  # doctest: +SKIP
        0.97
    """
    out = held_out(srae, data)
    e, mc = out.x_features, out.mean_contributions
    y = data.y_test.reshape(out.prediction.shape)
    shares = positive_shares(mc)
    metrics = {
        "r2": r2_score(y, out.prediction),
        "dead_features": float(((e > 0).sum(dim=0) == 0).sum()),
        "top_share": _mean(shares.max(dim=1).values),
        "n_positive": float((mc > 0).sum(dim=1).double().mean()),
        "accepted": math.nan if history is None else float(history.accepted),
    }
    metrics.update(_orthogonality(e, srae.weight))
    rebuilt = partial_reconstruction(out.reconstruction, data.z_test)
    metrics["reconstructed_fraction"] = float(rebuilt.fraction_explained)
    metrics["rounds"] = math.nan if history is None else float(len(history.rounds))
    metrics["fit_seconds"] = float(fit_seconds)
    return metrics
