"""The explanation network itself: :class:`SRAEConfig`, the :class:`SRAE`
module, its loss terms and its safetensors format.

Imports only :mod:`captum_srae.utils`.
"""

from captum_srae.core.config import SRAEConfig
from captum_srae.core.losses import (
    LossTerms,
    faithfulness_loss,
    mse_reconstruction_loss,
    pull_away,
    pull_away_loss,
    sparse_reconstruction_loss,
    srae_loss,
)
from captum_srae.core.model import SRAE, SRAEOutput
from captum_srae.core.serialization import SRAEFormatError, load_srae, save_srae

__all__ = [
    "SRAE",
    "LossTerms",
    "SRAEConfig",
    "SRAEFormatError",
    "SRAEOutput",
    "faithfulness_loss",
    "load_srae",
    "mse_reconstruction_loss",
    "pull_away",
    "pull_away_loss",
    "save_srae",
    "sparse_reconstruction_loss",
    "srae_loss",
]
