"""Tests of ``captum_srae.attribution.excitation`` against a literal per-layer
implementation."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torchvision.models import resnet18

from captum_srae import SRAE, SRAEConfig
from captum_srae.attribution.excitation import (
    encoder_excitation,
    excitation_maps,
    excitation_rule,
)


# ------------------------------------------------------------ literal oracle
def ref_linear(a: np.ndarray, w: np.ndarray, p: np.ndarray) -> np.ndarray:
    """P(a_j) = a_j sum_i W+_ij P(y_i) / sum_j' a_j' W+_ij' (one example)."""
    wp = np.maximum(w, 0)
    out = np.zeros_like(a)
    for j in range(a.shape[0]):
        for i in range(w.shape[0]):
            den = sum(a[jj] * wp[i, jj] for jj in range(a.shape[0]))
            if den > 0:
                out[j] += a[j] * wp[i, j] * p[i] / den
    return out


def ref_conv(a: np.ndarray, w: np.ndarray, p: np.ndarray, pad: int) -> np.ndarray:
    """The same rule for a stride-1 convolution, a (C, H, W), w (O, C, k, k)."""
    wp = np.maximum(w, 0)
    c_in, h, wd = a.shape
    c_out, _, k, _ = w.shape
    out = np.zeros_like(a)
    for o in range(c_out):
        for y in range(p.shape[1]):
            for x in range(p.shape[2]):
                cells = [
                    (c, y + dy - pad, x + dx - pad, wp[o, c, dy, dx])
                    for c in range(c_in)
                    for dy in range(k)
                    for dx in range(k)
                    if 0 <= y + dy - pad < h and 0 <= x + dx - pad < wd
                ]
                den = sum(a[c, yy, xx] * wgt for c, yy, xx, wgt in cells)
                if den <= 0:
                    continue
                for c, yy, xx, wgt in cells:
                    out[c, yy, xx] += a[c, yy, xx] * wgt * p[o, y, x] / den
    return out


def ref_maxpool(a: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Winner takes all in each 2x2 window."""
    out = np.zeros_like(a)
    for c in range(a.shape[0]):
        for y in range(p.shape[1]):
            for x in range(p.shape[2]):
                win = a[c, 2 * y : 2 * y + 2, 2 * x : 2 * x + 2]
                dy, dx = np.unravel_index(np.argmax(win), win.shape)
                out[c, 2 * y + dy, 2 * x + dx] += p[c, y, x]
    return out


def ref_gap(a: np.ndarray, p: np.ndarray) -> np.ndarray:
    out = np.zeros_like(a)
    for c in range(a.shape[0]):
        if a[c].sum() > 0:
            out[c] = a[c] * p[c] / a[c].sum()  # (1/HW) a / mean = a / sum
    return out


def tiny() -> tuple[nn.Sequential, SRAE, Tensor]:
    torch.manual_seed(3)
    net = nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(2, 3, 3),
            relu1=nn.ReLU(),
            pool=nn.MaxPool2d(2),
            conv2=nn.Conv2d(3, 4, 3, padding=1),
            relu2=nn.ReLU(),
            gap=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(4, 2),
        )
    )
    with torch.no_grad():
        net.conv2.bias.fill_(0.3)
    net = net.double().eval()
    srae = SRAE(4, 1, SRAEConfig(n_concepts=2, hidden_sizes=(5, 3))).double()
    with torch.no_grad():
        srae.z_mean.copy_(torch.tensor([0.1, 0.2, 0.0, 0.3]))
        srae.z_scale.copy_(torch.tensor([2.0, 0.5, 1.0, 4.0]))
        for m in srae.encoder:
            if isinstance(m, nn.Linear):
                m.bias.fill_(0.4)
    return net, srae.eval(), torch.randn(2, 2, 6, 6, dtype=torch.float64)


def reference(net: nn.Sequential, srae: SRAE, x: Tensor, k: int, dual: bool):
    """P at relu2 (the layer) and at relu1, example by example, in numpy."""
    with torch.no_grad():
        r1 = net.relu1(net.conv1(x))
        pooled = net.pool(r1)
        r2 = net.relu2(net.conv2(pooled))
        z = r2.mean((2, 3))
        hs = [z]
        h = srae.standardize_z(z)
        for m in srae.encoder:
            h = m(h)
            if isinstance(m, nn.ReLU):
                hs.append(h)
    lin = [m for m in srae.encoder if isinstance(m, nn.Linear)]
    ws = [(lin[0].weight / srae.z_scale[None]).detach()]
    ws += [m.weight.detach() for m in lin[1:]]
    at_layer, at_relu1 = [], []
    for n in range(x.shape[0]):
        p = np.zeros(srae.n_concepts)
        p[k] = 1.0
        for i in (2, 1, 0):
            w = ws[i].numpy() * (-1 if dual and i == 2 else 1)
            p = ref_linear(hs[i][n].numpy(), w, p)
        p_a = ref_gap(r2[n].numpy(), p)
        at_layer.append(p_a)
        p_pool = ref_conv(pooled[n].numpy(), net.conv2.weight.detach().numpy(), p_a, 1)
        at_relu1.append(ref_maxpool(r1[n].numpy(), p_pool))
    return np.stack(at_layer), np.stack(at_relu1)


# --------------------------------------------------------------------- tests
def test_excitation_rule_single_linear_and_add() -> None:
    w = torch.tensor([[1.0, 3.0, -2.0]])
    (p,) = excitation_rule(
        lambda a: a @ w.clamp_min(0).T,
        [torch.tensor([[1.0, 1.0, 5.0]])],
        torch.ones(1, 1),
    )
    torch.testing.assert_close(p, torch.tensor([[0.25, 0.75, 0.0]]))
    a, b = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([3.0, 0.0, 2.0])
    pa, pb = excitation_rule(torch.add, [a, b], torch.tensor([1.0, 1.0, 0.5]))
    torch.testing.assert_close(pa, torch.tensor([0.25, 0.0, 0.25]))
    torch.testing.assert_close(pb, torch.tensor([0.75, 0.0, 0.25]))


@pytest.mark.parametrize("dual", [False, True])
def test_encoder_excitation_matches_literal_rule(dual: bool) -> None:
    net, srae, x = tiny()
    with torch.no_grad():
        z = net[:5](x).mean((2, 3))
    for k in range(2):
        got = encoder_excitation(srae, z, [k], contrastive=dual)[0]
        lin = [m for m in srae.encoder if isinstance(m, nn.Linear)]
        hs = [z]
        h = srae.standardize_z(z)
        for m in srae.encoder:
            h = m(h)
            if isinstance(m, nn.ReLU):
                hs.append(h.detach())
        for n in range(2):
            p = np.eye(2)[k]
            for i in (2, 1, 0):
                w = lin[i].weight.detach()
                w = w / srae.z_scale[None] if i == 0 else w
                p = ref_linear(
                    hs[i][n].numpy(), w.numpy() * (-1 if dual and i == 2 else 1), p
                )
            np.testing.assert_allclose(got[n].numpy(), p, atol=1e-12)


@pytest.mark.parametrize("contrastive", [False, True])
def test_excitation_maps_match_literal_implementation(contrastive: bool) -> None:
    net, srae, x = tiny()
    at_layer = excitation_maps(net, net.relu2, srae, (x,), contrastive=contrastive)
    at_relu1 = excitation_maps(
        net, net.relu2, srae, (x,), heatmap_layer=net.relu1, contrastive=contrastive
    )
    assert at_layer.shape == (2, 2, 2, 2)
    assert at_relu1.shape == (2, 2, 4, 4)
    for k in range(2):
        ref_l, ref_r = reference(net, srae, x, k, False)
        if contrastive:
            dual_l, dual_r = reference(net, srae, x, k, True)
            ref_l, ref_r = ref_l - dual_l, ref_r - dual_r
        np.testing.assert_allclose(at_layer[:, k].numpy(), ref_l.sum(1), atol=1e-10)
        np.testing.assert_allclose(at_relu1[:, k].numpy(), ref_r.sum(1), atol=1e-10)
    if not contrastive:  # probability mass is conserved (where not dropped)
        assert torch.all(at_layer.sum((2, 3)) <= 1 + 1e-9)
        assert at_layer.sum((2, 3)).max() > 0.99


def test_excitation_through_resnet_basic_blocks_conserves_mass(
    small_config, no_hooks
) -> None:
    torch.manual_seed(0)
    net = resnet18(num_classes=3).eval()
    srae = SRAE(256, 1, small_config).eval()
    with torch.no_grad():
        for m in srae.encoder:
            if isinstance(m, nn.Linear):
                m.weight.abs_()  # every unit receives mass
    x = torch.rand(2, 3, 32, 32)
    maps = excitation_maps(net, net.layer3, srae, (x,), heatmap_layer=net.layer2)
    assert maps.shape == (2, 3, 4, 4) and (maps >= 0).all()
    torch.testing.assert_close(maps.sum((2, 3)), torch.ones(2, 3), atol=1e-4, rtol=0)
    low = excitation_maps(net, net.layer3, srae, (x,), heatmap_layer=net.maxpool)
    assert low.shape == (2, 3, 8, 8)
    both = encoder_excitation(srae, x.new_ones(2, 256), [2, 0])
    torch.testing.assert_close(
        both[1], encoder_excitation(srae, x.new_ones(2, 256), [0])[0]
    )
    assert no_hooks(net)


def test_excitation_unsupported_layer_is_named() -> None:
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 3, 3), nn.Tanh(), nn.Conv2d(3, 4, 1)
    ).eval()
    srae = SRAE(4, 1, SRAEConfig(n_concepts=2, hidden_sizes=(4, 3))).eval()
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(TypeError, match="Tanh"):
        excitation_maps(net, net[4], srae, (x,), heatmap_layer=net[1])
    with pytest.raises(ValueError, match="before layer"):
        excitation_maps(net, net[1], srae, (x,), heatmap_layer=net[4])
    with pytest.raises(RuntimeError, match="channels"):  # the model's own error
        excitation_maps(
            net, net[4], srae, (torch.rand(1, 2, 8, 8),), heatmap_layer=net[1]
        )


def test_excitation_needs_traceable_module_for_lower_layers() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.relu = nn.ReLU()

        def forward(self, x: Tensor) -> Tensor:
            if x.sum() > 0:  # data-dependent control flow: not traceable
                x = x * 2
            return self.relu(self.conv(x))

    net = Branchy().eval()
    srae = SRAE(4, 1, SRAEConfig(n_concepts=2, hidden_sizes=(4, 3))).eval()
    x = torch.rand(1, 1, 6, 6)
    maps = excitation_maps(net, net.relu, srae, (x,))
    assert maps.shape == (1, 2, 4, 4)
    with torch.no_grad():  # at the layer itself: the encoder's mass, spread by GAP
        a = net.relu(net.conv(2 * x))  # x.sum() > 0: Branchy doubles x
        p = encoder_excitation(srae, a.mean((2, 3)), [0, 1])
    for k in range(2):
        ref = ref_gap(a[0].double().numpy(), p[k][0].double().numpy()).sum(0)
        np.testing.assert_allclose(maps[0, k].numpy(), ref, rtol=1e-5, atol=1e-7)
    assert maps[0].sum((1, 2)).max() > 0.99  # not an all-zero map
    with pytest.raises(TypeError, match="torch.fx"):
        excitation_maps(net, net.relu, srae, (x,), heatmap_layer=net.conv)


def test_excitation_traces_the_parts_cnn_to_a_lower_block(small_config) -> None:
    from captum_srae.datasets.models import PartsCNN

    torch.manual_seed(0)
    net = PartsCNN(width=4).eval()  # its forward lays x out channels-last
    traced = torch.fx.symbolic_trace(net)
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(traced(x), net(x))
    srae = SRAE(16, 1, small_config).eval()
    with torch.no_grad():
        for m in srae.encoder:
            if isinstance(m, nn.Linear):
                m.weight.abs_()  # every unit receives mass
    maps = excitation_maps(net, net.conv4, srae, (x,), heatmap_layer=net.conv3)
    assert maps.shape == (2, small_config.n_concepts, 4, 4) and (maps >= 0).all()
    assert torch.all(maps.sum((2, 3)) <= 1 + 1e-4)
    assert maps.sum((2, 3)).min() > 0.5  # mass reaches conv3 through conv4
