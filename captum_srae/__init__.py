#!/usr/bin/env python3
"""captum-srae: XNN / Sparse Reconstruction Autoencoder explanations for Captum."""

from captum_srae.config import SRAEConfig
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

__version__ = "0.1.0"

__all__ = [
    "SRAE",
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
