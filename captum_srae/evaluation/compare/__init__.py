#!/usr/bin/env python3
r"""Side-by-side comparison of explanation methods with the project's metrics.

:func:`compare` runs the SRAE, the baselines of
:mod:`captum_srae.evaluation.baselines` and Captum's single-map methods on the
same model, layer and images, and returns a :class:`ComparisonResult`: every
metric of :mod:`captum_srae.evaluation.metrics` for every method, mean ± sd
over seeds, which writes itself as a dict (for ``metrics.json``), CSV,
Markdown and a bar-chart figure. ``captum-srae compare`` runs it on the parts
data set from the command line (:mod:`captum_srae.apps.parts_comparison`).

Peer tools (``peers`` extra) join as :data:`PEER_METHODS` (pytorch-grad-cam's
CAMs, Deep Feature Factorization and overcomplete's dictionaries), your own
methods through
``compare(..., extra_methods={name: method})`` (the protocol:
:class:`ConceptMethod`, :class:`MapMethod`), and
:func:`concept_map_scores` / :func:`class_map_scores` score any method's maps
as the table does.
"""

from captum_srae.evaluation.compare.methods import (
    CONCEPT_METHODS,
    DEFAULT_METHODS,
    DEMO_PEER_METHODS,
    MAP_METHODS,
    OVERCOMPLETE_METHODS,
    PEER_METHODS,
    class_maps,
    installed_peer_methods,
)
from captum_srae.evaluation.compare.protocol import (
    ConceptMethod,
    ConceptMethodModel,
    FittedConcepts,
    MapMethod,
)
from captum_srae.evaluation.compare.result import (
    METRIC_INFO,
    ComparisonResult,
    metric_rows,
)
from captum_srae.evaluation.compare.runner import compare
from captum_srae.evaluation.compare.scoring import (
    class_map_scores,
    concept_map_scores,
)

__all__ = [
    "CONCEPT_METHODS",
    "DEFAULT_METHODS",
    "DEMO_PEER_METHODS",
    "MAP_METHODS",
    "METRIC_INFO",
    "OVERCOMPLETE_METHODS",
    "PEER_METHODS",
    "ComparisonResult",
    "ConceptMethod",
    "ConceptMethodModel",
    "FittedConcepts",
    "MapMethod",
    "class_map_scores",
    "class_maps",
    "compare",
    "concept_map_scores",
    "installed_peer_methods",
    "metric_rows",
]
