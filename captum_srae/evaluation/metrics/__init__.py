#!/usr/bin/env python3
r"""Evaluation metrics for concept explanations (the project's metrics).

Every function takes tensors (and, for pixel perturbation, a forward
function), never a specific explainer class, so the same numbers can be
computed for :class:`~captum_srae.SRAE` and for the baselines. Each
docstring gives the formula and whether higher or lower is better; see
``docs/metrics.rst`` for the overview and citations.
"""

from captum_srae.evaluation.metrics.agreement import (
    completeness,
    concept_scores,
    top1_agreement,
)
from captum_srae.evaluation.metrics.conciseness import (
    hoyer_sparsity,
    l0_sparsity,
    significant_features,
)
from captum_srae.evaluation.metrics.faithfulness import (
    FaithfulnessResult,
    faithfulness,
    ice_relative_error,
    r2_score,
    relative_rmse,
    rmse,
)
from captum_srae.evaluation.metrics.localisation import (
    LocalisationScore,
    PartAssociation,
    part_association,
    pointing_game,
    relevance_mass_accuracy,
)
from captum_srae.evaluation.metrics.orthogonality import (
    OrthogonalityResult,
    correlation_offdiag_norm,
    feature_cosine,
    orthogonality,
    pull_away_value,
)
from captum_srae.evaluation.metrics.perturbation import (
    PerturbationCurve,
    deletion_curve,
    insertion_curve,
    make_baseline,
)
from captum_srae.evaluation.metrics.reconstruction import (
    PartialReconstruction,
    partial_reconstruction,
    per_dimension_r2,
)
from captum_srae.evaluation.metrics.robustness import (
    attribution_infidelity,
    attribution_sensitivity,
    gaussian_perturbation,
)
from captum_srae.evaluation.metrics.stability import FeatureMatching, match_features

__all__ = [
    "FaithfulnessResult",
    "FeatureMatching",
    "LocalisationScore",
    "OrthogonalityResult",
    "PartAssociation",
    "PartialReconstruction",
    "PerturbationCurve",
    "attribution_infidelity",
    "attribution_sensitivity",
    "completeness",
    "concept_scores",
    "correlation_offdiag_norm",
    "deletion_curve",
    "faithfulness",
    "feature_cosine",
    "gaussian_perturbation",
    "hoyer_sparsity",
    "ice_relative_error",
    "insertion_curve",
    "l0_sparsity",
    "make_baseline",
    "match_features",
    "orthogonality",
    "part_association",
    "partial_reconstruction",
    "per_dimension_r2",
    "pointing_game",
    "pull_away_value",
    "r2_score",
    "relative_rmse",
    "relevance_mass_accuracy",
    "rmse",
    "significant_features",
    "top1_agreement",
]
