"""Value oracles for the heatmap paths of ``SRAEAttribution.attribute``.

Each map is checked against a value computed without the code under test:
Excitation Backprop by a literal loop over the marginal-winning-probability
rule, IG and Saliency by Captum's own classes on an x-feature module written
here, Grad-CAM at a lower ``heatmap_layer`` by autograd, ``NoiseTunnel`` with
``stdevs=0`` by the plain maps, and ``attribution_infidelity`` /
``attribution_sensitivity`` by a literal re-implementation of their formulas
on the same perturbations.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from captum.attr import IntegratedGradients, NoiseTunnel, Saliency
from torch import Tensor, nn

from captum_srae import SRAE, SRAEAttribution, SRAEConfig
from captum_srae.evaluation.metrics import (
    attribution_infidelity,
    attribution_sensitivity,
)


# ------------------------------------------------------------------ set-ups
@pytest.fixture
def cnn_explainer(tiny_cnn, active_srae):
    """float64 tiny CNN (relu2: 10 channels of 8x8), an SRAE per class."""
    net = tiny_cnn(3, (6, 10)).double()
    torch.manual_seed(1)
    sraes = {t: active_srae(10).double() for t in range(3)}
    x = torch.rand(4, 3, 8, 8, dtype=torch.float64, generator=_gen(2))
    sa = SRAEAttribution.from_sraes(net, "relu2", sraes, n_outputs=3)
    return net, sa, x


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def x_features(net: nn.Sequential, srae: SRAE) -> nn.Module:
    """inputs -> conv1 -> relu1 -> conv2 -> relu2 -> GAP -> encoder, by hand."""

    class XF(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            a = net.relu2(net.conv2(net.relu1(net.conv1(x))))
            return srae.encode(a.mean(dim=(2, 3)))

    return XF()


def one_by_one_net() -> nn.Sequential:
    """1x1 convolutions 2 -> 3 -> 4 channels with ReLUs, GAP and a head."""
    torch.manual_seed(3)
    net = nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(2, 3, 1),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(3, 4, 1),
            relu2=nn.ReLU(),
            gap=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(4, 2),
        )
    )
    with torch.no_grad():
        net.conv1.bias.fill_(0.2)
        net.conv2.bias.fill_(0.1)
    return net.double().eval()


def standardised_srae() -> SRAE:
    """An SRAE on 4 features with a non-trivial input standardisation."""
    torch.manual_seed(4)
    cfg = SRAEConfig(n_concepts=3, hidden_sizes=(5, 4), dropout=0.0)
    srae = SRAE(4, 1, cfg).double()
    with torch.no_grad():
        for m in srae.encoder:
            if isinstance(m, nn.Linear):
                m.bias.fill_(0.3)
        srae.z_mean.copy_(torch.tensor([0.1, -0.2, 0.05, 0.0]))
        srae.z_scale.copy_(torch.tensor([0.5, 2.0, 1.5, 0.8]))
    return srae.eval()


# ---------------------------------------------- Excitation Backprop by hand
def eb_linear(a: list[float], w: list[list[float]], p_out: list[float]) -> list[float]:
    """``P(a_j) = a_j Σ_i W+_ij P(y_i) / Σ_j' a_j' W+_ij'`` (0/0 = 0), a >= 0."""
    a = [max(v, 0.0) for v in a]
    out = [0.0] * len(a)
    for i, row in enumerate(w):
        denom = sum(max(wij, 0.0) * aj for wij, aj in zip(row, a, strict=True))
        if denom > 0:
            for j, wij in enumerate(row):
                out[j] += a[j] * max(wij, 0.0) * p_out[i] / denom
    return out


def eb_oracle(
    net: nn.Sequential, srae: SRAE, x: Tensor, k: int, *, below: bool, dual: bool
) -> list[list[list[float]]]:
    """Excitation Backprop map of x-feature ``k`` for each example, by loops."""
    lin = [m for m in srae.encoder if isinstance(m, nn.Linear)]
    w1, w2, w3 = (m.weight.tolist() for m in lin)
    b1, b2 = lin[0].bias.tolist(), lin[1].bias.tolist()
    mean, scale = srae.z_mean.tolist(), srae.z_scale.tolist()
    w1_raw = [[wij / scale[j] for j, wij in enumerate(row)] for row in w1]
    top = [[-wij for wij in row] for row in w3] if dual else w3
    with torch.no_grad():
        low = net.relu1(net.conv1(x))
        act = net.relu2(net.conv2(low))
    maps = []
    for n in range(x.shape[0]):
        a = act[n].tolist()  # C x H x W
        chans, h, w = len(a), len(a[0]), len(a[0][0])
        z = [sum(map(sum, a[c])) / (h * w) for c in range(chans)]
        zs = [(z[j] - mean[j]) / scale[j] for j in range(chans)]
        h1 = [
            max(sum(r[j] * zs[j] for j in range(chans)) + b, 0.0)
            for r, b in zip(w1, b1, strict=True)
        ]
        h2 = [
            max(sum(r[j] * h1[j] for j in range(len(h1))) + b, 0.0)
            for r, b in zip(w2, b2, strict=True)
        ]
        p = eb_linear(h2, top, [1.0 if i == k else 0.0 for i in range(len(w3))])
        p = eb_linear(h1, w2, p)
        p_z = eb_linear(z, w1_raw, p)
        # global average pooling: weights 1/HW, so P(A_c,hw) = A_c,hw P(z_c) / (HW z_c)
        p_a = [
            [
                [
                    a[c][i][j] / (h * w) * p_z[c] / z[c] if z[c] > 0 else 0.0
                    for j in range(w)
                ]
                for i in range(h)
            ]
            for c in range(chans)
        ]
        if below:  # the 1x1 conv2 between relu1 and relu2, location by location
            b_low = low[n].tolist()
            wc = net.conv2.weight[:, :, 0, 0].tolist()
            d = len(b_low)
            p_b = [[[0.0] * w for _ in range(h)] for _ in range(d)]
            for i in range(h):
                for j in range(w):
                    pa = [p_a[c][i][j] for c in range(chans)]
                    pb = eb_linear([b_low[e][i][j] for e in range(d)], wc, pa)
                    for e in range(d):
                        p_b[e][i][j] = pb[e]
            p_a = p_b
        maps.append(
            [
                [sum(p_a[c][i][j] for c in range(len(p_a))) for j in range(w)]
                for i in range(h)
            ]
        )
    return maps


@pytest.mark.parametrize("below", [False, True], ids=["at-layer", "heatmap-layer"])
def test_excitation_backprop_equals_the_rule_computed_by_hand(below: bool) -> None:
    net, srae = one_by_one_net(), standardised_srae()
    sa = SRAEAttribution.from_sraes(
        net, "relu2", {1: srae}, heatmap_layer="relu1" if below else None
    )
    x = torch.rand(2, 2, 3, 4, dtype=torch.float64, generator=_gen(5)) - 0.3
    maps = sa.attribute(x, target=1, method="excitation", interpolate="layer")
    expected = torch.tensor(
        [
            [eb_oracle(net, srae, x, k, below=below, dual=False)[n] for k in range(3)]
            for n in range(2)
        ],
        dtype=torch.float64,
    )
    assert maps.shape == (2, 3, 3, 4) and expected.abs().sum() > 0
    torch.testing.assert_close(maps, expected, rtol=1e-10, atol=1e-12)
    if not below:  # here no bias carries mass away: each map sums to P(e_k) = 1
        torch.testing.assert_close(maps.sum(dim=(2, 3)), torch.ones(2, 3).double())


def test_contrastive_excitation_equals_difference_of_dual_maps() -> None:
    net, srae = one_by_one_net(), standardised_srae()
    sa = SRAEAttribution.from_sraes(net, "relu2", {0: srae})
    x = torch.rand(2, 2, 3, 3, dtype=torch.float64, generator=_gen(6))
    maps = sa.attribute(
        x,
        target=0,
        method="excitation",
        interpolate="layer",
        relu_attributions=False,
        attribution_kwargs={"contrastive": True},
    )
    pos = [eb_oracle(net, srae, x, k, below=False, dual=False) for k in range(3)]
    neg = [eb_oracle(net, srae, x, k, below=False, dual=True) for k in range(3)]
    expected = torch.tensor(
        [[pos[k][n] for k in range(3)] for n in range(2)], dtype=torch.float64
    ) - torch.tensor(
        [[neg[k][n] for k in range(3)] for n in range(2)], dtype=torch.float64
    )
    torch.testing.assert_close(maps, expected, rtol=1e-10, atol=1e-12)


# ------------------------------------------------- Captum classes as oracles
@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require")
def test_integrated_gradients_and_saliency_equal_captum_on_own_xfeature_module(
    cnn_explainer,
) -> None:
    net, sa, x = cnn_explainer
    target = [2, 0, 1, 0]
    ig = sa.attribute(
        x, target=target, method=IntegratedGradients, attribution_kwargs={"n_steps": 8}
    )
    sal = sa.attribute(x, target=target, method=Saliency)
    assert ig.shape == sal.shape == (4, 3, 8, 8)
    for i, t in enumerate(target):
        xf = x_features(net, sa.sraes_[t])
        xi = x[i : i + 1].clone().requires_grad_()
        for k in range(3):
            ref_ig = IntegratedGradients(xf).attribute(xi, target=k, n_steps=8)
            ref_sal = Saliency(xf).attribute(xi, target=k)
            torch.testing.assert_close(ig[i, k], ref_ig[0].sum(0).detach())
            torch.testing.assert_close(sal[i, k], ref_sal[0].sum(0).detach())
    assert ig.abs().sum() > 0 and sal.abs().sum() > 0


def test_gradcam_at_lower_heatmap_layer_equals_autograd_gradcam(cnn_explainer) -> None:
    net, sa, x = cnn_explainer
    low = SRAEAttribution.from_sraes(
        net, "relu2", sa.sraes_, heatmap_layer="relu1", n_outputs=3
    )
    maps = low.attribute(x, target=1, interpolate="layer")
    srae = sa.sraes_[1]
    b = net.relu1(net.conv1(x)).detach().requires_grad_()
    e = srae.encode(net.relu2(net.conv2(b)).mean(dim=(2, 3)))
    expected = []
    for k in range(3):
        (grad,) = torch.autograd.grad(e[:, k].sum(), b, retain_graph=True)
        alpha = grad.mean(dim=(2, 3), keepdim=True)  # Grad-CAM channel weights
        expected.append((alpha * b).sum(dim=1).clamp_min(0).detach())
    expected_t = torch.stack(expected, dim=1)
    assert maps.shape == (4, 3, 8, 8) and expected_t.abs().sum() > 0
    torch.testing.assert_close(maps, expected_t)


# ----------------------------------------------------------- NoiseTunnel
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"output": "class"}, {"method": Saliency}],
    ids=["gradcam", "class", "saliency"],
)
def test_noise_tunnel_without_noise_equals_plain_maps(cnn_explainer, kwargs) -> None:
    net, sa, x = cnn_explainer
    plain = sa.attribute(x, target=[1, 2, 0, 1], **kwargs)
    nt = NoiseTunnel(sa)
    for nt_type, expected in (
        ("smoothgrad", plain),
        ("smoothgrad_sq", plain**2),
        ("vargrad", torch.zeros_like(plain)),
    ):
        out = nt.attribute(
            x,
            nt_type=nt_type,
            nt_samples=3,
            stdevs=0.0,
            target=[1, 2, 0, 1],
            **kwargs,
        )
        torch.testing.assert_close(out, expected, msg=nt_type)
    assert plain.abs().sum() > 0


# ------------------------------------------- infidelity and sensitivity
def test_infidelity_of_class_maps_equals_the_formula(cnn_explainer) -> None:
    net, sa, x = cnn_explainer
    t, samples = 2, 5
    maps = sa.attribute(x, target=t, output="class")  # (N, 1, H, W)
    seen: list[tuple[Tensor, Tensor]] = []
    g = _gen(7)

    def perturb(inputs: Tensor) -> tuple[Tensor, Tensor]:
        noise = 0.05 * torch.randn(inputs.shape, generator=g, dtype=inputs.dtype)
        seen.append((inputs.clone(), noise.clone()))
        return noise, inputs - noise

    infd = attribution_infidelity(
        net, x, maps, target=t, perturb_func=perturb, n_perturb_samples=samples
    )
    rows = {i: [] for i in range(x.shape[0])}
    for inputs, noise in seen:
        for r in range(inputs.shape[0]):
            (i,) = [i for i in range(x.shape[0]) if torch.equal(inputs[r], x[i])]
            phi = maps[i, 0].expand_as(x[i])  # the map repeated over channels
            dot = float((noise[r] * phi).sum().detach())
            with torch.no_grad():
                f0 = float(net(x[i : i + 1])[0, t])
                f1 = float(net((x[i] - noise[r])[None])[0, t])
            rows[i].append((dot, f0 - f1))
    expected = []
    for i in range(x.shape[0]):
        assert len(rows[i]) == samples
        beta = sum(a * d for a, d in rows[i]) / sum(a * a for a, _ in rows[i])
        expected.append(sum((beta * a - d) ** 2 for a, d in rows[i]) / samples)
    torch.testing.assert_close(infd, torch.tensor(expected, dtype=infd.dtype))


def test_sensitivity_of_srae_maps_equals_the_formula(cnn_explainer) -> None:
    net, sa, x = cnn_explainer
    radius, samples, t = 0.02, 4, 0
    seen: list[Tensor] = []

    def recorded(inputs, **kwargs):
        seen.append((inputs[0] if isinstance(inputs, tuple) else inputs).clone())
        return sa.attribute(inputs, **kwargs)

    sens = attribution_sensitivity(
        recorded, x, perturb_radius=radius, n_perturb_samples=samples, target=t
    )
    worst = [0.0] * x.shape[0]
    count = [0] * x.shape[0]
    for batch in seen:
        for row in batch:
            near = [i for i in range(x.shape[0]) if (row - x[i]).abs().max() <= radius]
            assert len(near) == 1
            i = near[0]
            if torch.equal(row, x[i]):
                continue  # the unperturbed call
            phi = sa.attribute(x[i : i + 1], target=t)
            phi_r = sa.attribute(row[None], target=t)
            ratio = float((phi_r - phi).norm() / phi.norm())
            worst[i] = max(worst[i], ratio)
            count[i] += 1
    assert count == [samples] * x.shape[0] and min(worst) > 0
    torch.testing.assert_close(sens, torch.tensor(worst, dtype=sens.dtype))
