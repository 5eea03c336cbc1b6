#!/usr/bin/env python3
r"""A score made of two independent parts: :class:`TwoPartProblem`."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import Tensor

from captum_srae.evaluation.metrics.orthogonality import column_correlation
from captum_srae.evaluation.study.problems import (
    ProblemData,
    holdout,
    tensor_fingerprint,
)
from captum_srae.evaluation.study.scoring import held_out, positive_shares
from captum_srae.utils.validation import check_int

__all__ = ["PART_THRESHOLD", "TwoPartProblem", "two_part_problem"]

#: Correlation a part's x-feature must reach for ``parts_separated``.
PART_THRESHOLD = 0.9


def two_part_problem(
    n: int = 2000, d: int = 64, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Score = sum of two independent groups of activation dimensions.

    Dimensions ``0..15`` respond to part A, ``16..31`` to part B (each part
    present in half of the images with a random strength), the rest is noise.
    Two x-features, one per part, rebuild the score exactly.

    Args:
        n (int, optional): rows. Default: 2000
        d (int, optional): dimensions, at least 32. Default: 64
        seed (int, optional): seed. Default: 0

    Returns:
        *tuple*: ``z`` ``(n, d)``, ``y`` ``(n,)`` and the strengths of part A
        and part B ``(n,)`` (0 where absent).
    """
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(n, generator=g) < 0.5) * (0.5 + torch.rand(n, generator=g))
    b = (torch.rand(n, generator=g) < 0.5) * (0.5 + torch.rand(n, generator=g))
    pat_a = 0.5 + torch.rand(16, generator=g)
    pat_b = 0.5 + torch.rand(16, generator=g)
    z = 0.05 * torch.rand(n, d, generator=g)
    z[:, :16] += a[:, None] * pat_a
    z[:, 16:32] += b[:, None] * pat_b
    y = z[:, :16].sum(1) + z[:, 16:32].sum(1)
    return z, y, a, b


@dataclasses.dataclass(frozen=True)
class TwoPartProblem:
    r"""Two independent parts, one group of dimensions each
    (:func:`two_part_problem`); the last ``test_fraction`` rows are held out.

    :meth:`score` reports, with ``|corr|`` the absolute Pearson correlation
    of an x-feature with a part's strength on the held-out rows:

    - ``part_a_corr``, ``part_b_corr``: the largest ``|corr|`` of any
      x-feature with the part;
    - ``parts_separated``: 1 if both reach :data:`PART_THRESHOLD` (0.9) with
      two different x-features, else 0;
    - ``part_a_share``, ``part_b_share``: the share of the positive score
      (:func:`~captum_srae.evaluation.study.scoring.positive_shares`) of the
      x-feature that follows the part best.

    Args:
        n (int): rows. Default: 2000
        d (int): dimensions, at least 32. Default: 64
        seed (int): seed of the data. Default: 0
        test_fraction (float): held-out fraction of the rows. Default: 0.25
    """

    name: ClassVar[str] = "two-part"

    n: int = 2000
    d: int = 64
    seed: int = 0
    test_fraction: float = 0.25

    def __post_init__(self) -> None:
        check_int(self.n, "n", minimum=8)
        check_int(self.d, "d", minimum=32)
        check_int(self.seed, "seed", minimum=0)
        if not 0 < self.test_fraction < 1:
            raise ValueError(
                f"test_fraction must be in (0, 1), got {self.test_fraction!r}"
            )

    def fingerprint(self) -> dict[str, Any]:
        """Name, parameters and the data's hash."""
        return {
            "name": self.name,
            "params": dataclasses.asdict(self),
            "data": tensor_fingerprint(self.load()),
        }

    def load(self) -> ProblemData:
        """The data; ``truth["parts"]`` holds the held-out part strengths
        ``(M, 2)``."""
        z, y, a, b = two_part_problem(self.n, self.d, self.seed)
        return holdout(z, y, {"parts": torch.stack([a, b], dim=1)}, self.test_fraction)

    def score(self, srae: Any, data: ProblemData) -> dict[str, float]:
        """The part metrics of the class docstring on the held-out rows."""
        out = held_out(srae, data)
        e = out.x_features
        corr = column_correlation(e, data.truth["parts"].to(e.dtype)).abs()
        best = corr.argmax(dim=0).tolist()
        top = corr.max(dim=0).values.tolist()
        shares = positive_shares(out.mean_contributions)[0]
        separated = min(top) >= PART_THRESHOLD and best[0] != best[1]
        return {
            "part_a_corr": float(top[0]),
            "part_b_corr": float(top[1]),
            "parts_separated": float(separated),
            "part_a_share": float(shares[best[0]]),
            "part_b_share": float(shares[best[1]]),
        }
