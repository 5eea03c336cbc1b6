"""Fast paths give the results of the plain paths: early exit of the forward
pass, x-feature maps of Captum gradient methods batched over x-features, and
the per-epoch sample cap of fitting."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from captum.attr import (
    FeatureAblation,
    InputXGradient,
    IntegratedGradients,
    LayerGradCam,
    Saliency,
)
from torch import Tensor, nn

from captum_srae import SRAE, SRAEAttribution, SRAEConfig
from captum_srae.attribution.heatmaps import XFeatureModel, captum_maps, capture_layers
from captum_srae.attribution.shared_forward import SharedCopies, copies_identical
from captum_srae.training.epochs import shuffled_batches


class Counter(nn.Module):
    """Identity that counts its calls (and can fail)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.fail = False

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        if self.fail:
            raise RuntimeError("after the explained layer")
        return x


@pytest.fixture
def net_and_srae(active_srae):
    """``net_and_srae(seed)``: a CNN and an SRAE on its ``relu2``."""

    def make(seed: int = 0) -> tuple[nn.Sequential, SRAE]:
        torch.manual_seed(seed)
        return _net(), active_srae(8)

    return make


def _net() -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(3, 6, 3, padding=1),
            relu1=nn.Tanh(),
            conv2=nn.Conv2d(6, 8, 3, padding=1),
            relu2=nn.Softplus(),
            after=Counter(),
            gap=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(8, 3),
        )
    ).eval()


# --------------------------------------------------------------- early exit
def test_capture_stops_after_the_layer_once_calls_are_known(
    net_and_srae, no_hooks
) -> None:
    net, _ = net_and_srae()
    x = torch.randn(2, 3, 6, 6)
    full, out = capture_layers(net, {"layer": net.relu2}, (x,))
    assert out.shape == (2, 3) and net.after.calls == 1
    net.after.fail = True  # the layers after relu2 must not run any more
    acts, none = capture_layers(net, {"layer": net.relu2}, (x,), need_output=False)
    assert none is None and net.after.calls == 1 and no_hooks(net)
    torch.testing.assert_close(acts["layer"], full["layer"])
    with pytest.raises(RuntimeError, match="after the explained"):  # needs the output
        capture_layers(net, {"layer": net.relu2}, (x,))
    assert no_hooks(net)


def test_early_exit_waits_for_the_last_call_of_a_shared_module() -> None:
    act = nn.ReLU()  # runs twice: the second output is the one explained
    lin1, lin2, head = nn.Linear(4, 4), nn.Linear(4, 4), Counter()
    net = nn.Sequential(lin1, act, lin2, act, head).eval()
    x = torch.randn(3, 4)
    expected = torch.relu(lin2(torch.relu(lin1(x)))).detach()
    for _ in range(2):  # the first pass learns the count, the second stops
        acts, _ = capture_layers(net, {"layer": act}, (x,), need_output=False)
        torch.testing.assert_close(acts["layer"], expected)
    assert head.calls == 1


def test_attribute_skips_the_layers_after_the_explained_one(
    net_and_srae, no_hooks
) -> None:
    net, srae = net_and_srae()
    sa = SRAEAttribution.from_sraes(net, "relu2", {0: srae}, n_outputs=3)
    x = torch.randn(2, 3, 6, 6)
    maps = sa.attribute(x, target=0)
    net.after.fail = True
    torch.testing.assert_close(sa.attribute(x, target=0), maps)
    with pytest.raises(RuntimeError, match="after the explained"):  # needs scores
        sa.explain(x, target=0)
    assert no_hooks(net)


# ------------------------------------------------- batched Captum x-feature maps
def per_feature_loop(method, xm, x, extra, kwargs):
    """The oracle: one Captum call per x-feature, stacked."""
    out = []
    for k in range(3):
        expl = method(xm)
        a = expl.attribute(
            x.detach().requires_grad_(),
            target=k,
            additional_forward_args=extra,
            **kwargs,
        )
        out.append(a.detach().sum(dim=1))
    return torch.stack(out, dim=1)


@pytest.mark.parametrize(
    "method, kwargs",
    [
        (IntegratedGradients, {"n_steps": 6}),
        (IntegratedGradients, {"n_steps": 5, "internal_batch_size": 6}),
        (Saliency, {}),
        (InputXGradient, {}),
    ],
)
def test_batched_maps_equal_the_per_feature_loop(method, kwargs, net_and_srae) -> None:
    net, srae = net_and_srae()
    net.after.calls = 0
    xm = XFeatureModel(net, net.relu2, srae)
    x = torch.randn(4, 3, 6, 6)
    (got,), is_layer = captum_maps(method, xm, (x,), (), 3, net.relu2, kwargs)
    ref = per_feature_loop(method, xm, x, None, kwargs)
    assert not is_layer and got.shape == (4, 3, 6, 6)
    assert float(ref.abs().max()) > 1e-4
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-6)
    (loop,), _ = captum_maps(method, xm, (x,), (), 3, net.relu2, kwargs, batched=False)
    torch.testing.assert_close(got, loop, rtol=1e-4, atol=1e-6)


def test_batched_maps_with_per_example_baselines_and_extra_args(net_and_srae) -> None:
    torch.manual_seed(1)

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.act = nn.Softplus()

        def forward(self, x: Tensor, gain: Tensor) -> Tensor:
            return self.act(self.conv(x) * gain[:, None, None, None]).mean((2, 3))

    net = Scaled().eval()
    _, srae = net_and_srae()
    xm = XFeatureModel(net, net.act, srae)
    x, base = torch.randn(3, 3, 5, 5), torch.randn(3, 3, 5, 5)
    gain = torch.tensor([0.5, 1.0, 2.0])
    kwargs = {"n_steps": 4, "baselines": base}
    (got,), _ = captum_maps(IntegratedGradients, xm, (x,), (gain,), 3, net.act, kwargs)
    ref = per_feature_loop(IntegratedGradients, xm, x, (gain,), kwargs)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-6)


def test_unbatched_methods_still_run_once_per_feature(net_and_srae) -> None:
    net, srae = net_and_srae()
    xm = XFeatureModel(net, net.relu2, srae)
    x = torch.randn(2, 3, 6, 6)
    (got,), _ = captum_maps(FeatureAblation, xm, (x,), (), 3, net.relu2)
    ref = per_feature_loop(FeatureAblation, xm, x, None, {})
    torch.testing.assert_close(got, ref)
    (cam,), is_layer = captum_maps(LayerGradCam, xm, (x,), (), 3, net.relu1)
    assert is_layer and cam.shape == (2, 3, 6, 6)


def test_shared_copies_gradient_matches_one_graph_per_copy() -> None:
    torch.manual_seed(2)
    w = torch.randn(4, 3)

    def fn(t: Tensor) -> Tensor:
        return torch.tanh(t @ w) ** 2

    base = torch.randn(2, 4)  # rows = 2 examples, n = 3 copies, S = 2 blocks
    block = torch.cat([base, base * 0.5])
    x = torch.stack([block.reshape(2, 2, 4)] * 3, dim=1).reshape(12, 4)
    assert copies_identical(x, 3, 2) and not copies_identical(torch.randn(12, 4), 3, 2)
    g = torch.randn(12, 3)
    xa = x.clone().requires_grad_()
    (ga,) = torch.autograd.grad(SharedCopies.apply(fn, 3, 2, xa), xa, g)
    xb = x.clone().requires_grad_()
    (gb,) = torch.autograd.grad(fn(xb), xb, g)
    torch.testing.assert_close(ga, gb)


def test_xfeature_model_falls_back_when_copies_differ(net_and_srae) -> None:
    net, srae = net_and_srae()
    xm = XFeatureModel(net, net.relu2, srae)
    x = torch.randn(6, 3, 6, 6)  # 3 copies of 2 rows that are not equal
    plain = xm(x)
    xm._copies = (3, 2)
    torch.testing.assert_close(xm(x), plain)


# -------------------------------------------------------- epoch sample cap
def test_batches_cap_takes_a_prefix_of_the_same_permutation() -> None:
    full = torch.cat(shuffled_batches(10, 3, torch.Generator().manual_seed(5)))
    capped = shuffled_batches(10, 3, torch.Generator().manual_seed(5), cap=7)
    assert [b.numel() for b in capped] == [3, 3, 1]
    assert torch.equal(torch.cat(capped), full[:7])
    # a cap above n: one epoch of cap rows made of fresh permutations
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    long = torch.cat(shuffled_batches(10, 3, g1, cap=25))
    assert long.numel() == 25
    perms = [torch.randperm(10, generator=g2) for _ in range(3)]
    assert torch.equal(long, torch.cat(perms)[:25])
    assert torch.equal(long[:10].sort()[0], torch.arange(10))


def test_epoch_samples_is_validated() -> None:
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="epoch_samples"):
            SRAEConfig(epoch_samples=bad)
    cfg = SRAEConfig(epoch_samples=64, batch_size=32)
    assert SRAEConfig.from_dict(cfg.to_dict()).epoch_samples == 64
    # a budget below one minibatch is refused, naming the field
    with pytest.raises(ValueError, match=r"epoch_samples \(64\) must be at least"):
        SRAEConfig(epoch_samples=64)
    assert SRAEConfig(epoch_samples=None, batch_size=4096).epoch_samples is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_batched_maps_on_cuda_equal_cpu(net_and_srae) -> None:
    net, srae = net_and_srae()
    x = torch.randn(2, 3, 6, 6)
    kwargs = {"n_steps": 4}
    xm = XFeatureModel(net, net.relu2, srae)
    (cpu,), _ = captum_maps(IntegratedGradients, xm, (x,), (), 3, net.relu2, kwargs)
    net, srae = net.cuda(), srae.cuda()
    xg = XFeatureModel(net, net.relu2, srae)
    (gpu,), _ = captum_maps(
        IntegratedGradients, xg, (x.cuda(),), (), 3, net.relu2, kwargs
    )
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-5)


def test_epoch_samples_bounds_each_epoch_and_keeps_quality(monkeypatch) -> None:
    from helpers import three_factor_problem

    import captum_srae.training.epochs as epochs
    from captum_srae import fit_srae

    seen: list[int] = []
    real = epochs.shuffled_batches

    def recording(n, bs, gen, cap=None):
        out = real(n, bs, gen, cap)
        seen.append(sum(int(b.numel()) for b in out))
        return out

    monkeypatch.setattr(epochs, "shuffled_batches", recording)
    z, y = three_factor_problem(1500, 24, seed=4)
    cfg = SRAEConfig.preset(
        "qi2021",  # minibatches of 50 and lr 1e-3, as when this was measured
        alpha_pred=50.0,
        standardize=True,
        hidden_sizes=(32, 12),
        epoch_samples=300,
        pretrain_epochs=1,
        max_epochs=60,
        retune_rounds=1,
    )
    _, history = fit_srae(z, y, cfg, show_progress=False)
    assert seen and set(seen) == {300}  # 1200 training rows, 300 per epoch
    monkeypatch.setattr(epochs, "shuffled_batches", real)
    # the same number of samples seen: 60 epochs of 300 rows, 15 of 1200
    _, full = fit_srae(
        z, y, cfg.replace(epoch_samples=None, max_epochs=15), show_progress=False
    )
    assert history.val_r2 > full.val_r2 - 0.03
