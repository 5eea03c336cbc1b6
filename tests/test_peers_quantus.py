"""Quantus as an independent oracle for the project's heatmap metrics, and
the adapter that runs any Quantus metric on SRAE maps.

Both sides are configured to the same definition (docs/peers.rst lists each
setting and every difference left); per-image numbers must then agree to
float32 rounding. A tiny CNN (3x12x12 inputs, 12x12 layer, so the maps need
no resizing) and an untrained SRAE with active units keep this fast.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from captum_srae import SRAEAttribution
from captum_srae.attribution.heatmaps import XFeatureModel
from captum_srae.evaluation.metrics.localisation import (
    pointing_game,
    relevance_mass_accuracy,
)
from captum_srae.evaluation.metrics.perturbation import (
    deletion_curve,
    insertion_curve,
    make_baseline,
)
from captum_srae.evaluation.metrics.robustness import attribution_sensitivity
from captum_srae.evaluation.peers.quantus import (
    baseline_perturb_func,
    concept_model,
    quantus_evaluate,
    srae_explain_func,
)

pytestmark = pytest.mark.peers
quantus = pytest.importorskip("quantus")

N, C, H = 6, 3, 12
HW = H * H
T = 36  # steps: C * HW / T = 12 features (4 whole pixels) per Quantus step
TOL = 1e-6  # float32 rounding; the definitions are identical


@pytest.fixture(scope="module")
def setup(tiny_cnn, active_srae):
    """Explainer on conv2 of the tiny CNN, images, signed and ReLU maps."""
    net = tiny_cnn(C, (6, 10))
    torch.manual_seed(0)
    srae = active_srae(10)
    sa = SRAEAttribution.from_sraes(net, "conv2", {0: srae})
    x = torch.rand(N, C, H, H, generator=torch.Generator().manual_seed(1))
    signed = sa.attribute(x, target=0, relu_attributions=False).detach()
    return net, srae, sa, x, signed


def _masks_around_argmax(maps: torch.Tensor) -> torch.Tensor:
    """Even images: a 3x3 box on the map's maximum (hit); odd images: the
    box of the minimum (a miss unless the map is flat)."""
    m = torch.zeros(maps.shape[0], H, H, dtype=torch.bool)
    for i, a in enumerate(maps):
        flat = a.flatten()
        p = int(flat.argmax() if i % 2 == 0 else flat.argmin())
        r, c = divmod(p, H)
        m[i, max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = True
    return m


def _q(metric, model, x, y, a, **kw):
    return np.asarray(
        metric(
            model=model,
            x_batch=x.numpy(),
            y_batch=np.asarray(y),
            a_batch=a.numpy(),
            softmax=False,
            **kw,
        ),
        dtype=np.float64,
    )


# ------------------------------------------------------------- localisation
def test_pointing_game_matches_quantus(setup):
    net, _, _, x, signed = setup
    a = signed[:, 1:2]
    masks = _masks_around_argmax(a[:, 0])
    ours = pointing_game(a, masks).per_image.numpy()
    assert ours.sum() == N // 2 and (ours == 0).sum() == N // 2  # hits and misses
    theirs = _q(
        quantus.PointingGame(disable_warnings=True),
        net,
        x,
        np.zeros(N, dtype=int),
        a,
        s_batch=masks[:, None].float().numpy(),
    )
    np.testing.assert_array_equal(ours, theirs)


def test_pointing_game_documented_differences(setup):
    """Where the definitions differ (docs/peers.rst): an empty mask is
    skipped by the project (NaN) and counted as a hit by Quantus 0.6 (it
    writes NaN into a boolean array); a constant map is a miss for the
    project and a hit for Quantus (every pixel is a maximum)."""
    net, _, _, x, signed = setup
    a = signed[:, 1:2].clone()
    masks = _masks_around_argmax(a[:, 0])
    masks[1] = False  # empty mask
    a[3] = 1.0  # constant map, mask not empty
    ours = pointing_game(a, masks).per_image.numpy()
    theirs = _q(
        quantus.PointingGame(disable_warnings=True),
        net,
        x,
        np.zeros(N, dtype=int),
        a,
        s_batch=masks[:, None].float().numpy(),
    )
    assert np.isnan(ours[1]) and theirs[1] == 1.0
    assert ours[3] == 0.0 and theirs[3] == 1.0
    same = [0, 2, 4, 5]
    np.testing.assert_array_equal(ours[same], theirs[same])


def test_relevance_mass_accuracy_matches_quantus(setup):
    net, _, sa, x, signed = setup
    masks = torch.zeros(N, H, H, dtype=torch.bool)
    masks[:, 2:8, 3:10] = True
    y = np.zeros(N, dtype=int)
    s = masks[:, None].float().numpy()
    # signed maps: Quantus sums the raw map; its normalise_func hook applies
    # the project's positive part max(a, 0) first
    a = signed[:, 2:3] - signed[:, 2:3].flatten(1).median(1).values[:, None, None, None]
    assert bool((a < 0).any()) and bool((a > 0).any())
    ours = relevance_mass_accuracy(a, masks).per_image.numpy()
    positive = quantus.RelevanceMassAccuracy(
        normalise=True,
        normalise_func=lambda v: np.maximum(v, 0),
        disable_warnings=True,
    )
    np.testing.assert_allclose(_q(positive, net, x, y, a, s_batch=s), ours, atol=TOL)
    # without the positive part the numbers differ (the test can fail)
    raw = quantus.RelevanceMassAccuracy(normalise=False, disable_warnings=True)
    assert np.abs(_q(raw, net, x, y, a, s_batch=s) - ours).max() > 0.05
    # nonnegative (ReLU) maps: Quantus's defaults (divide by max |a|) agree
    relu = sa.attribute(x, target=0, concepts=[2]).detach()
    ours = relevance_mass_accuracy(relu, masks).per_image.numpy()
    default = quantus.RelevanceMassAccuracy(disable_warnings=True)
    np.testing.assert_allclose(_q(default, net, x, y, relu, s_batch=s), ours, atol=TOL)


# ------------------------------------------------- deletion and insertion
def _pixel_flipping(**kw):
    return quantus.PixelFlipping(
        features_in_step=C * HW // T, normalise=False, abs=False,
        disable_warnings=True, **kw,
    )  # fmt: skip


@pytest.mark.parametrize("baseline", [0.0, "blur"])
def test_deletion_curve_matches_pixel_flipping(setup, baseline):
    net, srae, _, x, signed = setup
    xm = XFeatureModel(net, net.conv2, srae).eval()
    a, k = signed[:, 1:2], 1
    ours = deletion_curve(xm, x, a, target=k, baseline=baseline, n_steps=T)
    if baseline == "blur":
        pf = _pixel_flipping(perturb_func=baseline_perturb_func(make_baseline(x)))
    else:
        pf = _pixel_flipping(perturb_baseline=baseline)
    theirs = _q(pf, xm, x, np.full(N, k), a)
    # Quantus records the T points after each step, not the unperturbed one
    assert theirs.shape == (N, T)
    np.testing.assert_allclose(theirs, ours.scores[:, 1:].numpy(), atol=TOL)
    # AUC: Quantus's calculate_auc is trapz(dx=1) over points 1..T (it calls
    # np.trapz, gone in NumPy 2.4, so computed here); the project's is over
    # all T + 1 points on [0, 1]
    q_auc = np.trapezoid(theirs, dx=1, axis=1)
    s = ours.scores.numpy()
    np.testing.assert_allclose(
        ours.auc.numpy() * T, q_auc + (s[:, 0] + s[:, 1]) / 2, rtol=1e-5
    )


def test_insertion_curve_matches_pixel_flipping_from_the_baseline(setup):
    """Insertion = Quantus pixel flipping run from the baseline image,
    putting the image's pixels back."""
    net, _, _, x, signed = setup
    a = signed[:, 0:1]
    base = make_baseline(x, "mean")
    ours = insertion_curve(net, x, a, target=2, baseline="mean", n_steps=T)
    pf = _pixel_flipping(perturb_func=baseline_perturb_func(x))
    theirs = _q(pf, net, base, np.full(N, 2), a)
    np.testing.assert_allclose(theirs, ours.scores[:, 1:].numpy(), atol=TOL)
    assert abs(theirs[:, -1] - ours.scores[:, 0].numpy()).max() > 1e-4


def test_deletion_curve_matches_region_perturbation(setup):
    """Quantus's RegionPerturbation removes 3x3 patches by their summed
    relevance and records ``y(x) - y(x_t)``: the project's deletion curve
    on patch-constant maps with one patch per step."""
    net, _, _, x, _ = setup
    p, n_patch = 3, (H // 3) ** 2
    g = torch.Generator().manual_seed(2)
    a = torch.nn.functional.interpolate(
        torch.rand(N, 1, H // p, H // p, generator=g), scale_factor=p, mode="nearest"
    )
    ours = deletion_curve(net, x, a, target=1, baseline=0.0, n_steps=n_patch)
    rp = quantus.RegionPerturbation(
        patch_size=p, regions_evaluation=n_patch, perturb_baseline=0.0,
        normalise=False, abs=False, disable_warnings=True,
    )  # fmt: skip
    theirs = _q(rp, net, x, np.full(N, 1), a)
    s = ours.scores.numpy()
    np.testing.assert_allclose(theirs, s[:, :1] - s[:, 1:], atol=TOL)


# ---------------------------------------------------------------- robustness
class _ReplayNoise:
    """Quantus perturb_func adding the noise Captum's sensitivity_max drew:
    one tensor (N * S, C, H, W), sample j of example i at row i * S + j."""

    def __init__(self, noise: np.ndarray, n: int, samples: int) -> None:
        self.noise = noise.reshape(n, samples, -1)
        self.step = 0

    def __call__(self, arr: np.ndarray, indices: np.ndarray, **kwargs) -> np.ndarray:
        out = (arr + self.noise[:, self.step]).astype(arr.dtype)
        self.step += 1
        return out


def test_attribution_sensitivity_matches_max_sensitivity(setup):
    net, _, sa, x, _ = setup
    samples, radius, seed = 5, 0.05, 123
    kw = {"target": 0, "concepts": [1], "relu_attributions": False}
    torch.manual_seed(seed)
    ours = attribution_sensitivity(
        sa, x, perturb_radius=radius, n_perturb_samples=samples, **kw
    ).numpy()
    # the same draws as Captum's default_perturb_func (one call, global RNG)
    torch.manual_seed(seed)
    noise = torch.FloatTensor(N * samples, C, H, H).uniform_(-radius, radius)
    ms = quantus.MaxSensitivity(
        nr_samples=samples,
        perturb_func=_ReplayNoise(noise.numpy(), N, samples),
        disable_warnings=True,
    )
    fn = srae_explain_func(sa, concept=1, relu_attributions=False)
    theirs = np.asarray(
        ms(model=net, x_batch=x.numpy(), y_batch=np.zeros(N, dtype=int),
           explain_func=fn, softmax=False),
    )  # fmt: skip
    assert ours.min() > 0.01
    np.testing.assert_allclose(theirs, ours, rtol=1e-5)


# ------------------------------------------------------------------ adapter
def test_adapter_equals_precomputed_maps(setup):
    net, _, sa, x, _ = setup
    masks = _masks_around_argmax(sa.attribute(x, target=0, output="class")[:, 0])
    via = quantus_evaluate("PointingGame", sa, x, 0, masks=masks)
    a = sa.attribute(x, target=0, output="class").detach()
    direct = _q(
        quantus.PointingGame(disable_warnings=True),
        net,
        x,
        np.zeros(N, dtype=int),
        a,
        s_batch=masks[:, None].float().numpy(),
    )
    np.testing.assert_array_equal(via, direct)
    np.testing.assert_array_equal(via, pointing_game(a, masks).per_image.numpy())


def test_adapter_concept_model_runs_pixel_flipping_on_x_features(setup):
    """concept=None: Quantus's y_batch holds x-feature indices and its model
    is the x-feature model; the curves equal the project's deletion curves
    of each example's x-feature map."""
    net, srae, sa, x, _ = setup
    ks = [0, 1, 2, 0, 1, 2]
    via = quantus_evaluate(
        "PixelFlipping",
        sa,
        x,
        ks,
        output="concepts",
        metric_options={
            "features_in_step": C * HW // T,
            "perturb_baseline": 0.0,
            "normalise": False,
        },
        attribute_kwargs={"relu_attributions": False},
    )
    maps = sa.attribute(x, target=0, relu_attributions=False).detach()
    a = maps[torch.arange(N), torch.tensor(ks)][:, None]
    xm = concept_model(sa)
    ours = deletion_curve(xm, x, a, target=ks, baseline=0.0, n_steps=T)
    np.testing.assert_allclose(via, ours.scores[:, 1:].numpy(), atol=TOL)
    np.testing.assert_allclose(
        xm(x).detach().numpy(), srae.encode(net[:3](x).mean((2, 3))).detach().numpy(),
        atol=1e-5,
    )  # fmt: skip


def test_explain_func_shapes_and_modes(setup):
    _, _, sa, x, signed = setup
    cls = srae_explain_func(sa, output="class")(None, x.numpy(), np.zeros(N, int))
    assert cls.shape == (N, 1, H, H) and cls.dtype == np.float32
    one = srae_explain_func(sa, concept=2, relu_attributions=False)
    np.testing.assert_allclose(
        one(None, x.numpy(), np.zeros(N, int)), signed[:, 2:3].numpy(), atol=1e-6
    )


def test_adapter_errors(setup):
    _, _, sa, x, _ = setup
    with pytest.raises(ValueError, match="output"):
        srae_explain_func(sa, output="pixels")
    with pytest.raises(ValueError, match="concept"):
        srae_explain_func(sa, output="class", concept=1)
    with pytest.raises(TypeError, match="concept"):
        srae_explain_func(sa, concept=1.5)
    with pytest.raises(TypeError, match="explainer"):
        srae_explain_func(object())
    with pytest.raises(TypeError, match="attribute_kwargs"):
        srae_explain_func(sa, target=0, concepts=[1])
    with pytest.raises(ValueError, match="targets"):
        srae_explain_func(sa)(None, x.numpy(), np.zeros(N - 1, int))
    with pytest.raises(ValueError, match="x-feature indices"):
        srae_explain_func(sa)(None, x.numpy(), np.full(N, 7))
    with pytest.raises(ValueError, match="x-feature indices"):
        srae_explain_func(sa)(None, x.numpy(), np.full(N, -1))  # not from the end
    with pytest.raises(ValueError, match="Quantus metric class"):
        quantus_evaluate("NoSuchMetric", sa, x, 0)
    with pytest.raises(TypeError, match="quantus.Metric"):
        quantus_evaluate(object(), sa, x, 0)
    with pytest.raises(ValueError, match="target must be a fitted class"):
        concept_model(sa, target=5)
    with pytest.raises(ValueError, match="masks"):
        quantus_evaluate("PointingGame", sa, x, 0, masks=torch.ones(2, H, H))
    with pytest.raises(ValueError, match="baseline"):
        baseline_perturb_func(torch.zeros(2, 3))
    pf = baseline_perturb_func(torch.zeros(2, 1, 2, 2))
    with pytest.raises(ValueError, match="batch_size"):
        pf(np.zeros((1, 4)), np.zeros((1, 1), int))
