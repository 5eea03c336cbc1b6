#!/usr/bin/env python3
r"""Running a study: every grid point times every seed, one fit each,
recorded in a resumable JSON lines file (:func:`run_study`)."""

from __future__ import annotations

import numbers
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from tqdm.auto import tqdm

from captum_srae.core.config import SRAEConfig
from captum_srae.evaluation.study.grid import (
    Grid,
    GridPoint,
    expand_grid,
    point_config,
)
from captum_srae.evaluation.study.problems import ProblemData, StudyProblem
from captum_srae.evaluation.study.results import (
    append_record,
    open_results,
    study_header,
)
from captum_srae.evaluation.study.scoring import common_metrics
from captum_srae.training.fit import fit_srae
from captum_srae.training.history import TrainingDivergedError, quiet_quality_warnings
from captum_srae.training.jobs import resolve_n_jobs, run_jobs
from captum_srae.utils.atomic import PathLike

__all__ = ["base_fields", "check_seeds", "fit_point", "run_study"]


def check_seeds(seeds: Any) -> list[int]:
    """``seeds`` as a list of at least 2 distinct non-negative ints.

    Raises:
        ValueError: otherwise (naming ``seeds``).
    """
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        raise ValueError(
            f"seeds must be a sequence of ints, got {type(seeds).__name__}"
        )
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
            raise ValueError(f"seeds must be non-negative ints, got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {list(seeds)}")
    if len(seeds) < 2:
        raise ValueError(
            f"seeds: a confidence interval needs at least 2 seeds, got {list(seeds)}"
        )
    return [int(s) for s in seeds]


def base_fields(base_config: SRAEConfig | Mapping[str, Any] | None) -> dict[str, Any]:
    """The SRAEConfig fields shared by every fit of a study.

    Args:
        base_config (SRAEConfig, Mapping or None): a configuration (every
            field but ``seed`` is kept), a mapping of fields, or None (the
            defaults: no field).

    Returns:
        *dict*: JSON-ready fields, without ``seed``.

    Raises:
        ValueError: if the mapping sets ``seed`` or SRAEConfig rejects it
            (the message names ``base_config``).
    """
    if base_config is None:
        return {}
    if isinstance(base_config, SRAEConfig):
        fields = base_config.to_dict()
        fields.pop("seed")
        return fields
    if not isinstance(base_config, Mapping):
        raise ValueError(
            "base_config must be an SRAEConfig or a mapping of its fields, got "
            f"{type(base_config).__name__}"
        )
    if "seed" in base_config:
        raise ValueError("base_config must not set seed; the study's seeds do")
    try:
        config = SRAEConfig.from_dict(base_config)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"base_config: {exc}") from None
    fields = config.to_dict()
    return {k: fields[k] for k in base_config}


def fit_point(
    problem: StudyProblem, data: ProblemData, config: SRAEConfig
) -> tuple[dict[str, float], str | None]:
    """Fit one SRAE on the problem's training rows and score it.

    Args:
        problem (StudyProblem): supplies the problem's own metrics.
        data (ProblemData): the problem's data.
        config (SRAEConfig): the fit's configuration.

    Returns:
        *tuple[dict, str or None]*: the metrics (:func:`common_metrics`, then
        the problem's), and None; or, for a fit that diverged
        (:class:`~captum_srae.training.history.TrainingDivergedError`), no
        metrics and the error's message.
    """
    start = time.perf_counter()
    try:
        with quiet_quality_warnings():  # recorded as metrics
            srae, history = fit_srae(
                data.z_train, data.y_train, config, show_progress=False
            )
    except TrainingDivergedError as exc:
        return {}, f"TrainingDivergedError: {exc}"
    seconds = time.perf_counter() - start
    metrics = common_metrics(srae, data, history, seconds)
    metrics.update(problem.score(srae, data))
    return metrics, None


def run_study(
    problem: StudyProblem,
    grid: Grid,
    seeds: Sequence[int],
    out: PathLike,
    *,
    base_config: SRAEConfig | Mapping[str, Any] | None = None,
    show_progress: bool = True,
    n_jobs: int | None = None,
) -> list[dict[str, Any]]:
    r"""Fit every grid point with every seed, score it, record it in ``out``.

    Each fit uses ``SRAEConfig(**base_config, **point.overrides,
    seed=seed)`` (the point's fields win over the base) on the problem's
    training rows; its metrics (:func:`common_metrics` and
    ``problem.score``) are appended to ``out`` as one JSON line, flushed
    and fsynced (format: :mod:`~captum_srae.evaluation.study.results`).
    Running again with the same problem, grid and base config resumes: the
    fits already in ``out`` are skipped (more seeds can be added this way).

    Args:
        problem (StudyProblem): the problem (e.g. :class:`SyntheticProblem`).
        grid (Mapping): the grid (see :func:`expand_grid`).
        seeds (sequence of int): at least 2 distinct non-negative seeds.
        out (str or PathLike): the results file (JSON lines).
        base_config (SRAEConfig or Mapping, optional): fields shared by every
            fit. Default: None (the SRAEConfig defaults)
        show_progress (bool, optional): a ``tqdm`` bar over the fits.
            Default: True
        n_jobs (int, optional): fits run side by side in one-thread worker
            processes (:func:`~captum_srae.training.jobs.run_jobs`), recorded
            in order after each group of ``n_jobs``. Default: None (one per
            usable CPU)

    Returns:
        *list[dict]*: every record of the study (those already in ``out``,
        then the new ones): ``point``, ``seed``, ``config``, ``metrics``
        (and ``error`` for a diverged fit, whose metrics are empty).

    Raises:
        ValueError: if ``seeds`` has fewer than 2 distinct non-negative ints,
            the grid or base config is invalid (see :func:`expand_grid`),
            or ``out`` was written by another study or is not a results file.

    Examples::

        >>> records = run_study(SyntheticProblem(), QUICK_GRID, [0, 1],
        ...                     "study.jsonl")  # doctest: +SKIP
        >>> print(format_summary(summarize(records, ["r2"])))  # doctest: +SKIP
    """
    seeds = check_seeds(seeds)
    base = base_fields(base_config)
    points = expand_grid(grid, base)
    workers = resolve_n_jobs(n_jobs, len(points) * len(seeds))  # before any file
    records = open_results(out, study_header(problem, grid, base))
    done = {(r["point"], r["seed"]) for r in records}
    todo = [(p, s) for p in points for s in seeds if (p.name, s) not in done]
    if not todo:
        return records
    data = problem.load()
    with tqdm(total=len(todo), desc="study", disable=not show_progress) as bar:
        for start in range(0, len(todo), workers):
            group = todo[start : start + workers]
            configs = [point_config(p, base, seed) for p, seed in group]
            jobs = [(problem, data, config) for config in configs]
            results = run_jobs(fit_point, jobs, workers)
            for (point, seed), config, (result, caught) in zip(
                group, configs, results, strict=True
            ):
                for message, category in caught:
                    warnings.warn(message, category, stacklevel=2)
                records.append(_record(point, seed, config, *result, out))
                bar.update(1)
    return records


def _record(
    point: GridPoint,
    seed: int,
    config: SRAEConfig,
    metrics: dict[str, float],
    error: str | None,
    out: PathLike,
) -> dict[str, Any]:
    """Record one fitted and scored (point, seed) in ``out``."""
    record: dict[str, Any] = {
        "point": point.name,
        "seed": seed,
        "config": config.to_dict(),
        "metrics": metrics,
    }
    if error is not None:
        record["error"] = error
    append_record(out, record)
    return record
