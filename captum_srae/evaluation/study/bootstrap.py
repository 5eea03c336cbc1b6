#!/usr/bin/env python3
r"""Statistics of a study over seeds: percentile bootstrap confidence
intervals per grid point (:func:`summarize`) and paired differences between
two points (:func:`paired_difference`).

The bootstrap resamples seeds (whole fits) with replacement, ``n_boot``
times, with a seeded :class:`numpy.random.Generator`; the interval is the
2.5 and 97.5 percentiles of the resampled means (Efron and Tibshirani, *An
Introduction to the Bootstrap*, 1993, ch. 13). NaN values (a metric a fit
could not measure) are dropped seed by seed and counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from captum_srae.utils.validation import check_int

__all__ = [
    "MetricSummary",
    "PairedDifference",
    "bootstrap_ci",
    "by_point",
    "paired_difference",
    "summarize",
]

LEVEL = 0.95


class MetricSummary(NamedTuple):
    """One metric of one grid point over seeds.

    Attributes:
        point (str): the grid point's name.
        metric (str): the metric.
        mean (float): mean over the seeds with a value.
        low, high (float): the 95 % percentile bootstrap interval of the mean
            (NaN with fewer than 2 values).
        n (int): seeds with a value.
        n_dropped (int): seeds whose value was NaN (or missing).
    """

    point: str
    metric: str
    mean: float
    low: float
    high: float
    n: int
    n_dropped: int


class PairedDifference(NamedTuple):
    """``b − a`` of one metric over the seeds both grid points have.

    Attributes:
        metric, a, b (str): the metric and the two points.
        mean (float): mean difference.
        low, high (float): its 95 % percentile bootstrap interval.
        n (int): seeds with both values.
        n_dropped (int): common seeds dropped because a value was NaN.
    """

    metric: str
    a: str
    b: str
    mean: float
    low: float
    high: float
    n: int
    n_dropped: int


def bootstrap_ci(
    values: Sequence[float], *, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    r"""Mean and 95 % percentile bootstrap interval of the mean.

    ``n_boot`` resamples of the ``n`` values with replacement (one
    ``Generator.integers(0, n, (n_boot, n))`` draw of
    ``numpy.random.default_rng(seed)``); the interval is the 2.5 and 97.5
    percentiles (linear interpolation) of the resampled means.

    Args:
        values (sequence of float): finite values (one per seed).
        n_boot (int, optional): resamples. Default: 2000
        seed (int, optional): seed of the resampling. Default: 0

    Returns:
        *tuple[float, float, float]*: mean, low, high; low and high are NaN
        with fewer than 2 values, all three with none.

    Raises:
        ValueError: if a value is not finite, ``n_boot < 1`` or ``seed < 0``.

    Examples::

        >>> bootstrap_ci([1.0, 1.0, 1.0])
        (1.0, 1.0, 1.0)
    """
    n_boot = check_int(n_boot, "n_boot", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.isfinite(x).all():
        raise ValueError("values must be finite (drop NaN values first)")
    if x.size == 0:
        return math.nan, math.nan, math.nan
    if x.size == 1:
        return float(x[0]), math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    tail = (1 - LEVEL) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(x.mean()), float(low), float(high)


def by_point(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[int, dict]]:
    """The metrics of each grid point by seed, points in order of first
    appearance (a later record of the same point and seed wins).

    Args:
        records (iterable of dict): study records (``point``, ``seed``,
            ``metrics``).

    Returns:
        *dict[str, dict[int, dict[str, float]]]*
    """
    table: dict[str, dict[int, dict]] = {}
    for rec in records:
        table.setdefault(rec["point"], {})[int(rec["seed"])] = dict(rec["metrics"])
    return table


def _metric_names(table: dict[str, dict[int, dict]]) -> list[str]:
    names: dict[str, None] = {}
    for seeds in table.values():
        for metrics in seeds.values():
            names.update(dict.fromkeys(metrics))
    return list(names)


def _finite(values: Iterable[Any]) -> tuple[list[float], int]:
    """The finite values and how many others there were."""
    kept, dropped = [], 0
    for v in values:
        if v is not None and math.isfinite(float(v)):
            kept.append(float(v))
        else:
            dropped += 1
    return kept, dropped


def summarize(
    records: Iterable[Mapping[str, Any]],
    metrics: Sequence[str] | None = None,
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> list[MetricSummary]:
    """Mean and 95 % bootstrap interval over seeds of every metric of every
    grid point.

    Args:
        records (iterable of dict): study records (see
            :func:`~captum_srae.evaluation.study.load_results`).
        metrics (sequence of str, optional): the metrics, in this order.
            Default: None (every metric of the records, in order of first
            appearance)
        n_boot (int, optional): bootstrap resamples. Default: 2000
        seed (int, optional): seed of the resampling. Default: 0

    Returns:
        *list[MetricSummary]*: point by point, then metric by metric.

    Raises:
        ValueError: if ``metrics`` names a metric no record has.
    """
    table = by_point(records)
    known = _metric_names(table)
    names = known if metrics is None else list(metrics)
    unknown = [m for m in names if m not in known]
    if unknown:
        raise ValueError(f"metrics: no record has {unknown}; known: {known}")
    rows = []
    for point, seeds in table.items():
        for metric in names:
            kept, dropped = _finite(m.get(metric) for m in seeds.values())
            mean, low, high = bootstrap_ci(kept, n_boot=n_boot, seed=seed)
            rows.append(
                MetricSummary(point, metric, mean, low, high, len(kept), dropped)
            )
    return rows


def paired_difference(
    records: Iterable[Mapping[str, Any]],
    metric: str,
    a: str,
    b: str,
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> PairedDifference:
    """The difference ``b − a`` of a metric, paired by seed.

    Args:
        records (iterable of dict): study records.
        metric (str): the metric.
        a, b (str): the names of the two grid points.
        n_boot (int, optional): bootstrap resamples. Default: 2000
        seed (int, optional): seed of the resampling. Default: 0

    Returns:
        *PairedDifference*: mean and 95 % bootstrap interval over the seeds
        both points have; seeds where either value is NaN are dropped.

    Raises:
        ValueError: if ``a`` or ``b`` is not a point of the records, no
            record has ``metric``, or the points share fewer than 2 seeds.
    """
    table = by_point(records)
    for label, point in (("a", a), ("b", b)):
        if point not in table:
            raise ValueError(
                f"{label}: unknown grid point {point!r}; the records hold {list(table)}"
            )
    if metric not in _metric_names(table):
        raise ValueError(f"metric: no record has {metric!r}")
    common = sorted(set(table[a]) & set(table[b]))
    if len(common) < 2:
        raise ValueError(
            f"points {a!r} and {b!r} share {len(common)} seed(s); a paired "
            "difference needs at least 2"
        )
    nan = math.nan
    diffs = [
        float(table[b][s].get(metric, nan)) - float(table[a][s].get(metric, nan))
        for s in common
    ]
    kept, dropped = _finite(diffs)
    mean, low, high = bootstrap_ci(kept, n_boot=n_boot, seed=seed)
    return PairedDifference(metric, a, b, mean, low, high, len(kept), dropped)
