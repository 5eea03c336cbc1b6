"""Fitting an :class:`~captum_srae.SRAE` on activations: the in-memory fit
(:func:`fit_srae`), its stages, the streaming fit from an
:class:`~captum_srae.activations.ActivationStore`, the distributed (DDP) fit,
checkpoints and the training history.

Imports :mod:`captum_srae.core`, :mod:`captum_srae.activations` and
:mod:`captum_srae.utils`.
"""

from captum_srae.training.fit import fit_srae
from captum_srae.training.history import (
    RoundRecord,
    TrainingDivergedError,
    TrainingHistory,
    acceptance,
)
from captum_srae.training.streaming import fit_srae_streaming

__all__ = [
    "RoundRecord",
    "TrainingDivergedError",
    "TrainingHistory",
    "acceptance",
    "fit_srae",
    "fit_srae_streaming",
]
