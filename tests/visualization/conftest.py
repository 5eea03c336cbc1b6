"""Fixtures of the visualisation tests: tiny hand-built explanations."""

from __future__ import annotations

import matplotlib
import pytest
import torch

from captum_srae import SRAEExplanation

matplotlib.use("Agg")


def hand_explanation(
    n_images: int = 3, size: int = 8
) -> tuple[SRAEExplanation, torch.Tensor]:
    """Three x-features with known contributions, maps and scores.

    x-feature ``k`` of image ``i`` lights a ``2 × 2`` block at a position that
    depends on ``k`` and ``i``; the contributions of image 0 are
    ``(0.5, -1.0, 2.0)``, so the panel order is ``2, 0, 1``.
    """
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n_images, 3, size, size, generator=g)
    e = torch.tensor([[1.0, 2.0, 4.0], [3.0, 0.5, 1.0], [2.0, 1.0, 0.0]])[:n_images]
    v = torch.tensor([0.5, -0.5, 0.5]).expand(n_images, 3)
    c = e * v
    b = torch.full((n_images,), 0.25)
    maps = torch.zeros(n_images, 3, size, size)
    for i in range(n_images):
        for k in range(3):
            r, col = (2 * k + i) % (size - 1), (3 * k + 2 * i) % (size - 1)
            maps[i, k, r : r + 2, col : col + 2] = 1.0 + k
        maps[i, :, 0, 0] += 0.1  # a faint pixel, so no map is blank
    ex = SRAEExplanation(
        x_features=e,
        weights=v.clone(),
        bias=b,
        contributions=c,
        model_score=c.sum(1) + b + 0.1,
        xnn_score=c.sum(1) + b,
        heatmaps=maps,
        target=torch.zeros(n_images, dtype=torch.long),
    )
    return ex, images


@pytest.fixture
def explanation() -> tuple[SRAEExplanation, torch.Tensor]:
    return hand_explanation()
