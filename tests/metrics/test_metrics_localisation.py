"""Localisation metrics against part masks: oracles, perfect and random maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from captum_srae.datasets import make_parts_dataset
from captum_srae.evaluation.metrics import (
    part_association,
    pointing_game,
    relevance_mass_accuracy,
)


def block_masks(n: int, size: int = 8, side: int = 4, seed: int = 0) -> torch.Tensor:
    """One square of ``side`` pixels per image at a random place (area 1/4)."""
    g = torch.Generator().manual_seed(seed)
    m = torch.zeros(n, size, size, dtype=torch.bool)
    pos = torch.randint(0, size - side + 1, (n, 2), generator=g)
    for i in range(n):
        r, c = pos[i].tolist()
        m[i, r : r + side, c : c + side] = True
    return m


def test_perfect_maps_score_one():
    m = block_masks(10)
    assert pointing_game(m.float(), m).score.item() == 1.0
    assert relevance_mass_accuracy(m.float(), m).score.item() == 1.0
    assert pointing_game((~m).float(), m).score.item() == 0.0
    assert relevance_mass_accuracy((~m).float(), m).score.item() == 0.0


def test_random_maps_score_near_area_fraction():
    m = block_masks(400, seed=1)
    g = torch.Generator().manual_seed(2)
    maps = torch.rand(400, 8, 8, generator=g)
    area = m.float().mean().item()  # 0.25
    assert relevance_mass_accuracy(maps, m).score.item() == pytest.approx(
        area, abs=0.02
    )
    assert pointing_game(maps, m).score.item() == pytest.approx(area, abs=0.06)


def test_loop_oracles_with_signed_maps():
    m = block_masks(30, seed=3)
    g = torch.Generator().manual_seed(4)
    maps = torch.randn(30, 8, 8, generator=g, dtype=torch.float64)
    pg = pointing_game(maps, m)
    rma = relevance_mass_accuracy(maps, m)
    hits, masses = [], []
    for i in range(30):
        a, mi = maps[i].numpy(), m[i].numpy()
        r, c = np.unravel_index(np.argmax(a), a.shape)
        hits.append(float(mi[r, c]))
        pos = np.clip(a, 0, None)
        masses.append(
            sum(pos[p] for p in zip(*np.nonzero(mi), strict=True)) / pos.sum()
        )
    assert pg.per_image.tolist() == hits
    assert pg.score.item() == pytest.approx(np.mean(hits))
    np.testing.assert_allclose(rma.per_image.numpy(), masses, rtol=1e-12)


@pytest.mark.parametrize("tolerance", [1, 2, 3])
def test_pointing_tolerance_against_a_distance_oracle(tolerance):
    """A hit within ``tolerance``: some maximal pixel lies at Euclidean
    distance <= tolerance of a mask pixel (a brute-force loop)."""
    n = 200
    m = torch.zeros(n, 12, 12, dtype=torch.bool)
    g = torch.Generator().manual_seed(5)
    pos = torch.randint(0, 10, (n, 2), generator=g)
    for i in range(n):  # small 2x2 parts, so that misses are common
        r, c = pos[i].tolist()
        m[i, r : r + 2, c : c + 2] = True
    maps = torch.rand(n, 12, 12, generator=g, dtype=torch.float64)
    maps[0] = 0.5  # constant: a miss at any tolerance
    maps[1, 0, 0] = maps[1, 11, 11] = 2.0  # a tie: hit if either is near
    pg = pointing_game(maps, m, tolerance=tolerance)
    hits = []
    for i in range(n):
        a, mi = maps[i].numpy(), m[i].numpy()
        if a.min() == a.max():
            hits.append(0.0)
            continue
        peaks = np.argwhere(a == a.max())
        parts = np.argwhere(mi)
        d = np.sqrt(((peaks[:, None, :] - parts[None, :, :]) ** 2).sum(-1)).min()
        hits.append(float(d <= tolerance))
    assert pg.per_image.tolist() == hits
    strict = pointing_game(maps, m).per_image
    assert bool((pg.per_image >= strict).all())  # tolerance only adds hits
    assert pg.per_image.sum() > strict.sum()


def test_pointing_tolerance_is_euclidean_and_checked():
    m = torch.zeros(1, 9, 9, dtype=torch.bool)
    m[0, 4, 4] = True
    a = torch.zeros(1, 9, 9)
    a[0, 6, 6] = 1.0  # 2 rows and 2 columns off: distance 2.83
    assert pointing_game(a, m, tolerance=2).score.item() == 0.0
    assert pointing_game(a, m, tolerance=3).score.item() == 1.0
    with pytest.raises(ValueError, match="tolerance"):
        pointing_game(a, m, tolerance=-1)
    with pytest.raises(TypeError, match="tolerance"):
        pointing_game(a, m, tolerance=1.5)


def test_absent_parts_constant_maps_and_low_resolution():
    m = block_masks(3)
    m[1] = False  # part absent in image 1
    maps = m.float()
    maps[2] = 0.0  # constant map: a miss, no positive relevance
    pg = pointing_game(maps, m)
    assert pg.valid.tolist() == [True, False, True]
    assert pg.per_image[0].item() == 1.0 and pg.per_image[2].item() == 0.0
    assert np.isnan(pg.per_image[1].item())
    assert pg.score.item() == 0.5
    rma = relevance_mass_accuracy(maps, m)
    assert rma.valid.tolist() == [True, False, False]
    # a 4x4 map resized to the 8x8 masks (bilinear) and a channel dimension
    small = nn.functional.avg_pool2d(m.float()[:, None], 2)
    big = nn.functional.interpolate(small, size=(8, 8), mode="bilinear")
    a = relevance_mass_accuracy(torch.cat([small, small], dim=1), m).per_image
    b = relevance_mass_accuracy(big, m).per_image
    np.testing.assert_allclose(a.numpy(), b.numpy())


def test_part_association_on_parts_dataset():
    data = make_parts_dataset(12, seed=0, size=32)
    maps = data.masks.float()  # x-feature k == part k exactly
    res = part_association(maps, data.masks)
    present = data.masks.flatten(2).any(dim=2).any(dim=0)
    for k in range(4):
        if present[k]:
            assert res.iou[k, k].item() == pytest.approx(1.0)
            assert res.purity[k].item() == pytest.approx(1.0)
    # visible part masks do not overlap: off-diagonal IoU is 0
    assert (res.iou - torch.diag(torch.diagonal(res.iou))).abs().max().item() == 0.0
    assert res.covers.equal(torch.diag(present))


def test_part_association_quantile_matches_oracle():
    g = torch.Generator().manual_seed(5)
    maps = torch.rand(6, 2, 4, 4, generator=g, dtype=torch.float64)
    masks = torch.rand(6, 3, 4, 4, generator=g) > 0.6
    res = part_association(maps, masks, threshold="quantile", level=0.75)
    a, mk = maps.numpy(), masks.numpy()
    for k in range(2):
        tau = np.quantile(a[:, k], 0.75)
        assert res.thresholds[k].item() == pytest.approx(tau)
        for q in range(3):
            inter = union = 0
            for i in range(6):
                for r in range(4):
                    for c in range(4):
                        t, p = a[i, k, r, c] > tau, mk[i, q, r, c]
                        inter += t and p
                        union += t or p
            assert res.iou[k, q].item() == pytest.approx(inter / union)
        assert res.purity[k].item() == pytest.approx(
            res.iou[k].max().item() / res.iou[k].sum().item()
        )
    rel = part_association(maps, masks, level=0.9)
    assert rel.thresholds.shape == (6, 2)
    assert bool((rel.thresholds == 0.9 * maps.flatten(2).max(dim=2).values).all())


def test_localisation_errors():
    m = block_masks(2)
    with pytest.raises(ValueError, match="attributions"):
        pointing_game(torch.rand(3, 8, 8), m)
    with pytest.raises(ValueError, match="masks"):
        pointing_game(torch.rand(2, 8, 8), m[:, None])
    with pytest.raises(ValueError, match="masks"):
        relevance_mass_accuracy(torch.rand(2, 8, 8), m.float() * 2)
    with pytest.raises(ValueError, match="threshold"):
        part_association(torch.rand(2, 1, 8, 8), m[:, None], threshold="top")
    with pytest.raises(ValueError, match="level"):
        part_association(torch.rand(2, 1, 8, 8), m[:, None], level=2.0)
