#!/usr/bin/env python3
r"""Markdown rendering of a study's statistics."""

from __future__ import annotations

import math
from collections.abc import Sequence

from captum_srae.evaluation.study.bootstrap import MetricSummary, PairedDifference

__all__ = ["format_difference", "format_summary"]


def _num(x: float, digits: int) -> str:
    return "nan" if math.isnan(x) else f"{x:.{digits}g}"


def _cell(row: MetricSummary | PairedDifference, digits: int, seeds: int) -> str:
    text = _num(row.mean, digits)
    if not math.isnan(row.low):
        text += f" [{_num(row.low, digits)}, {_num(row.high, digits)}]"
    if row.n != seeds:
        text += f" (n={row.n})"
    return text


def format_summary(summary: Sequence[MetricSummary], *, digits: int = 4) -> str:
    """A Markdown table: one row per grid point, one column per metric, each
    cell ``mean [low, high]`` (the 95 % bootstrap interval), with ``(n=k)``
    when NaN values left only ``k`` of the point's seeds.

    Args:
        summary (sequence of MetricSummary): from :func:`summarize`.
        digits (int, optional): significant digits. Default: 4

    Returns:
        *str*: the table, ending with a newline ("" for an empty summary).

    Examples::

        >>> print(format_summary(summarize(records, ["r2"])))  # doctest: +SKIP
        | point | seeds | r2 |
        |---|---:|---:|
        | reconstruction=log,pull_away=off | 3 | 0.9712 [0.9654, 0.9771] |
    """
    points: dict[str, list[MetricSummary]] = {}
    for row in summary:
        points.setdefault(row.point, []).append(row)
    if not points:
        return ""
    metrics = [row.metric for row in next(iter(points.values()))]
    lines = [
        "| point | seeds | " + " | ".join(metrics) + " |",
        "|---|---:|" + "---:|" * len(metrics),
    ]
    for point, rows in points.items():
        seeds = max(r.n + r.n_dropped for r in rows)
        cells = [_cell(r, digits, seeds) for r in rows]
        lines.append(f"| {point} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_difference(diff: PairedDifference, *, digits: int = 4) -> str:
    """One line: ``metric: b − a = mean [low, high] over n paired seeds``.

    Args:
        diff (PairedDifference): from :func:`paired_difference`.
        digits (int, optional): significant digits. Default: 4

    Returns:
        *str*: without a final newline.
    """
    text = (
        f"{diff.metric}: {diff.b} - {diff.a} = {_cell(diff, digits, diff.n)} "
        f"over {diff.n} paired seeds"
    )
    if diff.n_dropped:
        text += f" ({diff.n_dropped} dropped: NaN)"
    return text
