"""Captum infidelity / max-sensitivity wrappers on hand-set linear models."""

from __future__ import annotations

import pytest
import torch
from captum.attr import Saliency
from torch import nn

from captum_srae.evaluation.metrics import (
    attribution_infidelity,
    attribution_sensitivity,
    gaussian_perturbation,
)


class PixelLinear(nn.Module):
    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weight).flatten(1).sum(dim=1, keepdim=True)


def test_exact_attribution_has_zero_infidelity():
    torch.manual_seed(0)
    w = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    model = PixelLinear(w)
    x = torch.rand(4, 3, 6, 6, dtype=torch.float64)
    exact = w.expand_as(x) * 3.0  # any scale: normalize=True rescales it
    infd = attribution_infidelity(model, x, exact, target=0, n_perturb_samples=8)
    assert infd.shape == (4,)
    assert infd.abs().max().item() < 1e-12
    wrong = torch.randn_like(x)
    bad = attribution_infidelity(model, x, wrong, target=0, n_perturb_samples=8)
    assert bool((bad > 1e-4).all())


def test_spatial_map_is_repeated_over_channels():
    torch.manual_seed(1)
    w_pix = torch.randn(1, 1, 6, 6, dtype=torch.float64)
    model = PixelLinear(w_pix.expand(1, 3, 6, 6).clone())
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    maps = w_pix[0].expand(2, 6, 6)  # (N, H, W): exact per-pixel weight
    infd = attribution_infidelity(model, x, maps, target=0)
    assert infd.abs().max().item() < 1e-12


def test_gaussian_perturbation_scale():
    torch.manual_seed(2)
    x = torch.randn(3, 1000, dtype=torch.float64) * torch.tensor([[1.0], [10.0], [0.1]])
    noise, perturbed = gaussian_perturbation(0.1)(x)
    assert torch.allclose(perturbed, x - noise)
    ratio = noise.std(dim=1) / x.std(dim=1)
    assert ratio.tolist() == pytest.approx([0.1] * 3, rel=0.1)
    with pytest.raises(ValueError, match="scale"):
        gaussian_perturbation(0.0)


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require")
def test_sensitivity_of_saliency_on_linear_model_is_zero():
    torch.manual_seed(3)
    model = PixelLinear(torch.randn(1, 2, 4, 4))
    x = torch.rand(3, 2, 4, 4)
    sens = attribution_sensitivity(Saliency(model), x, target=0, n_perturb_samples=4)
    assert sens.shape == (3,)
    assert sens.abs().max().item() == 0.0


def test_sensitivity_of_identity_explanation_is_bounded():
    torch.manual_seed(4)
    x = torch.rand(3, 2, 4, 4) + 1.0
    sens = attribution_sensitivity(lambda inp: inp, x, perturb_radius=0.05)
    bound = 0.05 * (32**0.5) / x.flatten(1).norm(dim=1)
    assert bool((sens > 0).all())
    assert bool((sens <= bound + 1e-6).all())


def test_robustness_errors():
    x = torch.rand(2, 3, 4, 4)
    model = PixelLinear(torch.ones(1, 3, 4, 4))
    with pytest.raises(ValueError, match="attributions"):
        attribution_infidelity(model, x, torch.rand(3, 4, 4), target=0)
    with pytest.raises(TypeError, match="forward_func"):
        attribution_infidelity(None, x, x, target=0)
    with pytest.raises(TypeError, match="explainer"):
        attribution_sensitivity(3, x)
    with pytest.raises(ValueError, match="perturb_radius"):
        attribution_sensitivity(lambda inp: inp, x, perturb_radius=-1.0)


def test_wrappers_run_on_srae_attribution():
    """SRAEAttribution (hand-built, untrained) as explainer and XFeatureModel as
    the concept-level model: infidelity against the formula evaluated on the
    recorded perturbations, sensitivity against Captum's own function."""
    from captum.metrics import sensitivity_max

    from captum_srae import SRAE, SRAEConfig
    from captum_srae.attribution import SRAEAttribution
    from captum_srae.attribution.heatmaps import XFeatureModel
    from captum_srae.evaluation.metrics import deletion_curve

    torch.manual_seed(5)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 2)
    )
    net = net.double().eval()  # float64: the oracle below is exact to ~1e-12
    srae = SRAE(8, config=SRAEConfig(n_concepts=3, hidden_sizes=(6, 5)))
    srae = srae.double().eval()
    sa = SRAEAttribution.from_sraes(net, net[1], {1: srae}, n_outputs=2)
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    maps = sa.attribute(x, target=1, concepts=[2])  # x-feature 2: nonzero maps
    assert maps.shape == (2, 1, 8, 8) and bool((maps.flatten(1).sum(1) > 0).all())
    xm = XFeatureModel(net, net[1], srae)
    seen = []

    def perturb(inputs):
        noise = 0.5 * torch.randn_like(inputs)
        seen.append((inputs.clone(), noise))
        return noise, inputs - noise

    s = 3
    infd = attribution_infidelity(
        xm, x, maps, target=2, perturb_func=perturb, n_perturb_samples=s
    )
    # INFD_i = mean_s (beta_i I_s.phi_i - (f(x_i) - f(x_i - I_s)))^2, with
    # beta_i the least-squares scale; phi is the map repeated over channels
    (inputs, noise) = seen[0]
    assert len(seen) == 1 and torch.equal(inputs, x.repeat_interleave(s, 0))
    with torch.no_grad():
        df = xm(inputs)[:, 2] - xm(inputs - noise)[:, 2]
    dot = (noise * maps.repeat_interleave(s, 0)).flatten(1).sum(1)
    dot, df = dot.view(2, s), df.view(2, s)
    beta = (dot * df).mean(1) / (dot * dot).mean(1)
    expected = ((beta[:, None] * dot - df) ** 2).mean(1)
    assert bool((expected > 1e-8).all())
    torch.testing.assert_close(infd, expected, rtol=1e-7, atol=0)
    torch.manual_seed(6)
    sens = attribution_sensitivity(sa, x, target=1, concepts=[2], n_perturb_samples=3)
    torch.manual_seed(6)
    ref = sensitivity_max(
        sa.attribute,
        x,
        perturb_radius=0.02,
        n_perturb_samples=3,
        target=1,
        concepts=[2],
    )
    torch.testing.assert_close(sens, ref)
    assert bool((sens > 0).all())
    cls = sa.attribute(x, target=1, output="class")
    curve = deletion_curve(net, x, cls, 1)
    assert curve.auc.shape == (2,)
    with torch.no_grad():  # the curve starts at the model's score of the image
        torch.testing.assert_close(curve.scores[:, 0], net(x)[:, 1])
