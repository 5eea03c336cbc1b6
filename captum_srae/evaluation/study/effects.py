#!/usr/bin/env python3
r"""The effect of one axis of a study's grid (:func:`axis_effect`): a metric
at one level of the axis minus the same metric at another, paired by seed
and by the levels of every other axis, with a bootstrap interval over seeds.

The effect is the mean, over the combinations of the other axes' levels, of
each combination's mean paired difference over seeds. The bootstrap
resamples whole seeds (the independent units, as in
:func:`~captum_srae.evaluation.study.paired_difference`) and recomputes that
statistic; a combination without a pair in a resample is left out of it.
Averaging per combination first keeps a missing or NaN fit from changing
which combinations a seed is compared on. With a grid of one axis the effect
is that paired difference.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from captum_srae.evaluation.study.bootstrap import LEVEL, PairedDifference, by_point
from captum_srae.evaluation.study.grid import Grid, point_levels
from captum_srae.utils.validation import check_int

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
        ``low`` and ``high`` (see the module docstring); ``n`` the seeds
        with at least one pair; ``n_dropped`` the (combination, seed) pairs
        left out because a value was NaN or the metric missing (a seed
        without a fit at one of the two points makes no pair).

    Raises:
        ValueError: if ``axis``, ``a`` or ``b`` is not in the grid, ``a``
            equals ``b``, no record has ``metric``, no record is at a point
            of ``grid``, or fewer than 2 seeds have a pair.

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
    if not set(table) & set(levels):
        example = next(iter(table), None)
        raise ValueError(
            f"grid: no record is at a point of this grid (a record's point: "
            f"{example!r}; a grid point: {next(iter(levels))!r})"
        )
    diffs, dropped = _pair_differences(levels, table, metric, axis, a, b)
    seeds = sorted({s for row in diffs.values() for s in row})
    if len(seeds) < 2:
        raise ValueError(
            f"{axis}={a} and {axis}={b} have pairs on {len(seeds)} seed(s); "
            "an interval needs at least 2"
        )
    matrix = np.array([[row.get(s, np.nan) for s in seeds] for row in diffs.values()])
    mean, low, high = _bootstrap(matrix, n_boot, seed)
    return PairedDifference(
        metric, f"{axis}={a}", f"{axis}={b}", mean, low, high, len(seeds), dropped
    )


def _pair_differences(
    levels: dict[str, dict[str, str]],
    table: dict[str, dict[int, dict]],
    metric: str,
    axis: str,
    a: str,
    b: str,
) -> tuple[dict[tuple, dict[int, float]], int]:
    """``b − a`` per combination of the other axes and per seed, and the
    number of pairs whose value was NaN or missing."""
    others = {
        n: tuple((k, v) for k, v in lv.items() if k != axis) for n, lv in levels.items()
    }
    partner = {others[n]: n for n, lv in levels.items() if lv[axis] == b}
    diffs: dict[tuple, dict[int, float]] = {}
    dropped = 0
    for name, lv in levels.items():
        if lv[axis] != a:
            continue
        at_a, at_b = table.get(name, {}), table.get(partner[others[name]], {})
        row = diffs.setdefault(others[name], {})
        for s in sorted(set(at_a) & set(at_b)):
            d = float(at_b[s].get(metric, math.nan)) - float(
                at_a[s].get(metric, math.nan)
            )
            if math.isfinite(d):
                row[s] = d
            else:
                dropped += 1
    return diffs, dropped


def _bootstrap(
    matrix: np.ndarray, n_boot: int, seed: int
) -> tuple[float, float, float]:
    """The effect of a (combinations, seeds) matrix of differences (NaN: no
    pair) and its percentile interval over seeds resampled with replacement."""
    n_boot = check_int(n_boot, "n_boot", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    with warnings.catch_warnings():  # a combination without pairs: NaN, skipped
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = float(np.nanmean(np.nanmean(matrix, axis=1)))
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, matrix.shape[1], size=(n_boot, matrix.shape[1]))
        means = np.nanmean(np.nanmean(matrix[:, idx], axis=2), axis=0)
    tail = (1 - LEVEL) / 2
    low, high = np.nanquantile(means, [tail, 1 - tail])
    return mean, float(low), float(high)
