#!/usr/bin/env python3
r"""Displays of the fit: training curves and the faithfulness scatter.

:class:`TrainingCurvesDisplay` plots each loss term of the fine-tuning epochs
and the held-out faithfulness (``val_r2``) from a
:class:`~captum_srae.TrainingHistory`; :class:`FaithfulnessDisplay` plots the
model's score against the XNN's reconstructed score with the identity line
and the R².
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from captum_srae.visualization import render
from captum_srae.visualization.base import Display, ExplainedDisplay, new_axes

__all__ = ["FaithfulnessDisplay", "TrainingCurvesDisplay"]

#: Loss terms drawn by :class:`TrainingCurvesDisplay`, in legend order.
LOSS_TERMS = ("total", "prediction", "reconstruction", "pull_away")


def _pick_history(explainer: Any, target: int | None) -> Any:
    histories = explainer.history_
    if not isinstance(histories, dict):
        return histories
    if target is None:
        target = sorted(histories)[0]
    return histories[target]


class TrainingCurvesDisplay(Display):
    r"""Loss terms and held-out faithfulness per fine-tuning epoch.

    The epochs of every re-tuning round are drawn one after the other (a
    dashed line marks the start of each new round).

    Args:
        epochs (Sequence[dict]): ``TrainingHistory.epochs``.
        terms (Sequence[str], optional): loss terms to draw.
            Default: ``("total", "prediction", "reconstruction", "pull_away")``
        title (str, optional): the header. Default: None

    Attributes:
        x (ndarray): the epoch axis, 1 to the number of epochs.
        lines_ (dict[str, Line2D]): the drawn line of each term and of
            ``"val_r2"``, set by :meth:`plot`.
        figure_, ax_: set by :meth:`plot`; ``ax_`` holds 2 axes (losses, R²).
    """

    def __init__(
        self,
        epochs: Sequence[dict[str, float]],
        terms: Sequence[str] = LOSS_TERMS,
        title: str | None = None,
    ) -> None:
        self.epochs = list(epochs)
        self.terms = [t for t in terms if any(t in e for e in self.epochs)]
        self.title = title
        self.x = np.arange(1, len(self.epochs) + 1)

    @classmethod
    def from_history(cls, history: Any, **kwargs: Any) -> TrainingCurvesDisplay:
        """Build from a :class:`~captum_srae.TrainingHistory` (or its dict)."""
        epochs = history["epochs"] if isinstance(history, dict) else history.epochs
        return cls(epochs, **kwargs)

    @classmethod
    def from_explainer(
        cls, explainer: Any, target: int | None = None, **kwargs: Any
    ) -> TrainingCurvesDisplay:
        """The history of a fitted explainer's XNN for ``target`` (default: first)."""
        kwargs.setdefault("title", None if target is None else f"class {target}")
        return cls.from_history(_pick_history(explainer, target), **kwargs)

    def values(self, key: str) -> np.ndarray:
        """One key over the epochs (NaN where missing)."""
        return np.array([float(e.get(key, math.nan)) for e in self.epochs])

    def plot(self, ax: Any = None) -> TrainingCurvesDisplay:
        """Draw; ``ax`` is None or 2 axes. Returns self."""
        fig, axes = new_axes(1, 2, ax, (4.0, 3.0))
        loss_ax, r2_ax = axes[0]
        self.lines_: dict[str, Any] = {}
        positive = True
        for term in self.terms:
            y = self.values(term)
            positive &= bool(np.all(y[np.isfinite(y)] > 0))
            (self.lines_[term],) = loss_ax.plot(self.x, y, label=term)
        if self.terms and positive:
            loss_ax.set_yscale("log")
        (self.lines_["val_r2"],) = r2_ax.plot(
            self.x, self.values("val_r2"), color="black", label="held-out R²"
        )
        rounds = self.values("round")
        for a in (loss_ax, r2_ax):
            for start in np.nonzero(np.diff(rounds) != 0)[0]:
                a.axvline(self.x[start] + 0.5, color="grey", linestyle="--", lw=0.8)
            a.set_xlabel("fine-tuning epoch")
        loss_ax.set_title("training loss terms", fontsize="medium")
        r2_ax.set_title("held-out faithfulness", fontsize="medium")
        r2_ax.set_ylabel("R²")
        if self.terms:
            loss_ax.legend(fontsize="small")
        if self.title:
            fig.suptitle(self.title, fontsize="medium")
        self.figure_, self.ax_ = fig, axes[0]
        return self


class FaithfulnessDisplay(ExplainedDisplay):
    r"""Scatter of the model's score against the XNN's reconstructed score.

    Args:
        model_score (Tensor or ndarray): ``(N,)``.
        xnn_score (Tensor or ndarray): ``(N,)``.
        title (str, optional): the header. Default: None

    Attributes:
        r2_ (float): R² of the XNN's scores against the model's.
        figure_, ax_: set by :meth:`plot`; ``ax_`` is one Axes with the points
            (``ax_.collections[0]``) and the identity line (``ax_.lines[0]``).

    Examples::

        >>> FaithfulnessDisplay.from_explanation(sa.explain(x, 3)).save("f.svg")
    """

    shows_images = False  # from_explanation takes the explanation alone

    def __init__(
        self, model_score: Any, xnn_score: Any, title: str | None = None
    ) -> None:
        self.model_score = render.to_numpy(model_score).ravel()
        self.xnn_score = render.to_numpy(xnn_score).ravel()
        if self.model_score.shape != self.xnn_score.shape:
            raise ValueError("model_score and xnn_score differ in length")
        self.title = title
        self.r2_ = render.r2(self.model_score, self.xnn_score)

    @classmethod
    def from_explanation(cls, explanation: Any, **kwargs: Any) -> FaithfulnessDisplay:
        """Build from an :class:`~captum_srae.SRAEExplanation`."""
        return cls(explanation.model_score, explanation.xnn_score, **kwargs)

    def plot(self, ax: Any = None) -> FaithfulnessDisplay:
        """Draw; ``ax`` is None or one Axes. Returns self."""
        fig, axes = new_axes(1, 1, ax, (4.0, 4.0))
        a = axes[0, 0]
        both = np.concatenate([self.model_score, self.xnn_score])
        lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
        a.plot([lo, hi], [lo, hi], color="grey", linestyle="--", lw=1, label="y = x")
        a.scatter(self.model_score, self.xnn_score, s=12, alpha=0.7, color="C0")
        a.set_xlabel("model score")
        a.set_ylabel("XNN score")
        a.set_aspect("equal", adjustable="datalim")
        a.legend(fontsize="small", loc="upper left")
        head = f"R² = {self.r2_:.3f} (N = {self.model_score.size})"
        a.set_title(head if not self.title else f"{self.title}\n{head}")
        self.figure_, self.ax_ = fig, a
        return self
