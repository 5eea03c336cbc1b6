#!/usr/bin/env python3
r"""A synthetic problem with known factors and distractors:
:class:`SyntheticProblem`.

Nonnegative latent factors drive post-ReLU activations through a random
mixing matrix; the explained score is a sum of a nonlinear function of each
factor; and a set of high-variance distractor dimensions (independent noise)
does not affect the score. A good explanation finds x-features that follow
the factors and need not rebuild the distractors.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from captum_srae.evaluation.metrics.reconstruction import per_dimension_r2
from captum_srae.evaluation.metrics.stability import match_features
from captum_srae.evaluation.study.problems import (
    ProblemData,
    holdout,
    tensor_fingerprint,
)
from captum_srae.evaluation.study.scoring import held_out
from captum_srae.utils.validation import check_int

__all__ = ["SyntheticProblem", "factor_score", "synthetic_data"]

#: Version of the generator; part of the fingerprint.
GENERATOR_VERSION = 1


def factor_score(factors: Tensor) -> Tensor:
    r"""The explained score: ``y = Σ_j (f_j + f_j²/2)``, a sum of one
    nonlinear function of each factor.

    Args:
        factors (Tensor): ``(N, F)``.

    Returns:
        *Tensor*: ``(N,)``.
    """
    return (factors + 0.5 * factors**2).sum(dim=1)


def synthetic_data(
    n: int,
    d: int,
    n_factors: int,
    n_distractors: int,
    distractor_scale: float,
    seed: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""Draw the activations, scores, factors and distractor mask.

    Each factor is present in half of the rows with a strength uniform in
    ``[0.5, 1.5)`` (0 otherwise). The ``d − n_distractors`` informative
    dimensions are ``relu(f M + 0.05 ε)`` with a Gaussian mixing matrix ``M``
    of unit-norm columns; the distractors are ``distractor_scale · relu(ε')``
    at random positions. ``y = factor_score(f)``.

    Returns:
        *tuple*: ``z`` ``(n, d)``, ``y`` ``(n,)``, factors ``(n, n_factors)``
        and the boolean distractor mask ``(d,)``.
    """
    g = torch.Generator().manual_seed(seed)
    present = torch.rand(n, n_factors, generator=g) < 0.5
    factors = present * (0.5 + torch.rand(n, n_factors, generator=g))
    n_inf = d - n_distractors
    mixing = torch.randn(n_factors, n_inf, generator=g)
    mixing = mixing / torch.linalg.vector_norm(mixing, dim=0)
    noise = 0.05 * torch.randn(n, n_inf, generator=g)
    informative = torch.relu(factors @ mixing + noise)
    distractors = distractor_scale * torch.relu(
        torch.randn(n, n_distractors, generator=g)
    )
    order = torch.randperm(d, generator=g)
    mask = torch.zeros(d, dtype=torch.bool)
    mask[order[:n_distractors]] = True
    z = torch.empty(n, d)
    z[:, ~mask] = informative
    z[:, mask] = distractors
    return z, factor_score(factors), factors, mask


@dataclasses.dataclass(frozen=True)
class SyntheticProblem:
    r"""Known factors, a nonlinear score and high-variance distractors.

    See :func:`synthetic_data`. The last ``test_fraction`` of the rows are
    held out. :meth:`score` reports

    - ``factor_match``: the x-features matched one-to-one to the true
      factors by the Hungarian algorithm on ``|corr|``
      (:func:`~captum_srae.evaluation.metrics.match_features`), mean
      ``|corr|`` over the matched factors (1: every factor has its own
      x-feature; with fewer x-features than factors only that many match);
    - ``distractor_r2``: mean R² of the decoder on the distractor dimensions
      (how much of their variance it rebuilds) and ``informative_r2`` on the
      others (:func:`~captum_srae.evaluation.metrics.per_dimension_r2`).

    Args:
        n (int): rows. Default: 4000
        d (int): activation dimensions, distractors included. Default: 128
        n_factors (int): latent factors. Default: 4
        n_distractors (int): distractor dimensions (< d). Default: 32
        distractor_scale (float): scale of the distractor noise (> 0).
            Default: 3.0
        seed (int): seed of the data. Default: 0
        test_fraction (float): held-out fraction of the rows. Default: 0.25

    Examples::

        >>> problem = SyntheticProblem(n=400, d=32, n_distractors=8)
        >>> data = problem.load()
        >>> data.z_train.shape, data.truth["factors"].shape
        (torch.Size([300, 32]), torch.Size([100, 4]))
    """

    name: ClassVar[str] = "synthetic"

    n: int = 4000
    d: int = 128
    n_factors: int = 4
    n_distractors: int = 32
    distractor_scale: float = 3.0
    seed: int = 0
    test_fraction: float = 0.25

    def __post_init__(self) -> None:
        check_int(self.n, "n", minimum=8)
        check_int(self.n_factors, "n_factors", minimum=1)
        check_int(self.n_distractors, "n_distractors", minimum=0)
        check_int(self.d, "d", minimum=self.n_distractors + 1)
        check_int(self.seed, "seed", minimum=0)
        scale = self.distractor_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise TypeError(f"distractor_scale must be a number, got {scale!r}")
        if not scale > 0 or not math.isfinite(scale):
            raise ValueError(f"distractor_scale must be positive, got {scale!r}")
        if not 0 < self.test_fraction < 1:
            raise ValueError(
                f"test_fraction must be in (0, 1), got {self.test_fraction!r}"
            )

    def params(self) -> dict[str, Any]:
        """The constructor's arguments."""
        return dataclasses.asdict(self)

    def fingerprint(self) -> dict[str, Any]:
        """Name, parameters, generator version and the data's hash."""
        return {
            "name": self.name,
            "params": self.params(),
            "generator": GENERATOR_VERSION,
            "data": tensor_fingerprint(self.load()),
        }

    def load(self) -> ProblemData:
        """The data; ``truth`` holds ``factors`` (held-out rows) and
        ``distractor`` (the boolean mask of the distractor dimensions)."""
        z, y, factors, mask = synthetic_data(
            self.n,
            self.d,
            self.n_factors,
            self.n_distractors,
            float(self.distractor_scale),
            self.seed,
        )
        data = holdout(z, y, {"factors": factors}, self.test_fraction)
        data.truth["distractor"] = mask
        return data

    def score(self, srae: Any, data: ProblemData) -> dict[str, float]:
        """``factor_match``, ``distractor_r2`` and ``informative_r2`` (see the
        class docstring) on the held-out rows."""
        out = held_out(srae, data)
        factors = data.truth["factors"]
        match = match_features(factors.to(out.x_features.dtype), out.x_features)
        r2 = per_dimension_r2(out.reconstruction, data.z_test)
        mask = data.truth["distractor"]
        return {
            "factor_match": float(match.score),
            "distractor_r2": _nanmean(r2[mask]),
            "informative_r2": _nanmean(r2[~mask]),
        }


def _nanmean(values: Tensor) -> float:
    keep = ~torch.isnan(values)
    return float(values[keep].mean()) if bool(keep.any()) else math.nan
