#!/usr/bin/env python3
r"""Display objects in the scikit-learn style for SRAE explanations.

Each class is built with ``from_explanation(...)`` (from an
:class:`~captum_srae.SRAEExplanation` and the images it explains) or
``from_explainer(...)`` (from a fitted :class:`~captum_srae.SRAEAttribution`),
draws with ``plot(ax=None)``, which returns ``self`` and sets ``figure_`` and
``ax_``, and writes files with ``save(path)``. Nothing calls ``plt.show()``:
new figures are bare :class:`~matplotlib.figure.Figure` objects. Heatmap
panels are drawn by Captum's ``visualize_image_attr``; the numbers come from
:mod:`captum_srae.visualization.render`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from captum_srae.utils.validation import check_int
from captum_srae.visualization import render
from captum_srae.visualization.base import (
    ExplainedDisplay,
    draw_heatmap,
    draw_image,
    new_axes,
)

__all__ = ["ConceptGalleryDisplay", "ExplanationDisplay", "ExplanationGridDisplay"]


def _images(images: Any) -> list[np.ndarray]:
    """A batch ``(N, C, H, W)`` (or a sequence of images) as HWC arrays."""
    if isinstance(images, tuple):  # Captum-style tuple of inputs: the first
        images = images[0]
    return [render.to_hwc(img) for img in images]


def _maps(heatmaps: Any, size: tuple[int, int]) -> np.ndarray:
    """``(n, H, W)`` maps (a channel axis of 1 is dropped) resized to ``size``."""
    m = render.to_numpy(heatmaps)
    if m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.ndim != 3:
        raise ValueError(f"heatmaps must be (n, H, W) per image, got {m.shape}")
    return np.stack([render.resize_nearest(k, size) for k in m])


class ExplanationDisplay(ExplainedDisplay):
    r"""The explanation of one image (method.md §5, the paper's figures).

    The original image, then one panel per x-feature sorted by decreasing
    contribution ``e_k v_k``, each its heatmap blended over the image and
    titled ``r=<r_k> (<e_k v_k>)`` in a warm colour for positive and a cool
    one for negative evidence; the header gives the model's score and the
    XNN's reconstructed score.

    Args:
        image (Tensor or ndarray): ``(C, H, W)`` or ``(H, W, C)``.
        heatmaps (Tensor or ndarray): ``(n, H', W')``, resized to the image.
        contributions (Tensor or ndarray): ``(n,)``.
        model_score (float, optional): the model's score. Default: None
        xnn_score (float, optional): the XNN's score. Default: None
        target (int, optional): the explained class. Default: None
        alpha (float, optional): opacity of the maps. Default: 0.5
        outlier_perc (float, optional): Captum's outlier percentage.
            Default: 2.0

    Attributes:
        order (ndarray): x-feature indices in panel order.
        ratios (ndarray): ``r_k`` of each x-feature (unsorted).
        figure_, ax_: set by :meth:`plot`; ``ax_`` holds ``1 + n`` axes.

    Examples::

        >>> ex = sa.explain(x, target=3)
        >>> ExplanationDisplay.from_explanation(ex, x, index=0).plot().save("a.png")
    """

    def __init__(
        self,
        image: Any,
        heatmaps: Any,
        contributions: Any,
        *,
        model_score: float | None = None,
        xnn_score: float | None = None,
        target: int | None = None,
        alpha: float = 0.5,
        outlier_perc: float = 2.0,
    ) -> None:
        self.image = render.to_hwc(image)
        self.heatmaps = _maps(heatmaps, self.image.shape[:2])
        self.contributions = render.to_numpy(contributions).ravel()
        if self.contributions.size != self.heatmaps.shape[0]:
            raise ValueError("one contribution per heatmap is needed")
        self.model_score, self.xnn_score, self.target = model_score, xnn_score, target
        self.alpha, self.outlier_perc = alpha, outlier_perc
        self.order = render.contribution_order(self.contributions)
        self.ratios = render.contribution_ratios(self.contributions)

    @classmethod
    def from_explanation(
        cls, explanation: Any, images: Any, index: int = 0, **kwargs: Any
    ) -> ExplanationDisplay:
        """Build from an :class:`~captum_srae.SRAEExplanation` and its images."""
        ex, img = explanation, _images(images)[index]
        return cls(
            img,
            ex.heatmaps[index],
            ex.contributions[index],
            model_score=float(ex.model_score[index]),
            xnn_score=float(ex.xnn_score[index]),
            target=int(ex.target[index]),
            **kwargs,
        )

    def header(self) -> str:
        """The figure's header: class, model score and XNN score."""
        parts = [] if self.target is None else [f"class {self.target}"]
        if self.model_score is not None:
            parts.append(f"model score {self.model_score:.3g}")
        if self.xnn_score is not None:
            parts.append(f"XNN score {self.xnn_score:.3g}")
        return " | ".join(parts)

    def titles(self) -> list[str]:
        """Panel titles of the x-features, in panel order."""
        c, r = self.contributions, self.ratios
        return [f"#{k} " + render.format_contribution(r[k], c[k]) for k in self.order]

    def draw_row(self, axes: Sequence[Any], image_title: str) -> None:
        """Draw the image and the x-feature panels into ``1 + n`` axes."""
        draw_image(axes[0], self.image, image_title)
        for a, k, title in zip(axes[1:], self.order, self.titles(), strict=True):
            draw_heatmap(
                a,
                self.image,
                self.heatmaps[k],
                float(self.contributions[k]),
                title,
                alpha=self.alpha,
                outlier_perc=self.outlier_perc,
            )

    def plot(self, ax: Any = None) -> ExplanationDisplay:
        """Draw; ``ax`` is None (new figure) or ``1 + n`` axes. Returns self."""
        fig, axes = new_axes(1, 1 + self.order.size, ax, (2.0, 2.3))
        self.draw_row(axes[0], "image")
        fig.suptitle(self.header(), fontsize="medium")
        self.figure_, self.ax_ = fig, axes[0]
        return self


class ExplanationGridDisplay(ExplainedDisplay):
    r"""Several explanations as rows, like the figures of the paper.

    Args:
        rows (Sequence[ExplanationDisplay]): one per image, with the same
            number of x-features.
        title (str, optional): the figure's header. Default: None

    Attributes:
        figure_, ax_: set by :meth:`plot`; ``ax_`` is ``(rows, 1 + n)``.
    """

    def __init__(
        self, rows: Sequence[ExplanationDisplay], title: str | None = None
    ) -> None:
        if not rows or len({r.order.size for r in rows}) != 1:
            raise ValueError("rows must be non-empty with equal numbers of panels")
        self.rows, self.title = list(rows), title

    @classmethod
    def from_explanation(
        cls,
        explanation: Any,
        images: Any,
        indices: Sequence[int] | None = None,
        *,
        title: str | None = None,
        **kwargs: Any,
    ) -> ExplanationGridDisplay:
        """One row per example in ``indices`` (default: all)."""
        n = int(explanation.contributions.shape[0])
        idx = range(n) if indices is None else indices
        make = ExplanationDisplay.from_explanation
        return cls([make(explanation, images, i, **kwargs) for i in idx], title)

    def plot(self, ax: Any = None) -> ExplanationGridDisplay:
        """Draw; ``ax`` is None or ``rows × (1 + n)`` axes. Returns self."""
        n = self.rows[0].order.size
        fig, axes = new_axes(len(self.rows), 1 + n, ax, (2.0, 2.2))
        for row, axs in zip(self.rows, axes, strict=True):
            row.draw_row(axs, row.header().replace(" | ", "\n"))
        if self.title:
            fig.suptitle(self.title, fontsize="medium")
        self.figure_, self.ax_ = fig, axes
        return self


class ConceptGalleryDisplay(ExplainedDisplay):
    r"""For each x-feature, the top-``k`` images of a data set with their maps.

    Images are ranked by the x-feature's value ``e_k`` (``by="value"``) or by
    its contribution ``e_k v_k`` (``by="contribution"``), highest first.

    Args:
        images (Tensor or ndarray): ``(N, C, H, W)`` or a sequence of images.
        heatmaps (Tensor or ndarray): ``(N, n, H', W')``.
        scores (Tensor or ndarray): ``(N, n)``, the ranking key.
        contributions (Tensor or ndarray, optional): ``(N, n)``; chooses each
            panel's colour by sign. Default: None (``scores``)
        k (int, optional): images per x-feature. Default: 4
        concepts (Sequence[int], optional): the x-features shown.
            Default: None (all)
        score_name (str, optional): label of the score in titles.
            Default: "e"
        alpha, outlier_perc: as in :class:`ExplanationDisplay`.

    Attributes:
        indices_ (ndarray): ``(len(concepts), k)`` image indices by rank.
        figure_, ax_: set by :meth:`plot`; ``ax_`` is ``(concepts, k)``.
    """

    def __init__(
        self,
        images: Any,
        heatmaps: Any,
        scores: Any,
        contributions: Any = None,
        *,
        k: int = 4,
        concepts: Sequence[int] | None = None,
        score_name: str = "e",
        alpha: float = 0.5,
        outlier_perc: float = 2.0,
    ) -> None:
        self.images = _images(images)
        self.heatmaps = render.to_numpy(heatmaps)
        self.scores = render.to_numpy(scores)
        c = scores if contributions is None else contributions
        self.contributions = render.to_numpy(c)
        n_img, n_con = self.scores.shape
        if self.heatmaps.shape[:2] != (n_img, n_con) or len(self.images) != n_img:
            raise ValueError("images, heatmaps and scores disagree in shape")
        self.k = min(check_int(k, "k"), n_img)
        self.concepts = list(range(n_con)) if concepts is None else list(concepts)
        self.score_name, self.alpha, self.outlier_perc = score_name, alpha, outlier_perc
        ranks = np.argsort(-self.scores, axis=0, kind="stable")[: self.k]
        self.indices_ = ranks.T[self.concepts]

    @classmethod
    def from_explanation(
        cls, explanation: Any, images: Any, *, by: str = "value", **kwargs: Any
    ) -> ConceptGalleryDisplay:
        """Build from an explanation of a data set; ``by`` is value/contribution."""
        if by not in ("value", "contribution"):
            raise ValueError(f"by must be 'value' or 'contribution', got {by!r}")
        ex = explanation
        scores = ex.x_features if by == "value" else ex.contributions
        name = "e" if by == "value" else "ev"
        return cls(
            images, ex.heatmaps, scores, ex.contributions, score_name=name, **kwargs
        )

    def plot(self, ax: Any = None) -> ConceptGalleryDisplay:
        """Draw; ``ax`` is None or ``concepts × k`` axes. Returns self."""
        fig, axes = new_axes(len(self.concepts), self.k, ax, (1.8, 1.9))
        for row, concept in enumerate(self.concepts):
            for col, i in enumerate(self.indices_[row]):
                img = self.images[i]
                hm = render.resize_nearest(self.heatmaps[i, concept], img.shape[:2])
                title = f"#{i}: {self.score_name}={self.scores[i, concept]:.3g}"
                contribution = float(self.contributions[i, concept])
                draw_heatmap(
                    axes[row, col],
                    img,
                    hm,
                    contribution,
                    title,
                    alpha=self.alpha,
                    outlier_perc=self.outlier_perc,
                )
            axes[row, 0].set_ylabel(f"x-feature {concept}")
        fig.suptitle(f"top {self.k} images per x-feature", fontsize="medium")
        self.figure_, self.ax_ = fig, axes
        return self
