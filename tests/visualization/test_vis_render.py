"""Exact numbers of the pure renderers in ``captum_srae.visualization.render``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr._utils.visualization import _normalize_attr

from captum_srae.visualization import render


def test_normalize_map_exact_values_and_outliers() -> None:
    a = np.array([[0.0, 1.0], [2.0, -4.0]])
    expected = np.array([[0.0, 0.25], [0.5, 1.0]])
    np.testing.assert_array_equal(render.normalize_map(a, outlier_perc=0), expected)
    np.testing.assert_array_equal(render.normalize_map(a), expected)
    # ten ones and one 5: the top 40 % of the mass is clipped as outliers
    b = np.array([[1.0] * 10 + [5.0]])
    np.testing.assert_array_equal(
        render.normalize_map(b, outlier_perc=40), np.ones((1, 11))
    )
    np.testing.assert_allclose(render.normalize_map(b, 0)[0, :10], 0.2)
    # channels are summed first, as in Captum
    hwc = np.stack([a, a], axis=2)
    np.testing.assert_array_equal(render.normalize_map(hwc, 0), expected)


def test_normalize_map_equals_captum_and_handles_zero() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        m = rng.normal(size=(7, 5))
        for perc in (0, 2, 10):
            np.testing.assert_allclose(
                render.normalize_map(m, perc),
                _normalize_attr(m, "absolute_value", perc),
                rtol=1e-14,
                atol=1e-15,
            )
    np.testing.assert_array_equal(
        render.normalize_map(np.zeros((2, 3))), np.zeros((2, 3))
    )
    nan = np.array([[np.nan, 2.0], [np.inf, 1.0]])
    np.testing.assert_array_equal(render.normalize_map(nan, 0), [[0, 1], [0, 0.5]])
    with pytest.raises(ValueError, match="outlier_perc"):
        render.normalize_map(np.ones((2, 2)), 101)
    assert render.is_blank(np.zeros((3, 3))) and render.is_blank([[np.nan]])
    assert not render.is_blank(torch.tensor([[0.0, 1e-9]]))
    tiny = np.array([[0.0, 1e-9], [2e-9, 4e-9]])
    np.testing.assert_array_equal(render.normalize_map(tiny, 0), [[0, 0.25], [0.5, 1]])
    np.testing.assert_array_equal(render.unit_scale([[-2.0, 1.0]]), [[-1.0, 0.5]])
    np.testing.assert_array_equal(render.unit_scale(np.zeros((1, 2))), [[0.0, 0.0]])


def test_order_ratios_and_labels() -> None:
    assert render.contribution_order([0.5, -2.0, 3.0, 0.5]).tolist() == [2, 0, 3, 1]
    np.testing.assert_array_equal(
        render.contribution_ratios(torch.tensor([0.5, -1.0, 2.0])), [0.25, -0.5, 1.0]
    )
    np.testing.assert_array_equal(
        render.contribution_ratios([[0.0, 0.0], [-4.0, 2.0]]), [[0, 0], [-1, 0.5]]
    )
    assert render.format_contribution(0.25, 0.5) == "r=+0.25 (+0.5)"
    assert render.format_contribution(-1.0, -2.0) == "r=-1.00 (-2)"
    assert render.format_contribution(-0.0, -0.0) == "r=+0.00 (+0)"


def test_sign_colours_are_warm_and_cool() -> None:
    warm, cool = render.sign_colour(0.1), render.sign_colour(-3.0)
    assert warm == render.WARM and cool == render.COOL
    assert warm[0] > warm[2] and cool[2] > cool[0]
    assert render.sign_colour(0.0) == render.NEUTRAL


def test_colourize_and_blend_exact() -> None:
    out = render.colourize(np.array([[0.0, 0.5, 1.0]]), (1.0, 0.0, 0.0))
    np.testing.assert_array_equal(out, [[[1, 1, 1], [1, 0.5, 0.5], [1, 0, 0]]])
    image = np.array([[[0.2, 0.4, 0.6], [1.0, 1.0, 1.0]]])
    got = render.blend(image, np.array([[0.0, 1.0]]), (1.0, 0.0, 0.0), alpha=0.5)
    np.testing.assert_allclose(got, [[[0.4, 0.4, 0.4], [1.0, 0.5, 0.5]]], atol=1e-15)
    with pytest.raises(ValueError, match="differ in size"):
        render.blend(image, np.zeros((2, 2)), (1, 0, 0))


def test_to_hwc_resize_and_r2() -> None:
    chw = torch.arange(12.0).reshape(3, 2, 2) / 12
    np.testing.assert_array_equal(render.to_hwc(chw), chw.permute(1, 2, 0).numpy())
    assert render.to_hwc(np.full((2, 2), 255.0)).tolist() == [[[1.0] * 3] * 2] * 2
    assert render.to_hwc(np.zeros((1, 4, 5))).shape == (4, 5, 3)
    with pytest.raises(ValueError):
        render.to_hwc(np.zeros((2, 2, 2, 2)))
    big = render.resize_nearest(np.array([[1.0, 2.0], [3.0, 4.0]]), (4, 4))
    np.testing.assert_array_equal(big[::2, ::2], [[1, 2], [3, 4]])
    np.testing.assert_array_equal(big[1], [1, 1, 2, 2])
    assert render.r2([1.0, 2.0, 3.0], [1.0, 2.0, 4.0]) == 0.5
    assert np.isnan(render.r2([1.0], [1.0]))


def test_explanation_strip_layout() -> None:
    image = np.full((4, 5, 3), 0.5)
    maps = np.zeros((2, 4, 5))
    maps[0, 1, 1] = 1.0
    strip = render.explanation_strip(image, maps, [-1.0, 2.0], border=1)
    assert strip.dtype == np.uint8 and strip.shape == (6, 3 * 8 - 1, 3)
    # panel 1 (x-feature 1, positive) has a warm frame, panel 2 a cool one
    assert tuple(strip[0, 8]) == tuple(round(255 * v) for v in render.WARM)
    assert tuple(strip[0, 16]) == tuple(round(255 * v) for v in render.COOL)
    assert (strip[:, 7] == 255).all()  # white gap between panels
