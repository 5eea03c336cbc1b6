#!/usr/bin/env python3
r"""The trade-off plot of a study: one metric against another, a marker per
grid point at the means over seeds, with the 95 % bootstrap intervals as
error bars in both directions (:func:`plot_tradeoff`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from captum_srae.evaluation.study.bootstrap import summarize

__all__ = ["plot_tradeoff"]


def plot_tradeoff(
    records: Sequence[dict[str, Any]],
    x: str,
    y: str,
    *,
    labels: dict[str, str] | None = None,
    ax: Any = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> Any:
    r"""Plot metric ``y`` against metric ``x`` for every grid point of a study.

    Args:
        records (Sequence[dict]): the study's records
            (:func:`~captum_srae.evaluation.study.load_results`).
        x (str): the metric on the horizontal axis (e.g. ``"r2"``).
        y (str): the metric on the vertical axis (e.g. ``"top_share"``).
        labels (dict[str, str], optional): a short label per grid point name.
            Default: None (the names)
        ax (matplotlib.axes.Axes, optional): where to draw. Default: None (a
            new figure)
        n_boot (int, optional): bootstrap resamples. Default: 2000
        seed (int, optional): seed of the bootstrap. Default: 0

    Returns:
        *matplotlib.axes.Axes*: the axes drawn on.

    Raises:
        ValueError: if no record has ``x`` or ``y`` (from :func:`summarize`).

    Examples::

        >>> header, records = load_results("parts.jsonl")  # doctest: +SKIP
        >>> plot_tradeoff(records, "r2", "part_purity").figure.savefig("t.png")
    """
    import matplotlib.pyplot as plt

    rows = summarize(records, [x, y], n_boot=n_boot, seed=seed)
    stats = {(r.point, r.metric): r for r in rows}
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.0))
    for point in dict.fromkeys(r.point for r in rows):
        sx, sy = stats.get((point, x)), stats.get((point, y))
        if sx is None or sy is None:
            continue
        xerr = [[sx.mean - sx.low], [sx.high - sx.mean]] if sx.n > 1 else None
        yerr = [[sy.mean - sy.low], [sy.high - sy.mean]] if sy.n > 1 else None
        ax.errorbar(sx.mean, sy.mean, xerr=xerr, yerr=yerr, fmt="o", capsize=3)
        name = (labels or {}).get(point, point)
        ax.annotate(name, (sx.mean, sy.mean), textcoords="offset points",
                    xytext=(5, 4), fontsize=8)  # fmt: skip
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title("mean over seeds, 95 % bootstrap intervals", fontsize=9)
    return ax
