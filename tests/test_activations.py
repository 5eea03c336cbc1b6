"""Tests of ``captum_srae.activations``: layer lookup, pooling, data forms, hooks."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models import resnet18

from captum_srae.activations import (
    activation_batches,
    collect_activations,
    iter_input_batches,
    layer_name,
    pool_activations,
    resolve_layer,
)


@pytest.fixture
def cnn(tiny_cnn) -> nn.Sequential:
    """A fresh tiny CNN: unpadded 3x3 convolutions 3 -> 4 -> 6, three classes."""
    return tiny_cnn(3, (4, 6), padding=0)


def images(n: int = 10, size: int = 8) -> Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


class TwoInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fa = nn.Linear(4, 3)
        self.fb = nn.Linear(2, 3)
        self.act = nn.ReLU()
        self.head = nn.Linear(3, 2)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.head(self.act(self.fa(a) + self.fb(b)))


class FailOnCall(nn.Module):
    """Identity that raises RuntimeError on its ``fail_at``-th call."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at, self.calls = fail_at, 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("boom in forward")
        return x


class Twice(nn.Module):
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x, x


class First(nn.Module):
    def forward(self, pair: tuple[Tensor, Tensor]) -> Tensor:
        return pair[0]


def expected_cnn(model: nn.Sequential, x: Tensor, upto: str) -> Tensor:
    with torch.no_grad():
        for name, module in model.named_children():
            x = module(x)
            if name == upto:
                return x
    raise AssertionError(upto)


# --------------------------------------------------------------------------- layers


def test_resolve_layer_by_name_and_module(cnn) -> None:
    model = resnet18(num_classes=4)
    assert resolve_layer(model, "layer4") is model.layer4
    assert resolve_layer(model, "layer3.1.conv2") is model.layer3[1].conv2
    assert resolve_layer(model, model.fc) is model.fc
    assert layer_name(model, model.layer3[1].conv2) == "layer3.1.conv2"
    assert layer_name(model, nn.Linear(2, 2)) is None
    assert resolve_layer(cnn, "conv2") is cnn[2]


def test_resolve_layer_unknown_name_suggests_close_matches(cnn) -> None:
    model = resnet18(num_classes=4)
    with pytest.raises(ValueError, match=r"'layer4\.1\.conv9'.*did you mean.*conv"):
        resolve_layer(model, "layer4.1.conv9")
    with pytest.raises(ValueError, match=r"'zzz'.*available names: 'conv1'"):
        resolve_layer(cnn, "zzz")


def test_resolve_layer_foreign_module_and_bad_type(cnn) -> None:
    with pytest.raises(ValueError, match="not a submodule"):
        resolve_layer(cnn, nn.Conv2d(3, 4, 3))
    with pytest.raises(TypeError, match="layer must be"):
        resolve_layer(cnn, 3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- pooling


def test_pool_activations() -> None:
    a2 = torch.randn(3, 5)
    assert pool_activations(a2) is a2
    assert pool_activations(a2, "flatten") is a2
    a4 = torch.randn(3, 5, 4, 2)
    torch.testing.assert_close(pool_activations(a4), a4.mean(dim=(2, 3)))
    torch.testing.assert_close(pool_activations(a4, "flatten"), a4.reshape(3, 40))
    a3 = torch.randn(3, 5, 7)
    torch.testing.assert_close(pool_activations(a3), a3.mean(dim=2))
    with pytest.raises(ValueError, match="pooling must be one of"):
        pool_activations(a4, "max")
    with pytest.raises(ValueError, match="at least 2-D"):
        pool_activations(torch.randn(3))
    with pytest.raises(ValueError, match="at least 2-D"):
        pool_activations(torch.tensor(1.0))


# --------------------------------------------------------------------------- data


def test_iter_input_batches_forms() -> None:
    x = torch.arange(10.0).reshape(5, 2)
    chunks = list(iter_input_batches(x, 2))
    assert [c[0].shape[0] for c in chunks] == [2, 2, 1]
    assert all(len(c) == 1 for c in chunks)
    torch.testing.assert_close(torch.cat([c[0] for c in chunks]), x)
    b = torch.arange(5.0)
    pairs = list(iter_input_batches((x, b), 3))
    assert [len(p) for p in pairs] == [2, 2]
    torch.testing.assert_close(pairs[1][1], b[3:])
    labels = torch.arange(5)
    loader = DataLoader(TensorDataset(x, labels), batch_size=2)
    from_loader = list(iter_input_batches(loader))
    assert all(len(p) == 1 for p in from_loader)
    torch.testing.assert_close(torch.cat([p[0] for p in from_loader]), x)
    multi = list(iter_input_batches([((x, b), labels)]))
    assert multi[0][0] is x and multi[0][1] is b


def test_iter_input_batches_errors() -> None:
    with pytest.raises(ValueError, match="data yielded no batches"):
        list(iter_input_batches(torch.empty(0, 3)))
    with pytest.raises(ValueError, match="data yielded no batches"):
        list(iter_input_batches([]))
    with pytest.raises(TypeError, match="dict batches are not supported"):
        list(iter_input_batches([{"x": torch.zeros(2, 3)}]))
    with pytest.raises(ValueError, match="differ in length"):
        iter_input_batches((torch.zeros(3, 2), torch.zeros(4, 2)))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        iter_input_batches(torch.zeros(3, 2), 0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        iter_input_batches(torch.zeros(3, 2), True)
    with pytest.raises(TypeError, match="must be a Tensor"):
        iter_input_batches(5)
    with pytest.raises(TypeError, match="batch 0: the input must be"):
        list(iter_input_batches([("not a tensor", 1)]))


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("layer", ["relu1", "conv2", "fc"])
@pytest.mark.parametrize("pooling", ["avg", "flatten"])
def test_activations_equal_literal_computation(layer: str, pooling: str, cnn) -> None:
    model, x = cnn, images()
    a = expected_cnn(model, x, layer)
    expected = a.mean(dim=(2, 3)) if a.ndim == 4 and pooling == "avg" else a.flatten(1)
    z, y = collect_activations(model, layer, x, pooling=pooling, batch_size=4)
    torch.testing.assert_close(z, expected)
    with torch.no_grad():
        torch.testing.assert_close(y, model(x))


@pytest.mark.parametrize(
    "target, columns",
    [
        (None, [0, 1, 2]),
        (1, [1]),
        ([2, 0], [2, 0]),
        ((0, 2), [0, 2]),
        (np.int64(2), [2]),
        (torch.tensor(0), [0]),
    ],
)
def test_scores_follow_target(target: object, columns: list[int], cnn) -> None:
    model, x = cnn, images()
    _, y = collect_activations(model, "conv2", x, target, batch_size=3)
    with torch.no_grad():
        torch.testing.assert_close(y, model(x)[:, columns])
    assert y.shape == (10, len(columns))


def test_data_forms_give_identical_results(cnn) -> None:
    model, x = cnn, images()
    labels = torch.arange(10) % 3
    ref = collect_activations(model, "relu2", x, [0, 2], batch_size=4)
    loader = DataLoader(TensorDataset(x, labels), batch_size=3)
    chunks = [x[:3], x[3:7], x[7:]]
    for data in (loader, chunks, [(c, labels[: len(c)]) for c in chunks]):
        z, y = collect_activations(model, "relu2", data, [0, 2])
        torch.testing.assert_close(z, ref[0], rtol=0, atol=1e-6)
        torch.testing.assert_close(y, ref[1], rtol=0, atol=1e-6)


def test_resnet_dotted_layers(no_hooks) -> None:
    torch.manual_seed(0)
    model = resnet18(num_classes=4).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        h3 = model.layer3[0](model.layer2(model.layer1(h)))
        block = model.layer3[1]
        conv2 = block.conv2(block.relu(block.bn1(block.conv1(h3))))
        bn2 = block.bn2(conv2)
        l4 = model.layer4(model.layer3[1](h3))
        logits = model(x)
    model.train()
    z, y = collect_activations(model, "layer4", x, target=3)
    torch.testing.assert_close(z, l4.mean(dim=(2, 3)))
    torch.testing.assert_close(y, logits[:, [3]])
    z, _ = collect_activations(model, "layer3.1.conv2", x, pooling="flatten")
    torch.testing.assert_close(z, conv2.flatten(1))
    # bn2 output is modified in place later (``out += identity``): a copy is kept
    z, _ = collect_activations(model, model.layer3[1].bn2, x, pooling="flatten")
    torch.testing.assert_close(z, bn2.flatten(1))
    assert model.training and model.layer4[1].bn2.training
    assert no_hooks(model)


def test_multi_input_model() -> None:
    model = TwoInput()
    gen = torch.Generator().manual_seed(2)
    a, b = torch.randn(7, 4, generator=gen), torch.randn(7, 2, generator=gen)
    with torch.no_grad():
        expected = model.act(model.fa(a) + model.fb(b))
        scores = model(a, b)
    z, y = collect_activations(model, "act", (a, b), batch_size=3)
    torch.testing.assert_close(z, expected)
    torch.testing.assert_close(y, scores)
    batches = [((a[:4], b[:4]), "labels"), [(a[4:], b[4:])]]
    z2, y2 = collect_activations(model, model.act, batches)
    torch.testing.assert_close(z2, expected)
    torch.testing.assert_close(y2, scores)
    b0 = b[:1]  # the same extra argument for every batch (broadcast)
    with torch.no_grad():
        expected = model.act(model.fa(a) + model.fb(b0))
    z3, y3 = collect_activations(
        model, "act", a, 1, additional_forward_args=b0, batch_size=2, device="cpu"
    )
    torch.testing.assert_close(z3, expected)
    with torch.no_grad():
        torch.testing.assert_close(y3, model(a, b0)[:, [1]])


def test_model_without_parameters_keeps_inputs() -> None:
    model = nn.Sequential(OrderedDict(flat=nn.Flatten()))
    x = torch.randn(4, 2, 3)
    z, y = collect_activations(model, "flat", x)
    torch.testing.assert_close(z, x.flatten(1))
    torch.testing.assert_close(y, x.flatten(1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_inputs_follow_model_device(cnn) -> None:
    model, x = cnn.cuda(), images()
    with torch.no_grad():
        expected = model(x.cuda()).cpu()
    for device in (None, "cuda"):
        z, y = collect_activations(model, "fc", x, batch_size=4, device=device)
        assert z.device.type == y.device.type == "cpu"
        torch.testing.assert_close(y, expected)
    with activation_batches(model, "conv2", x) as batches:
        z, y = next(batches)
        assert z.is_cuda and y.is_cuda


# --------------------------------------------------------------------------- modes


def test_eval_mode_used_and_training_flags_restored() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        OrderedDict(lin=nn.Linear(5, 8), drop=nn.Dropout(p=0.9), out=nn.Linear(8, 2))
    )
    model.train()
    model.lin.eval()  # mixed flags must come back exactly
    flags = [m.training for m in model.modules()]
    x = torch.randn(6, 5)
    with torch.no_grad():
        expected = model.lin(x)
    with activation_batches(model, "drop", x, batch_size=4) as batches:
        assert not any(m.training for m in model.modules())
        z = torch.cat([z for z, _ in batches])
    torch.testing.assert_close(z, expected)
    assert [m.training for m in model.modules()] == flags
    z1, _ = collect_activations(model, "drop", x)
    z2, _ = collect_activations(model, "drop", x)
    torch.testing.assert_close(z1, z2)
    assert [m.training for m in model.modules()] == flags


# --------------------------------------------------------------------------- hooks


def test_hooks_removed_after_success_and_early_break(cnn, no_hooks) -> None:
    model, x = cnn, images()
    collect_activations(model, "conv2", x, batch_size=4, show_progress=True)
    assert no_hooks(model)
    with activation_batches(model, "conv2", x, batch_size=2) as batches:
        assert len(model.conv2._forward_hooks) == 1
        for _ in batches:
            break
    assert no_hooks(model)
    with pytest.raises(RuntimeError, match="after its with-block"):
        next(batches)


def test_hooks_removed_after_exception_in_forward(no_hooks) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        OrderedDict(lin=nn.Linear(5, 4), fail=FailOnCall(2), out=nn.Linear(4, 2))
    ).train()
    with pytest.raises(RuntimeError, match="boom in forward"):
        collect_activations(model, "lin", torch.randn(6, 5), batch_size=3)
    assert no_hooks(model)
    assert all(m.training for m in model.modules())


def test_hooks_removed_after_exception_in_with_block(cnn, no_hooks) -> None:
    model, x = cnn, images()
    model.train()
    with pytest.raises(KeyError, match="user error"):
        with activation_batches(model, "relu1", x, batch_size=4) as batches:
            next(batches)
            raise KeyError("user error")
    assert no_hooks(model)
    assert model.training


def test_user_calls_inside_block_are_not_captured(cnn) -> None:
    model, x = cnn, images()
    with activation_batches(model, "conv2", x[:4], 0) as batches:
        model(x)  # an unrelated forward pass of another size
        (z, y), *_ = list(batches)
    assert z.shape == (4, 6) and y.shape == (4, 1)


# --------------------------------------------------------------------------- errors


def test_layer_returning_tuple_raises(no_hooks) -> None:
    model = nn.Sequential(
        OrderedDict(lin=nn.Linear(5, 3), twice=Twice(), first=First())
    )
    with pytest.raises(TypeError, match="layer 'twice' must return a single Tensor"):
        collect_activations(model, "twice", torch.randn(4, 5))
    assert no_hooks(model)


class WithUnused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used, self.unused = nn.Linear(5, 3), nn.Linear(5, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.used(x)


def test_layer_not_reached_raises(no_hooks) -> None:
    model = WithUnused()
    with pytest.raises(ValueError, match="'unused' was not reached.*batch 0"):
        collect_activations(model, "unused", torch.randn(4, 5))
    assert no_hooks(model)


def test_nan_activations_name_the_batch(cnn, no_hooks) -> None:
    model, x = cnn, images()
    x[5, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="batch 1: the activations"):
        collect_activations(model, "conv2", x, batch_size=4)
    assert no_hooks(model)


def test_inf_scores_raise(cnn) -> None:
    model = cnn
    with torch.no_grad():
        model.fc.bias[1] = float("inf")
    with pytest.raises(ValueError, match="batch 0: the model scores contain NaN or"):
        collect_activations(model, "conv2", images(), target=[0, 1])
    z, _ = collect_activations(model, "conv2", images(), target=0)  # inf not kept
    assert torch.isfinite(z).all()


def test_target_errors(cnn) -> None:
    model, x = cnn, images()
    with pytest.raises(ValueError, match="target 3 is out of range.*3 outputs"):
        collect_activations(model, "conv2", x, 3)
    with pytest.raises(ValueError, match="target -1 is out of range"):
        collect_activations(model, "conv2", x, [0, -1])
    with pytest.raises(TypeError, match="target must be"):
        collect_activations(model, "conv2", x, "1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="target must be"):
        collect_activations(model, "conv2", x, [])


def test_model_output_must_be_2d_tensor(no_hooks) -> None:
    torch.manual_seed(0)
    flat = nn.Sequential(OrderedDict(lin=nn.Linear(5, 1), flat=nn.Flatten(0)))
    with pytest.raises(ValueError, match=r"forward_func.*2-D.*\(4,\)"):
        collect_activations(flat, "lin", torch.randn(4, 5))
    pair = nn.Sequential(OrderedDict(lin=nn.Linear(5, 2), twice=Twice()))
    with pytest.raises(TypeError, match="forward_func.*got tuple"):
        collect_activations(pair, "lin", torch.randn(4, 5))
    assert no_hooks(flat)
    assert no_hooks(pair)


def test_empty_and_dict_data_raise(cnn, no_hooks) -> None:
    model = cnn
    for data in (torch.empty(0, 3, 8, 8), []):
        with pytest.raises(ValueError, match="data yielded no batches"):
            collect_activations(model, "conv2", data)
    with pytest.raises(TypeError, match="dict"):
        collect_activations(model, "conv2", [{"pixel_values": images()}])
    with pytest.raises(ValueError, match="pooling must be one of"):
        collect_activations(model, "conv2", images(), pooling="max")
    assert no_hooks(model)
