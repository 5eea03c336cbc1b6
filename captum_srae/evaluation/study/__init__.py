#!/usr/bin/env python3
r"""Concept-quality studies: many fits of the SRAE over a grid of settings
and seeds, scored on problems with known answers, with bootstrap confidence
intervals.

- :mod:`~captum_srae.evaluation.study.grid`: the grid of SRAEConfig settings
  (:func:`expand_grid`, :data:`PAPER_GRID`, :data:`QUICK_GRID`);
- :mod:`~captum_srae.evaluation.study.problems`: the :class:`StudyProblem`
  protocol; :class:`SyntheticProblem` (known factors and distractors) and
  :class:`TwoPartProblem` (two independent parts); :class:`PartsProblem`
  (one class of the parts images, with part masks);
- :mod:`~captum_srae.evaluation.study.scoring`: the metrics every problem
  shares (:func:`common_metrics`);
- :mod:`~captum_srae.evaluation.study.runner`: :func:`run_study`, resumable,
  one JSON line per fit (:mod:`~captum_srae.evaluation.study.results`);
- :mod:`~captum_srae.evaluation.study.bootstrap`: :func:`summarize` and
  :func:`paired_difference`, rendered by :func:`format_summary`;
  :mod:`~captum_srae.evaluation.study.effects`: :func:`axis_effect`, one
  axis's effect averaged over the others; :func:`plot_tradeoff` draws one
  metric against another.

``captum-srae study`` runs it from the command line.

Examples::

    >>> from captum_srae.evaluation.study import (QUICK_GRID, SyntheticProblem,
    ...     format_summary, run_study, summarize)
    >>> records = run_study(SyntheticProblem(), QUICK_GRID, [0, 1, 2],
    ...                     "study.jsonl")  # doctest: +SKIP
    >>> print(format_summary(summarize(records, ["r2", "factor_match"])))
    ... # doctest: +SKIP
"""

from captum_srae.evaluation.study.bootstrap import (
    MetricSummary,
    PairedDifference,
    bootstrap_ci,
    paired_difference,
    summarize,
)
from captum_srae.evaluation.study.effects import axis_effect
from captum_srae.evaluation.study.grid import (
    PAPER_GRID,
    QUICK_GRID,
    GridPoint,
    expand_grid,
    point_levels,
)
from captum_srae.evaluation.study.parts import PartsProblem
from captum_srae.evaluation.study.plot import plot_tradeoff
from captum_srae.evaluation.study.problems import ProblemData, StudyProblem
from captum_srae.evaluation.study.results import load_results
from captum_srae.evaluation.study.runner import run_study
from captum_srae.evaluation.study.scoring import common_metrics, positive_shares
from captum_srae.evaluation.study.synthetic import SyntheticProblem
from captum_srae.evaluation.study.table import format_difference, format_summary
from captum_srae.evaluation.study.two_part import TwoPartProblem, two_part_problem

#: The problems of ``captum-srae study --problem``, by name.
PROBLEMS: dict[str, type] = {
    SyntheticProblem.name: SyntheticProblem,
    TwoPartProblem.name: TwoPartProblem,
    PartsProblem.name: PartsProblem,
}

__all__ = [
    "PAPER_GRID",
    "PROBLEMS",
    "QUICK_GRID",
    "GridPoint",
    "MetricSummary",
    "PairedDifference",
    "PartsProblem",
    "ProblemData",
    "StudyProblem",
    "SyntheticProblem",
    "TwoPartProblem",
    "axis_effect",
    "bootstrap_ci",
    "common_metrics",
    "expand_grid",
    "format_difference",
    "format_summary",
    "load_results",
    "paired_difference",
    "plot_tradeoff",
    "point_levels",
    "positive_shares",
    "run_study",
    "summarize",
    "two_part_problem",
]
