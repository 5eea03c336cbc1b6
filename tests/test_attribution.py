"""Tests of ``captum_srae.attribution.SRAEAttribution``: Captum compatibility,
fitting flows, end-to-end networks, persistence, bad input and hook removal."""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict

import matplotlib
import pytest
import torch
from captum.attr import (
    GradientAttribution,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    LayerGradientXActivation,
    NoiseTunnel,
    Saliency,
)
from captum.attr import visualization as viz
from captum.metrics import (
    infidelity,
    infidelity_perturb_func_decorator,
    sensitivity_max,
)
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models import resnet18

from captum_srae import SRAE, SRAEConfig, SRAEFormatError
from captum_srae.attribution import NotFittedError, SRAEAttribution, SRAEExplanation

matplotlib.use("Agg")

CFG = SRAEConfig(
    n_concepts=3,
    hidden_sizes=(32, 16),
    max_epochs=5,
    pretrain_epochs=1,
    retune_rounds=1,
)


# ------------------------------------------------------------------ fixtures
def shapes_dataset(n: int = 240, size: int = 32, seed: int = 0):
    """Procedural images: a bright disc (class 0), a bar (class 1) or both (2)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.rand(n, 3, size, size, generator=g)
    labels = torch.arange(n) % 3
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for i in range(n):
        cy, cx = torch.randint(6, size - 6, (2,), generator=g).tolist()
        if labels[i] in (0, 2):
            x[i, 0] += (((yy - cy) ** 2 + (xx - cx) ** 2) < 16).float()
        if labels[i] in (1, 2):
            r = torch.randint(4, size - 4, (1,), generator=g).item()
            x[i, 2, r - 1 : r + 2, 4 : size - 4] += 1.0
    return x, labels


def vgg_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(3, 8, 3, padding=1),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(8, 8, 3, padding=1),
            relu2=nn.ReLU(),
            pool1=nn.MaxPool2d(2),
            conv3=nn.Conv2d(8, 16, 3, padding=1),
            bn3=nn.BatchNorm2d(16),
            relu3=nn.ReLU(),
            pool2=nn.MaxPool2d(2),
            conv4=nn.Conv2d(16, 32, 3, padding=1),
            relu4=nn.ReLU(),
            gap=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(32, 3),
        )
    )


@pytest.fixture(scope="module")
def data():
    return shapes_dataset()


@pytest.fixture(scope="module")
def vgg(data):
    """A VGG-style net trained for two epochs, and an explainer per class."""
    x, labels = data
    net = vgg_net()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(2):
        for xb, yb in DataLoader(TensorDataset(x, labels), batch_size=40):
            opt.zero_grad()
            nn.functional.cross_entropy(net(xb), yb).backward()
            opt.step()
    net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sa = SRAEAttribution(net, "relu4", config=CFG).fit(
            x, all_targets=True, show_progress=False
        )
    return net, sa


def fit_quietly(sa: SRAEAttribution, data, **kwargs) -> SRAEAttribution:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return sa.fit(data, show_progress=False, **kwargs)


# -------------------------------------------------------------- Captum API
def test_is_a_captum_layer_gradient_attribution() -> None:
    net = vgg_net()
    sa = SRAEAttribution(net, "relu4", config=CFG)
    assert isinstance(sa, LayerAttribution) and isinstance(sa, GradientAttribution)
    assert sa.get_name() == "SRAE" and SRAEAttribution.get_name() == "SRAE"
    assert hasattr(SRAEAttribution.attribute, "__wrapped__")
    assert sa.layer == "relu4" and sa.forward_func is net and sa.config is CFG
    assert not sa.multiplies_by_inputs and not sa.has_convergence_delta()
    assert not hasattr(sa, "sraes_")
    with pytest.raises(ValueError, match="repeated"):
        sa.fit(torch.rand(20, 3, 32, 32), target=[1, 1], show_progress=False)
    with pytest.raises(NotFittedError, match="fit"):
        sa.attribute(torch.rand(2, 3, 32, 32), target=0)
    with pytest.raises(ValueError, match="not fitted"):
        sa.contributions(torch.rand(2, 3, 32, 32), 0)


def test_hand_set_maps_class_map_and_explanation(hand_net, hand_srae, x_hand) -> None:
    net, srae = hand_net, hand_srae
    sa = SRAEAttribution.from_sraes(net, "conv", {0: srae}, n_outputs=2)
    maps = sa.attribute(x_hand, target=0)
    expected = torch.tensor(
        [[[[0.5, 1.0], [1.5, 0.0]], [[0.0, 0.0], [0.0, 1.0]]]], dtype=torch.float64
    )
    torch.testing.assert_close(maps, expected)  # input size == layer size here
    signed = sa.attribute(x_hand, target=0, relu_attributions=False)
    assert signed.min() == -2.0
    cls = sa.attribute(x_hand, target=0, output="class")
    # contributions e * v = (21 * 1, 9.5 * 2)
    torch.testing.assert_close(
        cls, torch.tensor([[[[10.5, 21.0], [31.5, 19.0]]]], dtype=torch.float64)
    )
    torch.testing.assert_close(
        sa.contributions(x_hand), torch.tensor([[21.0, 19.0]], dtype=torch.float64)
    )
    torch.testing.assert_close(
        sa.concepts(x_hand), torch.tensor([[21.0, 9.5]], dtype=torch.float64)
    )
    ex = sa.explain(x_hand, target=0)
    assert isinstance(ex, SRAEExplanation)
    torch.testing.assert_close(ex.xnn_score, torch.tensor([40.5], dtype=torch.float64))
    torch.testing.assert_close(ex.model_score, net(x_hand)[:, 0].detach())
    torch.testing.assert_close(ex.heatmaps, expected)
    torch.testing.assert_close(ex.ratios, torch.tensor([[1.0, 19 / 21]]).double())
    assert ex.target.tolist() == [0]


def test_closed_form_equals_generic_layer_gradcam(vgg, data) -> None:
    net, sa = vgg
    x = data[0][:6]
    closed = sa.attribute(x, target=1, interpolate="layer")
    # TCAV and NoiseTunnel call the undecorated method with Captum's arguments
    wrapped = SRAEAttribution.attribute.__wrapped__(
        sa, x, target=1, additional_forward_args=None, attribute_to_layer_input=False
    )
    torch.testing.assert_close(
        wrapped, sa.attribute(x, target=1), msg="__wrapped__ differs"
    )
    with pytest.raises(ValueError, match="attribute_to_layer_input"):
        sa.attribute(x, target=1, attribute_to_layer_input=True)
    generic = sa.attribute(x, target=1, method=LayerGradCam, interpolate="layer")
    assert closed.shape == (6, 3, 8, 8)
    torch.testing.assert_close(closed, generic, atol=1e-5, rtol=0)
    assert closed.abs().sum() > 0


def test_output_shapes_interpolation_concepts_and_batching(vgg, data) -> None:
    net, sa = vgg
    x = data[0][:5]
    maps = sa.attribute(x, target=2)
    assert maps.shape == (5, 3, 32, 32)
    assert sa.attribute(x, target=2, interpolate=(16, 16)).shape == (5, 3, 16, 16)
    sub = sa.attribute(x, target=2, concepts=[2, 0])
    torch.testing.assert_close(sub, maps[:, [2, 0]])
    torch.testing.assert_close(sa.attribute(x, target=2, internal_batch_size=2), maps)
    (as_tuple,) = sa.attribute((x,), target=2)
    torch.testing.assert_close(as_tuple, maps)
    cls = sa.attribute(x, target=2, output="class")
    c = sa.contributions(x, 2)
    torch.testing.assert_close(cls, (maps * c[:, :, None, None]).sum(1, keepdim=True))


def test_per_example_targets_pick_each_examples_xnn(vgg, data) -> None:
    net, sa = vgg
    x = data[0][:4]
    tgt = [2, 0, 1, 0]
    maps = sa.attribute(x, target=tgt, interpolate="layer")
    for i, t in enumerate(tgt):
        one = sa.attribute(x[i : i + 1], target=t, interpolate="layer")
        torch.testing.assert_close(maps[i : i + 1], one)
    c = sa.contributions(x, torch.tensor(tgt))
    for i, t in enumerate(tgt):
        torch.testing.assert_close(c[i], sa.contributions(x[i : i + 1], t)[0])


def test_other_heatmap_methods(vgg, data) -> None:
    net, sa = vgg
    x = data[0][:3]
    eb = sa.attribute(x, target=0, method="excitation", interpolate="layer")
    assert eb.shape == (3, 3, 8, 8) and (eb >= 0).all()
    ceb = sa.attribute(
        x, target=0, method="excitation", attribution_kwargs={"contrastive": True}
    )
    assert ceb.shape == (3, 3, 32, 32)
    ig = sa.attribute(
        x, target=0, method=IntegratedGradients, attribution_kwargs={"n_steps": 5}
    )
    assert ig.shape == (3, 3, 32, 32) and torch.isfinite(ig).all()
    assert sa.attribute(x, target=0, method=Saliency).shape == (3, 3, 32, 32)
    sa_low = SRAEAttribution.from_sraes(net, "relu4", sa.sraes_, heatmap_layer="relu2")
    low = sa_low.attribute(x, target=0, interpolate="layer")
    assert low.shape == (3, 3, 32, 32)
    low_eb = sa_low.attribute(x, target=0, method="excitation", interpolate="layer")
    assert low_eb.shape == (3, 3, 32, 32)
    with pytest.raises(ValueError, match="contrastive"):
        sa.attribute(x, target=0, method="excitation", attribution_kwargs={"k": 1})


# -------------------------------------------------------- Captum metrics/viz
def test_infidelity_and_sensitivity_max_accept_class_map(vgg, data) -> None:
    net, sa = vgg
    x = data[0][:4]
    attr = sa.attribute(x, target=1, output="class")

    @infidelity_perturb_func_decorator(False)
    def perturb(inputs: Tensor) -> Tensor:
        return inputs - 0.05 * torch.randn_like(inputs)

    score = infidelity(
        net, perturb, x, attr.expand_as(x), target=1, n_perturb_samples=4
    )
    assert score.shape == (4,) and torch.isfinite(score).all()
    sens = sensitivity_max(
        sa.attribute, x, target=1, output="class", n_perturb_samples=3
    )
    assert sens.shape == (4,) and torch.isfinite(sens).all()
    sens_all = sensitivity_max(
        sa.attribute, x, target=[1, 0, 2, 1], n_perturb_samples=2
    )
    assert sens_all.shape == (4,)


def test_noise_tunnel_runs(vgg, data, no_hooks) -> None:
    net, sa = vgg
    x = data[0][:2]
    nt = NoiseTunnel(sa)
    out = nt.attribute(
        x, nt_type="smoothgrad", nt_samples=3, stdevs=0.05, target=1, output="class"
    )
    assert out.shape == (2, 1, 32, 32) and torch.isfinite(out).all()
    assert no_hooks(net)


def test_visualize_image_attr_draws_a_channel(vgg, data) -> None:
    net, sa = vgg
    x = data[0][:1]
    maps = sa.attribute(x, target=0) + 1e-6  # all-zero maps cannot be normalised
    k = int(maps[0].flatten(1).abs().sum(1).argmax())
    attr = maps[0, k : k + 1].permute(1, 2, 0).detach().numpy()
    img = x[0].permute(1, 2, 0).clamp(0, 1).numpy()
    fig, ax = viz.visualize_image_attr(
        attr, method="heat_map", sign="positive", use_pyplot=False
    )
    assert len(ax.images) == 1
    fig2, _ = viz.visualize_image_attr(
        attr, img, method="blended_heat_map", sign="absolute_value", use_pyplot=False
    )
    assert fig is not None and fig2 is not None


# ----------------------------------------------------------- fitting flows
def test_fit_attributes_and_forms_of_data(vgg, data, no_hooks) -> None:
    net, sa = vgg
    assert sa.targets_ == [0, 1, 2] and sa.per_class_ and sa.n_outputs_ == 3
    assert sa.layer_shape_ == (32, 8, 8) and sa.layer_name_ == "relu4"
    assert set(sa.sraes_) == {0, 1, 2} and set(sa.history_) == {0, 1, 2}
    assert len({id(s) for s in sa.sraes_.values()}) == 3
    x, labels = data
    loader = DataLoader(TensorDataset(x[:120], labels[:120]), batch_size=32)
    one = fit_quietly(SRAEAttribution(net, net.relu4, config=CFG), loader, target=1)
    assert one.targets_ == [1] and one.sraes_[1].n_outputs == 1
    assert one.attribute(x[:2]).shape == (2, 3, 32, 32)  # target defaults to 1
    shared = fit_quietly(
        SRAEAttribution(net, "relu4", config=CFG),
        x[:120],
        target=[0, 2],
        per_class=False,
    )
    assert not shared.per_class_ and shared.sraes_[0] is shared.sraes_[2]
    assert shared.fit_activations_ is None and sa.fit_activations_ is None
    assert shared.sraes_[0].n_outputs == 2
    ex = shared.explain(x[:3], target=2)
    torch.testing.assert_close(ex.xnn_score, ex.contributions.sum(1) + ex.bias)
    torch.testing.assert_close(ex.model_score, net(x[:3])[:, 2].detach())
    torch.testing.assert_close(ex.weights[0], shared.sraes_[2].weight[1].detach())
    assert no_hooks(net)


def test_keep_activations_are_the_pooled_layer_and_the_fitted_scores(vgg, data) -> None:
    net, _ = vgg
    x, _ = data
    sa = fit_quietly(
        SRAEAttribution(net, "relu4", config=CFG),
        x[:100],
        target=[2, 0],
        keep_activations=True,
        batch_size=30,
    )
    assert sa.targets_ == [2, 0]  # the columns of y follow targets_
    z, y = sa.fit_activations_
    with torch.no_grad():  # the oracle: the layer by hand, then avg pooling
        h = net[:11](x[:100])  # up to and including relu4
        scores = net(x[:100])
    assert h.shape == (100, 32, 8, 8)
    torch.testing.assert_close(z, h.mean((2, 3)), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y, scores[:, [2, 0]], atol=1e-5, rtol=1e-5)
    with pytest.raises(TypeError, match="keep_activations must be a bool"):
        sa.fit(x[:10], target=0, keep_activations=1)
    assert sa.fit_activations_ is not None  # a refused fit changes nothing
    assert fit_quietly(sa, x[:60], target=1).fit_activations_ is None
    with pytest.raises(NotFittedError):
        _ = SRAEAttribution(net, "relu4").fit_activations_


def test_resnet18_end_to_end(data, no_hooks) -> None:
    x, _ = data
    torch.manual_seed(0)
    net = resnet18(num_classes=3).eval()
    sa = fit_quietly(SRAEAttribution(net, "layer3", config=CFG), x[:160], target=[0, 1])
    assert sa.layer_shape_ == (256, 2, 2)
    maps = sa.attribute(x[:4], target=[0, 1, 1, 0])
    assert maps.shape == (4, 3, 32, 32)
    closed = sa.attribute(x[:4], target=1, interpolate="layer")
    generic = sa.attribute(x[:4], target=1, method=LayerGradCam, interpolate="layer")
    torch.testing.assert_close(closed, generic, atol=1e-5, rtol=0)
    sa.heatmap_layer = "layer2"
    eb = sa.attribute(x[:2], target=0, method="excitation", interpolate="layer")
    assert eb.shape == (2, 3, 4, 4) and (eb >= 0).all()
    assert sa.attribute(x[:2], target=0, interpolate="layer").shape == (2, 3, 4, 4)
    ex = sa.explain(x[:2], target=1)
    assert ex.heatmaps.shape == (2, 3, 32, 32)
    assert no_hooks(net)


def test_flatten_pooling_uses_generic_gradcam(data) -> None:
    x, _ = data
    net = vgg_net().eval()
    cfg = CFG.replace(pooling="flatten", hidden_sizes=(16, 8))
    sa = fit_quietly(SRAEAttribution(net, "pool2", config=cfg), x[:100], target=0)
    assert sa.sraes_[0].in_features == 16 * 8 * 8
    maps = sa.attribute(x[:2], interpolate="layer")
    ref = sa.attribute(x[:2], method=LayerGradCam, interpolate="layer")
    torch.testing.assert_close(maps, ref)
    assert sa.attribute(x[:2], method="excitation").shape == (2, 3, 32, 32)


# ------------------------------------------------------------- persistence
@pytest.mark.parametrize("per_class", [True, False])
def test_save_load_round_trip(tmp_path, data, per_class: bool) -> None:
    x, _ = data
    net = vgg_net().eval()
    sa = fit_quietly(
        SRAEAttribution(net, "relu4", config=CFG),
        x[:100],
        target=[0, 2],
        per_class=per_class,
    )
    sa.save(tmp_path / "sa")
    doc = json.loads((tmp_path / "sa" / "attribution.json").read_text())
    assert doc["targets"] == [0, 2] and doc["per_class"] is per_class
    assert doc["layer"] == "relu4" and doc["format_version"] == 1
    back = SRAEAttribution.load(tmp_path / "sa", net)
    for t in (0, 2):
        torch.testing.assert_close(back.attribute(x[:3], t), sa.attribute(x[:3], t))
        torch.testing.assert_close(
            back.contributions(x[:3], t), sa.contributions(x[:3], t)
        )
    assert back.per_class_ is per_class and back.layer_shape_ == (32, 8, 8)
    assert not list(tmp_path.glob(".*"))  # no temporary folders left
    doc["format_version"] = 99
    (tmp_path / "sa" / "attribution.json").write_text(json.dumps(doc))
    with pytest.raises(SRAEFormatError, match="format version"):
        SRAEAttribution.load(tmp_path / "sa", net, "relu4")
    with pytest.raises(FileNotFoundError):
        SRAEAttribution.load(tmp_path / "missing", net, "relu4")
    with pytest.raises(NotFittedError):
        SRAEAttribution(net, "relu4").save(tmp_path / "x")


# --------------------------------------------------------------- bad input
def test_bad_inputs_targets_and_concepts(vgg, data) -> None:
    net, sa = vgg
    x = data[0][:2]
    # inputs the model rejects: the model's own error, type and message kept
    with pytest.raises(RuntimeError, match="channels"):
        sa.attribute(torch.rand(2, 32, 32), target=0)
    with pytest.raises(RuntimeError, match="channels"):
        sa.attribute(torch.rand(2, 4, 32, 32), target=0)
    with pytest.raises(RuntimeError, match="channels"):
        sa.contributions(torch.rand(2, 1, 32, 32), 0)
    with pytest.raises(TypeError, match="inputs"):
        sa.attribute([1, 2], target=0)
    with pytest.raises(ValueError, match="device"):
        sa.attribute(torch.empty(2, 3, 32, 32, device="meta"), target=0)
    with pytest.raises(ValueError, match="out of range"):
        sa.attribute(x, target=7)
    with pytest.raises(ValueError, match="target is required"):
        sa.attribute(x)
    with pytest.raises(ValueError, match="one per example"):
        sa.attribute(x, target=[0, 1, 2])
    with pytest.raises(TypeError, match="target"):
        sa.attribute(x, target=[0.5, 1])
    with pytest.raises(ValueError, match="concepts"):
        sa.attribute(x, target=0, concepts=[0, 3])
    with pytest.raises(ValueError, match="output"):
        sa.attribute(x, target=0, output="pixels")
    with pytest.raises(ValueError, match="method"):
        sa.attribute(x, target=0, method="lrp")
    bad = ("visualization", "__name__", "Tensor", "a.b", "Attribution")
    for name in (*bad, "LayerAttribution", "NoiseTunnel"):
        with pytest.raises(ValueError, match="its name in captum.attr"):
            sa.attribute(x, target=0, method=name)
    by_name = sa.attribute(x, target=0, method="LayerGradientXActivation")
    by_class = sa.attribute(x, target=0, method=LayerGradientXActivation)
    assert torch.equal(by_name, by_class) and by_name.abs().sum() > 0
    with pytest.raises(ValueError, match="interpolate"):
        sa.attribute(x, target=0, interpolate="input")
    one = SRAEAttribution.from_sraes(net, "relu4", {1: sa.sraes_[1]}, n_outputs=3)
    with pytest.raises(ValueError, match="not fitted"):
        one.attribute(x, target=0)


def test_bad_layers(vgg, data, no_hooks, tiny_config) -> None:
    net, sa = vgg
    x = data[0][:2]
    sraes = sa.sraes_
    flat = SRAEAttribution.from_sraes(net, "relu4", sraes, heatmap_layer="flat")
    with pytest.raises(ValueError, match="heatmap_layer .*not spatial"):
        flat.attribute(x, target=0)
    with pytest.raises(ValueError, match="not spatial"):
        flat.attribute(x, target=0, method="excitation")
    net.relu1.unused = nn.Conv2d(3, 3, 1)  # a module that never runs
    try:
        lost = SRAEAttribution.from_sraes(
            net, "relu4", sraes, heatmap_layer="relu1.unused"
        )
        with pytest.raises(ValueError, match="heatmap_layer was not reached"):
            lost.attribute(x, target=0)
    finally:
        del net.relu1.unused
    with pytest.raises(ValueError, match="layer"):
        fit_quietly(SRAEAttribution(net, nn.Conv2d(3, 3, 1), config=CFG), x)
    other = SRAE(16, 1, tiny_config.replace(n_concepts=2))
    with pytest.raises(ValueError, match="differ"):
        SRAEAttribution.from_sraes(net, "relu4", {0: sraes[0], 1: other})
    with pytest.raises(ValueError, match="did you mean"):
        SRAEAttribution.from_sraes(net, "relu_4", sraes)
    bad_name = SRAEAttribution.from_sraes(net, "relu4", sraes, heatmap_layer="conv9")
    with pytest.raises(ValueError, match="heatmap_layer"):
        bad_name.attribute(x, target=0)
    by_name = SRAEAttribution.from_sraes(lambda t: net(t), "relu4", sraes)
    with pytest.raises(TypeError, match="nn.Module"):
        by_name.attribute(x, target=0)
    by_module = SRAEAttribution.from_sraes(lambda t: net(t), net.relu4, sraes)
    torch.testing.assert_close(by_module.attribute(x, 0), sa.attribute(x, 0))
    above = SRAEAttribution.from_sraes(net, "relu3", sraes, heatmap_layer="relu4")
    with pytest.raises(ValueError):
        above.attribute(x, target=0, method="excitation")
    assert no_hooks(net)


def test_multi_input_model_with_additional_args(tiny_config) -> None:
    class Gain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.conv = nn.Conv2d(3, 6, 3, padding=1)
            self.act = nn.ReLU()
            self.fc = nn.Linear(6, 2)

        def forward(self, x: Tensor, gain: Tensor) -> Tensor:
            a = self.act(self.conv(x) * gain[:, None, None, None])
            return self.fc(a.mean((2, 3)))

    net = Gain().eval()
    srae = SRAE(6, 1, tiny_config.replace(n_concepts=2)).eval()
    sa = SRAEAttribution.from_sraes(net, "act", {0: srae, 1: srae}, n_outputs=2)
    x, gain = torch.rand(3, 3, 8, 8), torch.tensor([1.0, 2.0, 3.0])
    maps = sa.attribute(x, target=[1, 0, 1], additional_forward_args=gain)
    for i in range(3):
        one = sa.attribute(
            x[i : i + 1], target=0, additional_forward_args=gain[i : i + 1]
        )
        torch.testing.assert_close(maps[i : i + 1], one)


# ------------------------------------------------------------- hook removal
class Faulty(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def forward(self, x: Tensor) -> Tensor:
        if self.fail:
            raise RuntimeError("faulty layer")
        return x


def test_no_hooks_left_after_success_or_failure(vgg, data, no_hooks) -> None:
    net, sa = vgg
    x = data[0][:2]
    faulty = Faulty()
    # the faulty layer runs before the explained one: attribute() stops the
    # forward pass after the explained layer (early exit)
    model = nn.Sequential(OrderedDict(faulty=faulty, body=net)).eval()
    methods = ("gradcam", "excitation", LayerGradCam, Saliency)
    ok = SRAEAttribution.from_sraes(
        model, "body.relu4", sa.sraes_, heatmap_layer="body.relu2"
    )
    for method in methods:
        ok.attribute(x, target=0, method=method)
        assert no_hooks(model)
    ok.explain(x, target=0)
    assert no_hooks(model)
    faulty.fail = True
    for method in methods:
        with pytest.raises((ValueError, RuntimeError)):
            ok.attribute(x, target=0, method=method)
        assert no_hooks(model)
    with pytest.raises(RuntimeError, match="faulty layer"):
        fit_quietly(SRAEAttribution(model, "body.relu4", config=CFG), x)
    assert no_hooks(model)


def test_non_spatial_layer_with_primary_method(tiny_config) -> None:
    torch.manual_seed(0)
    mlp = nn.Sequential(
        OrderedDict(fc1=nn.Linear(8, 12), act=nn.ReLU(), fc2=nn.Linear(12, 2))
    ).eval()
    srae = SRAE(12, 1, tiny_config).eval()
    sa = SRAEAttribution.from_sraes(mlp, "act", {1: srae}, n_outputs=2)
    x = torch.rand(4, 8)
    ig = sa.attribute(x, method=IntegratedGradients)
    assert ig.shape == (4, 3, 8)
    cls = sa.attribute(x, method=Saliency, output="class")
    assert cls.shape == (4, 1, 8)
    with pytest.raises(ValueError, match="not spatial"):
        sa.attribute(x)
    assert sa.contributions(x).shape == (4, 3)


def test_fit_warnings_name_the_class_and_point_at_the_caller(
    data, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every per-class fit warns (a stand-in for a monopolising x-feature):
    # SRAEAttribution.fit repeats each warning with its class, at this line
    import captum_srae.attribution.fitting as fitting

    real = fitting.fit_srae

    def warning_fit(*args, **kwargs):
        out = real(*args, **kwargs)
        warnings.warn("one x-feature carries 100 %", RuntimeWarning, stacklevel=2)
        return out

    monkeypatch.setattr(fitting, "fit_srae", warning_fit)
    x, _ = data
    sa = SRAEAttribution(vgg_net(), "relu4", config=CFG)
    with pytest.warns(RuntimeWarning) as record:
        sa.fit(x[:60], target=[0, 2], show_progress=False)
    # (the stand-in's text exactly: the tiny fits may also warn for real)
    ours = [w for w in record if str(w.message).endswith("carries 100 %")]
    assert [str(w.message) for w in ours] == [
        "class 0: one x-feature carries 100 %",
        "class 2: one x-feature carries 100 %",
    ]
    assert {w.filename for w in ours} == {__file__}
    # the study and the baselines still silence them
    from captum_srae.training.history import quiet_quality_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_quality_warnings():
            sa.fit(x[:60], target=[0, 2], show_progress=False)
    assert not [w for w in caught if "one x-feature" in str(w.message)]
