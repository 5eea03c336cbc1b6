#!/usr/bin/env python3
r"""What a study runs on: the :class:`StudyProblem` protocol and
:class:`ProblemData`.

A problem makes its data (activations ``z`` and the scores ``y`` they
explain, split into a training and a held-out part, plus whatever ground
truth it knows) and scores a fitted SRAE with its own metrics. The study
runner adds the metrics every problem shares
(:func:`~captum_srae.evaluation.study.scoring.common_metrics`). A new problem
is any object with the four members of :class:`StudyProblem`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from captum_srae.training.checkpoint import data_fingerprint

__all__ = ["ProblemData", "StudyProblem", "holdout", "tensor_fingerprint"]


@dataclasses.dataclass(frozen=True)
class ProblemData:
    """The data of a problem, split into training and held-out rows.

    Attributes:
        z_train (Tensor): activations the SRAE is fitted on, ``(N, D)``.
        y_train (Tensor): their scores, ``(N,)`` or ``(N, K)``.
        z_test (Tensor): held-out activations, ``(M, D)``.
        y_test (Tensor): their scores.
        truth (dict[str, Tensor]): ground truth the problem knows (e.g. the
            latent factors of the held-out rows). Default: empty
    """

    z_train: Tensor
    y_train: Tensor
    z_test: Tensor
    y_test: Tensor
    truth: dict[str, Tensor] = dataclasses.field(default_factory=dict)


@runtime_checkable
class StudyProblem(Protocol):
    """A problem a study fits SRAEs on.

    Attributes:
        name (str): short name, e.g. ``"synthetic"``.
    """

    name: str

    def fingerprint(self) -> dict[str, Any]:
        """JSON data that identifies the problem's data exactly (its
        parameters and a hash of the data): a results file written for
        another fingerprint is another study."""
        ...

    def load(self) -> ProblemData:
        """Make (or read) the data."""
        ...

    def score(self, srae: Any, data: ProblemData) -> dict[str, float]:
        """The problem's own metrics of a fitted SRAE on ``data``'s held-out
        rows (``srae`` needs ``encode``, ``decode``, ``predict``,
        ``contributions`` and ``weight``)."""
        ...


def holdout(
    z: Tensor,
    y: Tensor,
    per_row: Mapping[str, Tensor],
    test_fraction: float,
) -> ProblemData:
    """Split rows into training and held-out data: the last
    ``round(test_fraction * N)`` rows are held out.

    Args:
        z (Tensor): activations ``(N, D)``.
        y (Tensor): scores ``(N,)`` or ``(N, K)``.
        per_row (Mapping[str, Tensor]): ground truth with one entry per row;
            its held-out rows go to :attr:`ProblemData.truth`.
        test_fraction (float): in ``(0, 1)``.

    Returns:
        *ProblemData*

    Raises:
        ValueError: if either part would have fewer than 2 rows.
    """
    n = int(z.shape[0])
    n_test = int(round(test_fraction * n))
    if n_test < 2 or n - n_test < 2:
        raise ValueError(
            f"n={n} rows leave fewer than 2 training or held-out rows with "
            f"test_fraction={test_fraction}"
        )
    cut = n - n_test
    truth = {key: value[cut:] for key, value in per_row.items()}
    return ProblemData(z[:cut], y[:cut], z[cut:], y[cut:], truth)


def tensor_fingerprint(data: ProblemData) -> dict[str, Any]:
    """Shapes and SHA-256 of all of a problem's activations and scores
    (training rows, then held-out rows)."""
    return data_fingerprint(
        torch.cat([data.z_train, data.z_test]), torch.cat([data.y_train, data.y_test])
    )
