"""``SRAEAttribution`` behaves like a Captum attribution where a Captum user
expects it: the constructor's argument order, every form of ``TargetType``,
no silent fit of every output, the model's own errors kept (also by the
command line), and an early exit that can be turned off."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam, Saliency
from torch import Tensor, nn

from captum_srae import SRAE, SRAEAttribution, SRAEConfig
from captum_srae.apps import cli
from captum_srae.apps.commands import fit as fit_command

TARGETS = [2, 0, 1, 0]


@pytest.fixture
def explainer(tiny_cnn, active_srae):
    """A tiny CNN (relu2: 10 channels) with one hand-made SRAE per class."""
    net = tiny_cnn(3, (6, 10))
    torch.manual_seed(1)
    sa = SRAEAttribution.from_sraes(
        net, "relu2", {t: active_srae(10) for t in range(3)}, n_outputs=3
    )
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    return net, sa, x


@pytest.fixture
def fit_config(tiny_config) -> SRAEConfig:
    return tiny_config.replace(max_epochs=2, pretrain_epochs=1, retune_rounds=1)


def quiet_fit(sa: SRAEAttribution, data, **kwargs) -> SRAEAttribution:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return sa.fit(data, show_progress=False, **kwargs)


# ------------------------------------------------------------- constructor
def test_constructor_has_layer_gradcam_positional_order(tiny_cnn, small_config):
    ours = list(inspect.signature(SRAEAttribution).parameters.values())
    captum = list(inspect.signature(LayerGradCam).parameters.values())
    assert [p.name for p in ours[:3]] == [p.name for p in captum[:3]]
    assert [p.name for p in ours[:3]] == ["forward_func", "layer", "device_ids"]
    assert all(p.kind is p.KEYWORD_ONLY for p in ours[3:])
    assert {p.name for p in ours[3:]} == {
        "heatmap_layer", "map_method", "map_smoothing", "config", "early_exit"
    }  # fmt: skip
    net = tiny_cnn()
    sa = SRAEAttribution(net, "relu2", None, heatmap_layer="relu1", config=small_config)
    assert sa.device_ids is None and sa.heatmap_layer == "relu1"
    assert sa.config is small_config and sa.early_exit is True
    assert sa.map_method == "gradcam" and sa.map_smoothing == 0.0
    with pytest.raises(TypeError):
        SRAEAttribution(net, "relu2", None, "relu1")  # heatmap_layer is keyword-only
    with pytest.raises(TypeError, match="config"):
        SRAEAttribution(net, "relu2", config={"n_concepts": 3})
    with pytest.raises(TypeError, match="early_exit"):
        SRAEAttribution(net, "relu2", early_exit="no")


# ----------------------------------------------------------------- targets
PER_EXAMPLE = {
    "list of ints": TARGETS,
    "list of 1-tuples": [(t,) for t in TARGETS],
    "tensor (N,)": torch.tensor(TARGETS),
    "int32 tensor (N,)": torch.tensor(TARGETS, dtype=torch.int32),
    "numpy ints in a list": [np.int64(t) for t in TARGETS],
}
UNIFORM = {
    "int": 1,
    "1-tuple": (1,),
    "0-d tensor": torch.tensor(1),
    "(1,) tensor": torch.tensor([1]),
    "numpy int": np.int64(1),
}


@pytest.mark.parametrize("name", list(PER_EXAMPLE))
def test_every_per_example_target_form_explains_each_example(explainer, name):
    net, sa, x = explainer
    target = PER_EXAMPLE[name]
    expected = torch.cat(
        [sa.attribute(x[i : i + 1], target=t) for i, t in enumerate(TARGETS)]
    )
    maps = sa.attribute(x, target=target)
    assert maps.shape == (4, 3, 8, 8) and maps.abs().sum() > 0
    torch.testing.assert_close(maps, expected)
    c = sa.contributions(x, target)
    for i, t in enumerate(TARGETS):
        torch.testing.assert_close(c[i], sa.contributions(x[i : i + 1], t)[0])
    assert sa.explain(x, target=target).target.tolist() == TARGETS


@pytest.mark.parametrize("name", list(UNIFORM))
def test_every_single_target_form_explains_all_examples(explainer, name):
    net, sa, x = explainer
    expected = sa.attribute(x, target=[1, 1, 1, 1])
    torch.testing.assert_close(sa.attribute(x, target=UNIFORM[name]), expected)
    torch.testing.assert_close(
        sa.concepts(x, UNIFORM[name]), sa.concepts(x, [1, 1, 1, 1])
    )


BAD_TARGETS = [
    (1.0, TypeError, "target must be None, an int.*got float"),
    (True, TypeError, "target must hold class indices"),
    ("1", TypeError, "target must be None, an int"),
    ({1: 1}, TypeError, "target must be None, an int"),
    ([0.5, 1, 1, 1], TypeError, "target must hold class indices"),
    (torch.tensor([0.0, 1.0, 1.0, 1.0]), TypeError, "target must be a tensor of int"),
    (torch.tensor([True, False, True, True]), TypeError, "tensor of int"),
    ([0, 1], ValueError, "target as a list must hold one per example"),
    (torch.tensor([0, 1]), ValueError, r"target as a tensor .* shape \(4,\)"),
    (torch.zeros(2, 2, dtype=torch.long), ValueError, "target as a tensor"),
    ((0, 1), ValueError, "target .*a tuple of 2 indices"),
    ([(0, 1)] * 4, ValueError, "a tuple of 2 indices"),
    (7, ValueError, "target 7 is out of range"),
    ([0, 0, 0, 5], ValueError, "target 5 is out of range"),
]


@pytest.mark.parametrize(("target", "error", "match"), BAD_TARGETS)
def test_unsupported_target_forms_raise_naming_target(explainer, target, error, match):
    net, sa, x = explainer
    with pytest.raises(error, match=match):
        sa.attribute(x, target=target)
    with pytest.raises(error, match=match):
        sa.contributions(x, target)


def test_target_none_needs_a_single_fitted_class(explainer):
    net, sa, x = explainer
    with pytest.raises(ValueError, match="target is required"):
        sa.attribute(x)
    one = SRAEAttribution.from_sraes(net, "relu2", {2: sa.sraes_[2]}, n_outputs=3)
    torch.testing.assert_close(one.attribute(x), sa.attribute(x, target=2))
    with pytest.raises(ValueError, match="target 1 was not fitted"):
        one.attribute(x, target=1)


# ------------------------------------------------------- fit(target=None)
def test_fit_refuses_every_output_without_opt_in(tiny_cnn, fit_config):
    net = tiny_cnn(n_classes=12)
    x = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    served = []

    def batches():
        for i in range(4):
            served.append(i)
            yield x[4 * i : 4 * i + 4]

    for per_class in (True, False):
        sa = SRAEAttribution(net, "relu2", config=fit_config)
        with pytest.raises(ValueError, match="12 outputs.*all_targets=True"):
            sa.fit(batches(), per_class=per_class, show_progress=False)
        assert not hasattr(sa, "sraes_")
    assert served == [0, 0]  # it stops at the first batch, before any fit
    with pytest.raises(ValueError, match="not both"):
        SRAEAttribution(net, "relu2").fit(x, target=3, all_targets=True)


def test_fit_every_output_with_opt_in_or_a_single_output(tiny_cnn, fit_config):
    x = torch.rand(24, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    sa = quiet_fit(
        SRAEAttribution(tiny_cnn(n_classes=2), "relu2", config=fit_config),
        x,
        all_targets=True,
    )
    assert sa.targets_ == [0, 1] and sa.n_outputs_ == 2 and sa.per_class_
    one = quiet_fit(
        SRAEAttribution(tiny_cnn(n_classes=1), "relu2", config=fit_config), x
    )
    assert one.targets_ == [0] and one.attribute(x[:2]).shape == (2, 3, 8, 8)
    by_tensor = quiet_fit(
        SRAEAttribution(tiny_cnn(n_classes=3), "relu2", config=fit_config),
        x,
        target=torch.tensor([2, 0]),
    )
    assert by_tensor.targets_ == [2, 0]


@pytest.mark.parametrize(
    ("target", "error", "match"),
    [
        (1.5, TypeError, "target must hold class indices"),
        ([0, True], TypeError, "target must hold class indices"),
        (torch.tensor([[0, 1]]), TypeError, "1-D integer tensor"),
        ([], ValueError, "empty"),
        ([1, 1], ValueError, "repeated"),
    ],
)
def test_fit_rejects_bad_targets_before_running_the_model(
    tiny_cnn, target, error, match
):
    net = tiny_cnn()
    net.conv1.register_forward_hook(lambda *a: pytest.fail("the model ran"))
    with pytest.raises(error, match=match):
        SRAEAttribution(net, "relu2").fit(torch.rand(4, 3, 8, 8), target=target)


# ------------------------------------------------------ the model's errors
class Armed(nn.Module):
    """Identity that raises ``error`` (the very object) once armed."""

    def __init__(self) -> None:
        super().__init__()
        self.error: BaseException | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.error is not None:
            raise self.error
        return x


class UserBug(Exception):
    """An exception type no library would raise."""


ERRORS = {
    "out of memory": lambda: torch.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB"
    ),
    "device mismatch": lambda: RuntimeError(
        "Expected all tensors to be on the same device, but found at least two "
        "devices, cuda:0 and cpu!"
    ),
    "bug in forward": lambda: UserBug("list index out of range in my_head()"),
    "key error": lambda: KeyError("features"),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_errors_of_the_model_keep_type_and_message(explainer, no_hooks, name):
    net, sa, x = explainer
    armed = Armed()
    model = nn.Sequential(armed, net).eval()  # fails before the explained layer
    at_layer = SRAEAttribution.from_sraes(model, "1.relu2", sa.sraes_, n_outputs=3)
    below = SRAEAttribution.from_sraes(
        model, "1.relu2", sa.sraes_, heatmap_layer="1.relu1", n_outputs=3
    )
    calls = {
        "gradcam": lambda: at_layer.attribute(x, target=0),
        "excitation": lambda: at_layer.attribute(x, target=0, method="excitation"),
        "Saliency": lambda: at_layer.attribute(x, target=0, method=Saliency),
        "LayerGradCam below": lambda: below.attribute(x, target=0),
        "contributions": lambda: at_layer.contributions(x, 0),
        "explain": lambda: at_layer.explain(x, target=0),
        "fit": lambda: SRAEAttribution(model, "1.relu2").fit(
            x, target=0, show_progress=False
        ),
    }
    for what, call in calls.items():
        error = ERRORS[name]()
        armed.error = error
        try:
            with pytest.raises(type(error)) as caught:
                call()
        finally:
            armed.error = None
        assert caught.value is error, what  # the very exception, not a rewrap
        assert str(caught.value) == str(error), what
        assert no_hooks(model), what


def test_command_line_shows_the_type_and_message_of_the_cause(monkeypatch, capsys):
    error = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def failing_fit(args) -> int:
        raise error

    monkeypatch.setattr(fit_command, "run_fit", failing_fit)
    argv = ["fit", "--model=m:f", "--data=d", "--layer=l", "--target", "0"]
    argv.append("--out=o")
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "captum-srae: error: OutOfMemoryError: CUDA out of memory. Tried to "
        "allocate 2.00 GiB"
    )
    args = cli.build_parser().parse_args(argv)
    with pytest.raises(ValueError) as caught:
        args.handler(args)
    assert caught.value.__cause__ is error  # chained to the original


# --------------------------------------------------------------- early exit
class AfterLayer(nn.Module):
    """Identity after the explained layer that counts its calls (a side effect)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        return x


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"method": "excitation"},
        {"method": Saliency},
        {"method": LayerGradCam},
        {"output": "class"},
    ],
    ids=["gradcam", "excitation", "saliency", "layer-gradcam", "class"],
)
def test_early_exit_off_gives_the_same_maps_and_runs_the_side_effects(
    explainer, kwargs
):
    net, sa, x = explainer
    counter = AfterLayer()
    model = nn.Sequential(net[:4], counter, net[4:]).eval()  # after relu2
    on = SRAEAttribution.from_sraes(model, "0.relu2", sa.sraes_, n_outputs=3)
    off = SRAEAttribution.from_sraes(
        model, "0.relu2", sa.sraes_, n_outputs=3, early_exit=False
    )
    assert on.early_exit and not off.early_exit
    expected = on.attribute(x, target=TARGETS, **kwargs)
    on.attribute(x, target=TARGETS, **kwargs)
    counter.calls = 0
    on.attribute(x, target=TARGETS, **kwargs)  # calls known: stops early
    skipped = counter.calls
    maps = off.attribute(x, target=TARGETS, **kwargs)
    torch.testing.assert_close(maps, expected)
    torch.testing.assert_close(maps, sa.attribute(x, target=TARGETS, **kwargs))
    assert skipped == 0 and counter.calls > 0  # off: every pass runs it all


class Repeats(nn.Module):
    """Calls its ``act`` layer ``1 + repeats`` times, ``repeats`` set per call."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.act = nn.Softplus()
        self.fc = nn.Linear(6, 2)
        self.repeats = 0

    def forward(self, x: Tensor) -> Tensor:
        a = self.act(self.conv(x))
        for _ in range(self.repeats):
            a = self.act(a - 1.0)
        return self.fc(a.mean(dim=(2, 3)))


def gradcam_by_hand(a: Tensor, srae: SRAE) -> Tensor:
    """Grad-CAM of each x-feature at ``a`` by autograd:
    ``ReLU(Σ_c mean_hw(∂e_k/∂A_c,hw) · A_c)``."""
    a = a.detach().requires_grad_()
    e = srae.encode(a.mean(dim=(2, 3)))
    maps = []
    for k in range(e.shape[1]):
        (grad,) = torch.autograd.grad(e[:, k].sum(), a, retain_graph=True)
        maps.append((grad.mean(dim=(2, 3), keepdim=True) * a).sum(1).clamp_min(0))
    return torch.stack(maps, dim=1).detach()


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require")
def test_early_exit_off_explains_the_last_call_of_a_layer_run_several_times(
    active_srae,
):
    model = Repeats().eval()
    srae = active_srae(6)
    off = SRAEAttribution.from_sraes(model, "act", {1: srae}, early_exit=False)
    x = torch.rand(3, 3, 5, 5, generator=torch.Generator().manual_seed(3))
    model.repeats = 0
    off.attribute(x, target=1)  # a first pass with one call of the layer
    for repeats in (2, 1):
        model.repeats = repeats
        with torch.no_grad():
            a = model.act(model.conv(x))
            for _ in range(repeats):
                a = model.act(a - 1.0)
        maps = off.attribute(x, target=1, interpolate="layer")
        torch.testing.assert_close(maps, gradcam_by_hand(a, srae))
        e = srae.encode(a.mean(dim=(2, 3))).detach()
        torch.testing.assert_close(off.concepts(x, 1), e)

        def last_call_features(inp: Tensor, reps: int = repeats) -> Tensor:
            h = model.act(model.conv(inp))
            for _ in range(reps):
                h = model.act(h - 1.0)
            return srae.encode(h.mean(dim=(2, 3)))

        sal = off.attribute(x, target=1, method=Saliency)
        xi = x.clone().requires_grad_()
        ref = torch.stack(
            [
                Saliency(last_call_features).attribute(xi, target=k).sum(1)
                for k in range(3)
            ],
            dim=1,
        )
        torch.testing.assert_close(sal, ref)


def test_early_exit_is_kept_by_from_sraes_and_load(tmp_path, explainer):
    net, sa, x = explainer
    sa.save(tmp_path / "sa")
    back = SRAEAttribution.load(tmp_path / "sa", net, early_exit=False)
    assert back.early_exit is False and back.layer_name_ == "relu2"
    torch.testing.assert_close(back.attribute(x, target=1), sa.attribute(x, 1))
    assert SRAEAttribution.load(tmp_path / "sa", net).early_exit is True
