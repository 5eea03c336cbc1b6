#!/usr/bin/env python3
"""captum-srae: XNN / Sparse Reconstruction Autoencoder explanations for Captum."""

from captum_srae.activations import (
    activation_batches,
    collect_activations,
    iter_input_batches,
    layer_name,
    pool_activations,
    resolve_layer,
)
from captum_srae.attribution import (
    NotFittedError,
    SRAEAttribution,
    SRAEExplanation,
)
from captum_srae.config import SRAEConfig
from captum_srae.heatmaps import XFeatureModel
from captum_srae.losses import (
    LossTerms,
    faithfulness_loss,
    mse_reconstruction_loss,
    pull_away,
    pull_away_loss,
    sparse_reconstruction_loss,
    srae_loss,
)
from captum_srae.model import SRAE, SRAEOutput
from captum_srae.serialization import SRAEFormatError, load_srae, save_srae
from captum_srae.store import (
    ActivationStore,
    collect_activations_to_disk,
    write_activations_to_disk,
)
from captum_srae.training import (
    RoundRecord,
    TrainingDivergedError,
    TrainingHistory,
    acceptance,
    fit_srae,
    fit_srae_streaming,
    r2_score,
)

__version__ = "0.1.0"

__all__ = [
    "SRAE",
    "SRAEFormatError",
    "NotFittedError",
    "SRAEAttribution",
    "SRAEExplanation",
    "XFeatureModel",
    "ConceptGalleryDisplay",
    "ExplanationDisplay",
    "ExplanationGridDisplay",
    "FaithfulnessDisplay",
    "TrainingCurvesDisplay",
    "write_report",
    "RoundRecord",
    "TrainingDivergedError",
    "TrainingHistory",
    "acceptance",
    "activation_batches",
    "collect_activations",
    "collect_activations_to_disk",
    "write_activations_to_disk",
    "ActivationStore",
    "fit_srae",
    "fit_srae_streaming",
    "iter_input_batches",
    "layer_name",
    "load_srae",
    "pool_activations",
    "r2_score",
    "resolve_layer",
    "save_srae",
    "SRAEConfig",
    "SRAEOutput",
    "LossTerms",
    "faithfulness_loss",
    "mse_reconstruction_loss",
    "pull_away",
    "pull_away_loss",
    "sparse_reconstruction_loss",
    "srae_loss",
    "__version__",
]
