#!/usr/bin/env python3
"""What every Display shares: the figure, saving, and one heatmap panel."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from captum.attr import visualization as viz
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from captum_srae.visualization import render

__all__ = [
    "SAVE_FORMATS",
    "Display",
    "ExplainedDisplay",
    "draw_heatmap",
    "draw_image",
    "new_axes",
]

#: File suffixes :meth:`Display.save` accepts.
SAVE_FORMATS = (".png", ".svg", ".pdf")
#: Colormaps of positive (warm) and negative (cool) evidence.
CMAPS = {True: "Reds", False: "Blues"}


class Display:
    """Base of the Display classes: ``plot`` sets ``figure_`` and ``ax_``."""

    figure_: Figure
    ax_: Any

    def plot(self, ax: Any = None) -> Display:  # pragma: no cover - abstract
        raise NotImplementedError

    def save(self, path: str | os.PathLike[str], *, dpi: int = 100) -> Path:
        r"""Save the figure (plotting it first if needed) as PNG, SVG or PDF.

        Args:
            path (str or PathLike): the file; its suffix chooses the format.
            dpi (int, optional): resolution of raster output. Default: 100

        Returns:
            *Path*: ``path``.

        Raises:
            ValueError: on an unsupported suffix.
        """
        out = Path(path)
        if out.suffix.lower() not in SAVE_FORMATS:
            raise ValueError(f"save supports {SAVE_FORMATS}, got {out.name!r}")
        if not hasattr(self, "figure_"):
            self.plot()
        out.parent.mkdir(parents=True, exist_ok=True)
        self.figure_.savefig(out, dpi=dpi, metadata=_metadata(out))
        return out


class ExplainedDisplay(Display):
    """Base of the Displays of an explanation, built with ``from_explanation``."""

    #: Whether ``from_explanation`` takes the explained images after the
    #: explanation.
    shows_images: ClassVar[bool] = True

    @classmethod
    def from_explainer(
        cls,
        explainer: Any,
        inputs: Any,
        target: Any = None,
        *args: Any,
        explain_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Self:
        """Explain ``inputs`` with a fitted explainer and build the display.

        ``explain_kwargs`` go to ``explainer.explain(inputs, target, ...)``;
        ``args`` and ``kwargs`` to ``from_explanation``, after the explanation
        (and ``inputs`` when :attr:`shows_images`).
        """
        ex = explainer.explain(inputs, target, **(explain_kwargs or {}))
        images = (inputs,) if cls.shows_images else ()
        return cls.from_explanation(ex, *images, *args, **kwargs)  # type: ignore[attr-defined]


def _metadata(path: Path) -> dict[str, Any]:
    """Drop the date and version stamps so that saved files are reproducible."""
    suffix = path.suffix.lower()
    if suffix == ".png":
        return {"Software": None}
    if suffix == ".svg":
        return {"Date": None, "Creator": None}
    return {"CreationDate": None, "Creator": None, "Producer": None}


def new_axes(
    nrows: int, ncols: int, ax: Any, size: tuple[float, float]
) -> tuple[Figure, np.ndarray]:
    """``nrows × ncols`` axes: new ones on a new Figure, or the given ones.

    A new figure is a bare :class:`~matplotlib.figure.Figure` (no pyplot, so
    nothing is shown and nothing leaks into pyplot's figure list).

    Raises:
        ValueError: if ``ax`` does not hold ``nrows * ncols`` axes.
    """
    if ax is None:
        fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
        axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False), dtype=object)
        return fig, axes
    flat = np.asarray([ax] if isinstance(ax, Axes) else ax, dtype=object).ravel()
    if flat.size != nrows * ncols or not all(isinstance(a, Axes) for a in flat):
        raise ValueError(f"ax must hold {nrows * ncols} matplotlib Axes")
    return flat[0].figure, flat.reshape(nrows, ncols)


def _bare(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def draw_image(ax: Axes, image: np.ndarray, title: str | None = None) -> None:
    """Show an ``(H, W, 3)`` image in ``[0, 1]`` without ticks."""
    ax.imshow(image)
    _bare(ax)
    if title is not None:
        ax.set_title(title, fontsize="small")


def draw_heatmap(
    ax: Axes,
    image: np.ndarray,
    heatmap: np.ndarray,
    contribution: float,
    title: str | None,
    *,
    alpha: float = 0.5,
    outlier_perc: float = 2.0,
) -> bool:
    r"""One x-feature panel: the map blended over the image by Captum.

    Drawn with :func:`captum.attr.visualization.visualize_image_attr`
    (``blended_heat_map``, ``use_pyplot=False``), ``Reds`` for a positive
    contribution and ``Blues`` otherwise; the title takes the sign's colour.
    A map without any non-zero value (which Captum refuses to normalise) is
    replaced by the image alone with the note "all-zero map".

    Returns:
        *bool*: False when the map was blank and the image was drawn alone.
    """
    fig = ax.figure
    blank = render.is_blank(heatmap)
    if blank:
        draw_image(ax, image)
        ax.text(
            0.5,
            0.04,
            "all-zero map",
            transform=ax.transAxes,
            ha="center",
            va="bottom",
            fontsize="x-small",
            bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0},
        )
    else:
        attr = render.unit_scale(heatmap)[:, :, None]
        viz.visualize_image_attr(
            attr,
            image,
            method="blended_heat_map",
            sign="absolute_value",
            cmap=CMAPS[contribution >= 0],
            alpha_overlay=alpha,
            outlier_perc=outlier_perc,
            plt_fig_axis=(fig, ax),
            use_pyplot=False,
        )
        _bare(ax)
    if title is not None:
        ax.set_title(title, fontsize="small", color=render.sign_colour(contribution))
    return not blank
