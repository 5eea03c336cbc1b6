"""Tests of ``captum_srae.attribution.smoothing`` and of the ``smoothing``,
``map_method`` and ``map_smoothing`` options of ``SRAEAttribution``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from captum_srae import SRAEAttribution
from captum_srae.attribution.heatmaps import resize_maps
from captum_srae.attribution.smoothing import smooth_maps


def _reference_blur(maps: np.ndarray, sigma: float) -> np.ndarray:
    """Literal Gaussian blur with reflect padding (numpy oracle):
    ``out[i, j] = sum_ab k_a k_b pad[i + a, j + b]``."""
    half = math.ceil(3 * sigma)
    taps = np.exp(-(np.arange(-half, half + 1) ** 2) / (2 * sigma**2))
    kernel = np.outer(taps, taps) / taps.sum() ** 2
    h, w = maps.shape[2:]
    out = np.empty_like(maps)
    for idx in np.ndindex(*maps.shape[:2]):
        pad = np.pad(maps[idx], half, mode="reflect")
        for i in range(h):
            for j in range(w):
                window = pad[i : i + 2 * half + 1, j : j + 2 * half + 1]
                out[idx + (i, j)] = (kernel * window).sum()
    return out


@pytest.mark.parametrize("sigma", [0.7, 1.0, 2.0])
def test_smooth_maps_matches_a_literal_gaussian_blur(sigma: float) -> None:
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(2, 3, 13, 11, generator=g, dtype=torch.float64)
    got = smooth_maps(maps, sigma)
    want = _reference_blur(maps.numpy(), sigma)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-9)
    assert got.shape == maps.shape and got.dtype == maps.dtype


def test_smooth_maps_keeps_mass_and_peak_of_an_interior_impulse() -> None:
    # both impulses lie more than the kernel's half width (5) from the border,
    # so no reflected copy reaches the output
    maps = torch.zeros(1, 2, 21, 21)
    maps[0, 0, 10, 10], maps[0, 1, 7, 13] = 1.0, 3.0
    out = smooth_maps(maps, 1.5)
    torch.testing.assert_close(out.sum((2, 3)), torch.tensor([[1.0, 3.0]]))
    assert int(out[0, 0].argmax()) == 10 * 21 + 10
    assert int(out[0, 1].argmax()) == 7 * 21 + 13
    assert float(out[0, 0, 10, 10]) < 0.1  # spread out: 1 / (2 pi 1.5^2) = 0.071


def test_smooth_maps_zero_is_the_identity() -> None:
    maps = torch.rand(1, 1, 4, 4)
    assert smooth_maps(maps, 0) is maps


@pytest.mark.parametrize(
    "maps, sigma, error, match",
    [
        (torch.zeros(1, 1, 8, 8), -1.0, ValueError, "sigma must be a finite"),
        (torch.zeros(1, 1, 8, 8), float("nan"), ValueError, "sigma must be a finite"),
        (torch.zeros(1, 1, 8, 8), "2", TypeError, "sigma must be a nonnegative"),
        (torch.zeros(1, 1, 8, 8), True, TypeError, "sigma must be a nonnegative"),
        (torch.zeros(1, 2, 49), 1.0, ValueError, r"spatial maps \(N, n, h, w\)"),
        ([[0.0]], 1.0, TypeError, "maps must be a Tensor"),
        (torch.zeros(1, 1, 8, 8), 3.0, ValueError, "larger than 9 cells"),
    ],
)
def test_smooth_maps_bad_input(maps, sigma, error, match) -> None:
    with pytest.raises(error, match=match):
        smooth_maps(maps, sigma)


def _net(tiny_cnn):
    """``conv1, relu1 (4 ch), conv2, relu2 (6 ch), gap, flat, fc (2 classes)``."""
    return tiny_cnn(widths=(4, 6), n_classes=2)


@pytest.fixture
def explainer(active_srae, tiny_cnn):
    net = _net(tiny_cnn)
    srae = active_srae(6)
    x = torch.randn(3, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    return net, srae, x


def test_attribute_smoothing_blurs_the_maps_before_resizing(explainer) -> None:
    net, srae, x = explainer
    sa = SRAEAttribution.from_sraes(net, "relu2", {1: srae}, heatmap_layer="relu1")
    gxa = "LayerGradientXActivation"
    raw = sa.attribute(x, target=1, method=gxa, interpolate=False)
    assert float(raw.min()) < 0  # signed without smoothing
    relu = sa.attribute(
        x, target=1, method=gxa, interpolate=False, relu_attributions=True
    )
    got = sa.attribute(x, target=1, method=gxa, interpolate=False, smoothing=1.0)
    torch.testing.assert_close(got, smooth_maps(relu, 1.0))  # ReLU, then blur
    resized = sa.attribute(x, target=1, method=gxa, interpolate=(24, 24), smoothing=1.0)
    torch.testing.assert_close(resized, resize_maps(smooth_maps(relu, 1.0), (24, 24)))
    cls = sa.attribute(x, target=1, method=gxa, output="class", smoothing=1.0,
                       interpolate=False)  # fmt: skip
    plain = sa.attribute(x, target=1, method=gxa, output="class", interpolate=False,
                         relu_attributions=True)  # fmt: skip
    torch.testing.assert_close(cls, smooth_maps(plain, 1.0))


def test_map_defaults_of_the_explainer_apply_and_can_be_overridden(explainer) -> None:
    net, srae, x = explainer
    gxa = "LayerGradientXActivation"
    sa = SRAEAttribution.from_sraes(
        net, "relu2", {1: srae}, heatmap_layer="relu1", map_method=gxa,
        map_smoothing=1.0,
    )  # fmt: skip
    plain = SRAEAttribution.from_sraes(net, "relu2", {1: srae}, heatmap_layer="relu1")
    want = plain.attribute(x, target=1, method=gxa, smoothing=1.0)
    torch.testing.assert_close(sa.attribute(x, target=1), want)
    torch.testing.assert_close(
        sa.attribute(x, target=1, method="gradcam", smoothing=0),
        plain.attribute(x, target=1),
    )
    explained = sa.explain(x[:1], target=1)
    torch.testing.assert_close(explained.heatmaps, want[:1])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"map_smoothing": -0.5}, ValueError, "map_smoothing must be a finite"),
        ({"map_smoothing": "1"}, TypeError, "map_smoothing must be a nonnegative"),
        ({"map_method": "LayerGradientXActivatio"}, ValueError, "map_method: "),
        ({"map_method": 3}, TypeError, "map_method must be"),
        ({"map_method": torch.nn.Linear}, TypeError, "map_method must be"),
    ],
)
def test_bad_map_defaults_fail_at_construction(kwargs, error, match, tiny_cnn) -> None:
    with pytest.raises(error, match=match):
        SRAEAttribution(_net(tiny_cnn), "relu2", **kwargs)


def test_smoothing_larger_than_the_maps_names_the_option(explainer) -> None:
    net, srae, x = explainer
    sa = SRAEAttribution.from_sraes(net, "relu2", {1: srae})
    with pytest.raises(ValueError, match="smoothing=5 needs maps larger"):
        sa.attribute(x, target=1, smoothing=5)


def test_compare_refuses_bad_map_settings_before_any_fit(tiny_cnn) -> None:
    from captum_srae.evaluation.compare import compare

    net, x = _net(tiny_cnn), torch.rand(4, 3, 12, 12)
    with pytest.raises(ValueError, match="map_smoothing must be a finite"):
        compare(net, "relu2", x, x, map_smoothing=-1.0, show_progress=False)
    with pytest.raises(ValueError, match="map_method: "):
        compare(net, "relu2", x, x, map_method="Saliencyy", show_progress=False)


def test_map_record_names_what_fit_json_can_hold(explainer) -> None:
    from captum.attr import LayerGradientXActivation

    from captum_srae.apps.common import map_record

    net, srae, _ = explainer
    sa = SRAEAttribution.from_sraes(
        net, "relu2", {1: srae}, heatmap_layer=net.relu1,
        map_method=LayerGradientXActivation, map_smoothing=2,
    )  # fmt: skip
    # a module is not a name: left out; a captum.attr class becomes its name
    assert map_record(sa) == {
        "map_method": "LayerGradientXActivation", "map_smoothing": 2.0
    }  # fmt: skip
    assert isinstance(sa.map_smoothing, float)
