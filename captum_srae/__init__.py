#!/usr/bin/env python3
"""captum-srae: XNN / Sparse Reconstruction Autoencoder explanations for Captum.

The package is laid out as the stages of the pipeline, each a subpackage that
imports only the stages below it (checked by import-linter, see
``pyproject.toml``)::

    apps            the command line and the demo
    evaluation      metrics, baselines, comparison of methods
    visualization   figures and reports
    attribution     SRAEAttribution and its heatmaps
    training        fitting an SRAE (in memory, streaming, distributed)
    activations     hooks, collection and the disk store of a layer's outputs
    core            the SRAE, its config, losses and file format
    datasets        generated data sets and the small model zoo
    utils           argument checks, atomic files, cache, Captum compatibility

The names below are the public API; the modules of 0.1 (``captum_srae.metrics``,
``captum_srae.config``, ...) are still importable under their old names.
"""

from captum_srae.activations import (
    ActivationStore,
    activation_batches,
    collect_activations,
    collect_activations_to_disk,
    iter_input_batches,
    layer_name,
    pool_activations,
    resolve_layer,
    write_activations_to_disk,
)
from captum_srae.attribution import (
    NotFittedError,
    SRAEAttribution,
    SRAEExplanation,
    XFeatureModel,
)
from captum_srae.core import (
    SRAE,
    LossTerms,
    SRAEConfig,
    SRAEFormatError,
    SRAEOutput,
    faithfulness_loss,
    load_srae,
    mse_reconstruction_loss,
    pull_away,
    pull_away_loss,
    save_srae,
    sparse_reconstruction_loss,
    srae_loss,
)
from captum_srae.training import (
    RoundRecord,
    TrainingDivergedError,
    TrainingHistory,
    acceptance,
    fit_srae,
    fit_srae_streaming,
)
from captum_srae.utils import moved
from captum_srae.utils.stats import r2_score
from captum_srae.utils.version import __version__
from captum_srae.visualization import (
    ConceptGalleryDisplay,
    ExplanationDisplay,
    ExplanationGridDisplay,
    FaithfulnessDisplay,
    TrainingCurvesDisplay,
    write_report,
)

#: Where the modules of version 0.1 live now (old name -> new name).
MOVED_MODULES = {
    "captum_srae.baselines": "captum_srae.evaluation.baselines",
    "captum_srae.cli": "captum_srae.apps.cli",
    "captum_srae.compare": "captum_srae.evaluation.compare",
    "captum_srae.compare.parts": "captum_srae.apps.parts_comparison",
    "captum_srae.config": "captum_srae.core.config",
    "captum_srae.demo": "captum_srae.apps.demo",
    "captum_srae.distributed": "captum_srae.training.distributed",
    "captum_srae.excitation": "captum_srae.attribution.excitation",
    "captum_srae.heatmaps": "captum_srae.attribution.heatmaps",
    "captum_srae.history": "captum_srae.training.history",
    "captum_srae.losses": "captum_srae.core.losses",
    "captum_srae.metrics": "captum_srae.evaluation.metrics",
    "captum_srae.model": "captum_srae.core.model",
    "captum_srae.models": "captum_srae.datasets.models",
    "captum_srae.serialization": "captum_srae.core.serialization",
    "captum_srae.store": "captum_srae.activations.store",
}
moved.install(MOVED_MODULES)

__all__ = [
    "SRAE",
    "ActivationStore",
    "ConceptGalleryDisplay",
    "ExplanationDisplay",
    "ExplanationGridDisplay",
    "FaithfulnessDisplay",
    "LossTerms",
    "MOVED_MODULES",
    "NotFittedError",
    "RoundRecord",
    "SRAEAttribution",
    "SRAEConfig",
    "SRAEExplanation",
    "SRAEFormatError",
    "SRAEOutput",
    "TrainingCurvesDisplay",
    "TrainingDivergedError",
    "TrainingHistory",
    "XFeatureModel",
    "__version__",
    "acceptance",
    "activation_batches",
    "collect_activations",
    "collect_activations_to_disk",
    "faithfulness_loss",
    "fit_srae",
    "fit_srae_streaming",
    "iter_input_batches",
    "layer_name",
    "load_srae",
    "mse_reconstruction_loss",
    "pool_activations",
    "pull_away",
    "pull_away_loss",
    "r2_score",
    "resolve_layer",
    "save_srae",
    "sparse_reconstruction_loss",
    "srae_loss",
    "write_activations_to_disk",
    "write_report",
]
