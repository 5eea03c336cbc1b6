#!/usr/bin/env python3
r"""Side-by-side comparison of explanation methods with the project's metrics.

:func:`compare` runs the SRAE, the baselines of
:mod:`captum_srae.evaluation.baselines` and Captum's single-map methods on the
same model, layer and images, and returns a :class:`ComparisonResult`: every
metric of :mod:`captum_srae.evaluation.metrics` for every method, mean ± sd
over seeds, which writes itself as a dict (for ``metrics.json``), CSV,
Markdown and a bar-chart figure. ``captum-srae compare`` runs it on the parts
data set from the command line (:mod:`captum_srae.apps.parts_comparison`).
"""

from captum_srae.evaluation.compare.methods import (
    CONCEPT_METHODS,
    DEFAULT_METHODS,
    MAP_METHODS,
    class_maps,
)
from captum_srae.evaluation.compare.result import (
    METRIC_INFO,
    ComparisonResult,
    metric_rows,
)
from captum_srae.evaluation.compare.runner import compare

__all__ = [
    "CONCEPT_METHODS",
    "DEFAULT_METHODS",
    "MAP_METHODS",
    "METRIC_INFO",
    "ComparisonResult",
    "class_maps",
    "compare",
    "metric_rows",
]
