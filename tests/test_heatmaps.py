"""Tests of ``captum_srae.attribution.heatmaps``: Grad-CAM closed form and the
generic path."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from captum.attr import IntegratedGradients, LayerGradCam, Saliency
from torch import Tensor, nn

from captum_srae import SRAE
from captum_srae.attribution.heatmaps import (
    XFeatureModel,
    captum_maps,
    capture_layers,
    gradcam_maps,
    resize_maps,
)


@pytest.fixture
def random_setup(active_srae):
    """``random_setup(seed)``: a CNN, an SRAE on its ``relu2`` and inputs."""

    def make(seed: int = 0) -> tuple[nn.Module, SRAE, Tensor]:
        torch.manual_seed(seed)
        return _random_net(), active_srae(8), torch.randn(4, 3, 8, 8)

    return make


def _random_net() -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(3, 6, 3, padding=1),
            relu1=nn.ReLU(),
            pool=nn.MaxPool2d(2),
            conv2=nn.Conv2d(6, 8, 3, padding=1),
            relu2=nn.ReLU(),
            gap=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(8, 3),
        )
    ).eval()


def test_gradcam_closed_form_equals_hand_computed_values(
    hand_net, hand_srae, x_hand
) -> None:
    net, srae = hand_net, hand_srae
    acts, _ = capture_layers(net, {"layer": net.conv}, (x_hand,))
    a = acts["layer"]
    assert torch.equal(a[0, 0], x_hand[0, 0]) and torch.equal(a[0, 1], -x_hand[0, 0])
    maps = gradcam_maps(a, srae)
    # alpha_1 = (2, 0, 0) / 4 -> map_1 = x / 2; alpha_2 = (0, -1, -1) / 4 ->
    # map_2 = -(A1 + A2) / 4 = -x / 4
    expected = torch.tensor(
        [[[[0.5, 1.0], [1.5, -2.0]], [[-0.25, -0.5], [-0.75, 1.0]]]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(maps, expected)
    e = srae.encode(a.mean((2, 3)))
    torch.testing.assert_close(e, torch.tensor([[21.0, 9.5]], dtype=torch.float64))


def test_gradcam_closed_form_subset_of_concepts(hand_net, hand_srae, x_hand) -> None:
    net, srae = hand_net, hand_srae
    a = capture_layers(net, {"layer": net.conv}, (x_hand,))[0]["layer"]
    full = gradcam_maps(a, srae)
    torch.testing.assert_close(gradcam_maps(a, srae, [1, 0]), full[:, [1, 0]])


def test_closed_form_equals_layer_gradcam_on_xfeature_model(
    random_setup, no_hooks
) -> None:
    net, srae, x = random_setup()
    a = capture_layers(net, {"layer": net.relu2}, (x,))[0]["layer"]
    closed = gradcam_maps(a, srae).clamp_min(0)
    xm = XFeatureModel(net, net.relu2, srae)
    for k in range(3):
        ref = LayerGradCam(xm, net.relu2).attribute(x, target=k, relu_attributions=True)
        torch.testing.assert_close(closed[:, k], ref[:, 0].detach(), atol=1e-5, rtol=0)
    assert closed.abs().sum() > 0
    assert no_hooks(net)


def test_captum_maps_generic_path_shapes_and_equality(random_setup, no_hooks) -> None:
    net, srae, x = random_setup()
    xm = XFeatureModel(net, net.relu2, srae)
    maps, is_layer = captum_maps(LayerGradCam, xm, (x,), (), 3, net.relu2)
    assert is_layer and maps[0].shape == (4, 3, 4, 4)
    a = capture_layers(net, {"layer": net.relu2}, (x,))[0]["layer"]
    torch.testing.assert_close(maps[0], gradcam_maps(a, srae), atol=1e-5, rtol=0)
    (sal,), is_layer = captum_maps(Saliency, xm, (x,), (), 3, net.relu2)
    assert not is_layer and sal.shape == (4, 3, 8, 8)
    # Saliency of x-feature k: |de_k/dx| summed over the input channels
    xg = x.clone().requires_grad_(True)
    e = xm(xg)
    grads = [
        torch.autograd.grad(e[:, k].sum(), xg, retain_graph=True)[0] for k in range(3)
    ]
    torch.testing.assert_close(sal, torch.stack([g.abs().sum(1) for g in grads], 1))
    kwargs = {"n_steps": 32}
    ig = captum_maps(IntegratedGradients, xm, (x,), (), 3, net.relu2, kwargs)[0][0]
    assert ig.shape == (4, 3, 8, 8)
    with torch.no_grad():  # completeness: the maps sum to e(x) - e(0)
        delta = xm(x) - xm(torch.zeros_like(x))
    torch.testing.assert_close(ig.sum((2, 3)), delta, atol=1e-3, rtol=0)
    (low,), _ = captum_maps(LayerGradCam, xm, (x,), (), 3, net.relu1)
    assert low.shape == (4, 3, 8, 8)
    # Grad-CAM at relu1 (signed, as LayerGradCam): sum_c mean_hw(de_k/dA_c) A_c
    a1 = net.relu1(net.conv1(x)).detach().requires_grad_(True)
    e1 = srae.encode(net.relu2(net.conv2(net.pool(a1))).mean((2, 3)))
    cams = []
    for k in range(3):
        g = torch.autograd.grad(e1[:, k].sum(), a1, retain_graph=True)[0]
        cams.append((g.mean((2, 3), keepdim=True) * a1).sum(1).detach())
    torch.testing.assert_close(low, torch.stack(cams, 1), atol=1e-6, rtol=1e-4)
    assert no_hooks(net)


def test_captum_maps_rejects_bad_methods_and_kwargs(random_setup) -> None:
    net, srae, x = random_setup()
    xm = XFeatureModel(net, net.relu2, srae)
    with pytest.raises(TypeError, match="method"):
        captum_maps("saliency", xm, (x,), (), 3, net.relu2)  # type: ignore[arg-type]
    from captum.attr import NeuronGradient

    with pytest.raises(TypeError, match="neuron"):
        captum_maps(NeuronGradient, xm, (x,), (), 3, net.relu2)
    with pytest.raises(ValueError, match="target"):
        captum_maps(Saliency, xm, (x,), (), 3, net.relu2, {"target": 1})


def test_xfeature_model_outputs_and_concept_subset(random_setup, small_config) -> None:
    net, srae, x = random_setup()
    a = capture_layers(net, {"layer": net.relu2}, (x,))[0]["layer"]
    e = XFeatureModel(net, net.relu2, srae)(x)
    torch.testing.assert_close(e, srae.encode(a.mean((2, 3))))
    sub = XFeatureModel(net, net.relu2, srae, concepts=[2, 0])(x)
    torch.testing.assert_close(sub, e[:, [2, 0]])
    flat = SRAE(8 * 16, 1, small_config).eval()
    ef = XFeatureModel(net, net.relu2, flat, pooling="flatten")(x)
    torch.testing.assert_close(ef, flat.encode(a.flatten(1)))


def test_xfeature_model_reads_layer_before_inplace_ops(tiny_config) -> None:
    class InPlace(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x: Tensor) -> Tensor:
            out = self.bn(self.conv(x))
            out += 100.0  # modifies the bn output in place
            return out.mean((2, 3))

    torch.manual_seed(0)
    net = InPlace().eval()
    srae = SRAE(4, 1, tiny_config.replace(n_concepts=2)).eval()
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        a = net.bn(net.conv(x))
        ref = srae.encode(a.mean((2, 3)))
    torch.testing.assert_close(XFeatureModel(net, net.bn, srae)(x), ref)
    acts, _ = capture_layers(net, {"layer": net.bn}, (x,))
    torch.testing.assert_close(acts["layer"], a)


def test_capture_layers_errors_and_hook_removal(random_setup, no_hooks) -> None:
    net, srae, x = random_setup()
    unused = nn.Conv2d(3, 3, 1)
    with pytest.raises(ValueError, match="heatmap_layer was not reached"):
        capture_layers(net, {"layer": net.relu2, "heatmap_layer": unused}, (x,))
    with pytest.raises(RuntimeError, match="channels"):  # the model's own error
        capture_layers(net, {"layer": net.relu2}, (torch.randn(2, 5, 8, 8),))
    with pytest.raises(RuntimeError, match="channels"):
        XFeatureModel(net, net.relu2, srae)(torch.randn(3, 8, 8, 8))
    assert no_hooks(net) and no_hooks(unused)


def test_resize_maps() -> None:
    maps = torch.rand(2, 3, 4, 4)
    assert resize_maps(maps, (8, 8)).shape == (2, 3, 8, 8)
    assert resize_maps(maps, (4, 4)) is maps
    assert resize_maps(torch.rand(2, 3, 5), (10,)).shape == (2, 3, 10)
    # (bi)linear, half-pixel centres: [0, 1] -> [0, 1/4, 3/4, 1] per axis
    ramp = torch.tensor([0.0, 0.25, 0.75, 1.0])
    torch.testing.assert_close(
        resize_maps(torch.tensor([[[0.0, 1.0]]]), (4,)), ramp[None, None]
    )
    grid = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])  # 2 * row + column
    expected = 2 * ramp[:, None] + ramp[None, :]
    torch.testing.assert_close(resize_maps(grid, (4, 4)), expected[None, None])
    flat = torch.full((1, 2, 3, 3), 0.5)  # a constant map stays constant
    torch.testing.assert_close(resize_maps(flat, (7, 5)), torch.full((1, 2, 7, 5), 0.5))
    with pytest.raises(ValueError, match="interpolate='layer'"):
        resize_maps(maps, (8,))
