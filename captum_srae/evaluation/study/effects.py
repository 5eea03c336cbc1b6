#!/usr/bin/env python3
r"""The effect of one axis of a study's grid (:func:`axis_effect`): a metric
at one level of the axis minus the same metric at another, paired by seed
and by the levels of every other axis, with a bootstrap interval over seeds.

Each seed contributes one number, the mean of its paired differences over
the combinations of the other axes; the bootstrap resamples these per-seed
means (seeds are the independent units, as in
:func:`~captum_srae.evaluation.study.paired_difference`). With a grid of
one axis the effect is that paired difference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from captum_srae.evaluation.study.bootstrap import (
    PairedDifference,
    bootstrap_ci,
    by_point,
)
from captum_srae.evaluation.study.grid import Grid, point_levels

__all__ = ["axis_effect"]


def _check_axis(levels: dict[str, dict[str, str]], axis: str, a: str, b: str) -> None:
    first = next(iter(levels.values()))
    if axis not in first:
        raise ValueError(f"axis: {axis!r} is not an axis of the grid {list(first)}")
    known = list(dict.fromkeys(lv[axis] for lv in levels.values()))
    for label, level in (("a", a), ("b", b)):
        if level not in known:
            raise ValueError(f"{label}: {level!r} is not a level of {axis}: {known}")
    if a == b:
        raise ValueError(f"a and b are the same level {a!r}")


def axis_effect(
    records: Iterable[Mapping[str, Any]],
    grid: Grid,
    metric: str,
    axis: str,
    a: str,
    b: str,
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> PairedDifference:
    """``metric`` at ``axis=b`` minus at ``axis=a``, averaged over the other
    axes' levels, paired by seed.

    Args:
        records (iterable of dict): the study's records
            (:func:`~captum_srae.evaluation.study.load_results`).
        grid (Mapping): the study's grid (``header["study"]["grid"]``).
        metric (str): the metric.
        axis (str): the axis whose effect is measured.
        a, b (str): two level names of ``axis``, as in the point names
            (``"log"``, ``"50"``).
        n_boot (int, optional): bootstrap resamples. Default: 2000
        seed (int, optional): seed of the resampling. Default: 0

    Returns:
        *PairedDifference*: ``a`` and ``b`` as ``"axis=level"``; ``mean``,
        ``low`` and ``high`` over the per-seed mean differences; ``n`` the
        seeds with at least one pair; ``n_dropped`` the pairs left out
        because a value was NaN or missing.

    Raises:
        ValueError: if ``axis``, ``a`` or ``b`` is not in the grid, ``a``
            equals ``b``, no record has ``metric``, or fewer than 2 seeds
            have a pair.

    Examples::

        >>> header, records = load_results("two_part.jsonl")  # doctest: +SKIP
        >>> axis_effect(records, header["study"]["grid"], "top_share",
        ...             "reconstruction", "log", "mse")  # doctest: +SKIP
    """
    levels = point_levels(grid)
    _check_axis(levels, axis, a, b)
    table = by_point(records)
    if not any(metric in m for seeds in table.values() for m in seeds.values()):
        raise ValueError(f"metric: no record has {metric!r}")
    others = {
        name: tuple((k, v) for k, v in lv.items() if k != axis)
        for name, lv in levels.items()
    }
    partner = {others[n]: n for n, lv in levels.items() if lv[axis] == b}
    per_seed: dict[int, list[float]] = {}
    dropped = 0
    for name, lv in levels.items():
        if lv[axis] != a:
            continue
        at_a, at_b = table.get(name, {}), table.get(partner[others[name]], {})
        for s in sorted(set(at_a) & set(at_b)):
            d = float(at_b[s].get(metric, math.nan)) - float(
                at_a[s].get(metric, math.nan)
            )
            if math.isfinite(d):
                per_seed.setdefault(s, []).append(d)
            else:
                dropped += 1
    diffs = [sum(v) / len(v) for _, v in sorted(per_seed.items())]
    if len(diffs) < 2:
        raise ValueError(
            f"{axis}={a} and {axis}={b} have pairs on {len(diffs)} seed(s); "
            "an interval needs at least 2"
        )
    mean, low, high = bootstrap_ci(diffs, n_boot=n_boot, seed=seed)
    return PairedDifference(
        metric, f"{axis}={a}", f"{axis}={b}", mean, low, high, len(diffs), dropped
    )
