"""Tests of ``captum_srae.attribution.heatmaps``: Grad-CAM closed form and the generic path."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from captum.attr import IntegratedGradients, LayerGradCam, Saliency
from torch import Tensor, nn

from captum_srae import SRAE, SRAEConfig
from captum_srae.attribution.heatmaps import (
    XFeatureModel,
    captum_maps,
    capture_layers,
    gradcam_maps,
    resize_maps,
)


def hand_net() -> nn.Sequential:
    """1x1 conv with channel weights (1, -1, 2): A_c = w_c * x."""
    conv = nn.Conv2d(1, 3, 1, bias=False)
    head = nn.Linear(3, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0, 2.0]).view(3, 1, 1, 1))
        head.weight.fill_(0.5)
        head.bias.zero_()
    net = nn.Sequential(
        OrderedDict(conv=conv, gap=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=head)
    )
    return net.double().eval()


def hand_srae() -> SRAE:
    """e1 = 2 z0, e2 = 30 - (z1 + z2) - 20 around z = (0.5, -0.5, 1)."""
    cfg = SRAEConfig(n_concepts=2, hidden_sizes=(3, 2), dropout=0.0)
    srae = SRAE(3, 1, cfg).double()
    l1, l2, l3 = (m for m in srae.encoder if isinstance(m, nn.Linear))
    with torch.no_grad():
        l1.weight.copy_(torch.eye(3))
        l1.bias.fill_(10.0)
        l2.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 1]]))
        l2.bias.zero_()
        l3.weight.copy_(torch.tensor([[2.0, 0], [0, -1]]))
        l3.bias.copy_(torch.tensor([0.0, 30.0]))
        srae.predictor.weight.copy_(torch.tensor([[1.0, 2.0]]))
        srae.predictor.bias.fill_(0.5)
    return srae.eval()


X_HAND = torch.tensor([[[[1.0, 2.0], [3.0, -4.0]]]], dtype=torch.float64)


def random_setup(seed: int = 0) -> tuple[nn.Module, SRAE, Tensor]:
    torch.manual_seed(seed)
    net = nn.Sequential(
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
    srae = SRAE(8, 1, SRAEConfig(n_concepts=3, hidden_sizes=(16, 8))).eval()
    with torch.no_grad():  # keep units active so that maps are not all zero
        for m in srae.encoder:
            if isinstance(m, nn.Linear):
                m.bias.fill_(0.5)
    return net, srae, torch.randn(4, 3, 8, 8)


def no_hooks(model: nn.Module) -> bool:
    return all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        for m in model.modules()
    )


def test_gradcam_closed_form_equals_hand_computed_values() -> None:
    net, srae = hand_net(), hand_srae()
    acts, _ = capture_layers(net, {"layer": net.conv}, (X_HAND,))
    a = acts["layer"]
    assert torch.equal(a[0, 0], X_HAND[0, 0]) and torch.equal(a[0, 1], -X_HAND[0, 0])
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


def test_gradcam_closed_form_subset_of_concepts() -> None:
    net, srae = hand_net(), hand_srae()
    a = capture_layers(net, {"layer": net.conv}, (X_HAND,))[0]["layer"]
    full = gradcam_maps(a, srae)
    torch.testing.assert_close(gradcam_maps(a, srae, [1, 0]), full[:, [1, 0]])


def test_closed_form_equals_layer_gradcam_on_xfeature_model() -> None:
    net, srae, x = random_setup()
    a = capture_layers(net, {"layer": net.relu2}, (x,))[0]["layer"]
    closed = gradcam_maps(a, srae).clamp_min(0)
    xm = XFeatureModel(net, net.relu2, srae)
    for k in range(3):
        ref = LayerGradCam(xm, net.relu2).attribute(x, target=k, relu_attributions=True)
        torch.testing.assert_close(closed[:, k], ref[:, 0].detach(), atol=1e-5, rtol=0)
    assert closed.abs().sum() > 0
    assert no_hooks(net)


def test_captum_maps_generic_path_shapes_and_equality() -> None:
    net, srae, x = random_setup()
    xm = XFeatureModel(net, net.relu2, srae)
    maps, is_layer = captum_maps(LayerGradCam, xm, (x,), (), 3, net.relu2)
    assert is_layer and maps[0].shape == (4, 3, 4, 4)
    a = capture_layers(net, {"layer": net.relu2}, (x,))[0]["layer"]
    torch.testing.assert_close(maps[0], gradcam_maps(a, srae), atol=1e-5, rtol=0)
    (sal,), is_layer = captum_maps(Saliency, xm, (x,), (), 3, net.relu2)
    assert not is_layer and sal.shape == (4, 3, 8, 8)
    ig = captum_maps(IntegratedGradients, xm, (x,), (), 3, net.relu2, {"n_steps": 8})[
        0
    ][0]
    assert ig.shape == (4, 3, 8, 8) and torch.isfinite(ig).all()
    (low,), _ = captum_maps(LayerGradCam, xm, (x,), (), 3, net.relu1)
    assert low.shape == (4, 3, 8, 8)
    assert no_hooks(net)


def test_captum_maps_rejects_bad_methods_and_kwargs() -> None:
    net, srae, x = random_setup()
    xm = XFeatureModel(net, net.relu2, srae)
    with pytest.raises(TypeError, match="method"):
        captum_maps("saliency", xm, (x,), (), 3, net.relu2)  # type: ignore[arg-type]
    from captum.attr import NeuronGradient

    with pytest.raises(TypeError, match="neuron"):
        captum_maps(NeuronGradient, xm, (x,), (), 3, net.relu2)
    with pytest.raises(ValueError, match="target"):
        captum_maps(Saliency, xm, (x,), (), 3, net.relu2, {"target": 1})


def test_xfeature_model_outputs_and_concept_subset() -> None:
    net, srae, x = random_setup()
    a = capture_layers(net, {"layer": net.relu2}, (x,))[0]["layer"]
    e = XFeatureModel(net, net.relu2, srae)(x)
    torch.testing.assert_close(e, srae.encode(a.mean((2, 3))))
    sub = XFeatureModel(net, net.relu2, srae, concepts=[2, 0])(x)
    torch.testing.assert_close(sub, e[:, [2, 0]])
    flat = SRAE(8 * 16, 1, SRAEConfig(n_concepts=3, hidden_sizes=(16, 8))).eval()
    ef = XFeatureModel(net, net.relu2, flat, pooling="flatten")(x)
    torch.testing.assert_close(ef, flat.encode(a.flatten(1)))


def test_xfeature_model_reads_layer_before_inplace_ops() -> None:
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
    srae = SRAE(4, 1, SRAEConfig(n_concepts=2, hidden_sizes=(8, 4))).eval()
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        a = net.bn(net.conv(x))
        ref = srae.encode(a.mean((2, 3)))
    torch.testing.assert_close(XFeatureModel(net, net.bn, srae)(x), ref)
    acts, _ = capture_layers(net, {"layer": net.bn}, (x,))
    torch.testing.assert_close(acts["layer"], a)


def test_capture_layers_errors_and_hook_removal() -> None:
    net, srae, x = random_setup()
    unused = nn.Conv2d(3, 3, 1)
    with pytest.raises(ValueError, match="heatmap_layer was not reached"):
        capture_layers(net, {"layer": net.relu2, "heatmap_layer": unused}, (x,))
    with pytest.raises(ValueError, match="inputs"):
        capture_layers(net, {"layer": net.relu2}, (torch.randn(2, 5, 8, 8),))
    with pytest.raises(ValueError, match="inputs"):
        XFeatureModel(net, net.relu2, srae)(torch.randn(3, 8, 8, 8))
    assert no_hooks(net) and no_hooks(unused)


def test_resize_maps() -> None:
    maps = torch.rand(2, 3, 4, 4)
    assert resize_maps(maps, (8, 8)).shape == (2, 3, 8, 8)
    assert resize_maps(maps, (4, 4)) is maps
    assert resize_maps(torch.rand(2, 3, 5), (10,)).shape == (2, 3, 10)
    with pytest.raises(ValueError, match="interpolate='layer'"):
        resize_maps(maps, (8,))
