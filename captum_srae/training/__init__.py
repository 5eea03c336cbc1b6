"""Fitting an :class:`~captum_srae.SRAE` on activations: the in-memory fit
(:func:`fit_srae`), its stages, the streaming fit from an
:class:`~captum_srae.activations.ActivationStore`, the distributed (DDP) fit,
checkpoints and the training history.

Modules: ``fit`` (:func:`fit_srae`, in memory) and ``streaming``
(:func:`fit_srae_streaming`, from a store, with its data in
``stream_split``) run the same stages on a
:class:`~captum_srae.training.split.TrainingData`: ``pretrain`` (the one
layer-wise pretraining loop), ``finetune`` (one round of fine-tuning with
early stopping) and ``rounds`` (the re-tuning loop), built on ``epochs``
(one pass over the minibatches), ``guard`` (recovery from NaN/Inf),
``dead_units``, ``parallel`` (the split of each minibatch over ranks) and
``context``; ``split`` holds the in-memory data, ``distributed`` the DDP
fit, ``checkpoint`` and ``history`` what a fit saves and records.

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
