"""Tests of the PartsCNN weight cache and of loading torchvision models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from captum_srae import models
from captum_srae.datasets.models import PartsCNN, load_torchvision_model, train_or_load
from captum_srae.utils.cache import CACHE_ENV, cache_key, resolve_cache_dir

TINY = {"n_train": 32, "epochs": 1, "width": 4, "size": 32, "show_progress": False}


def _no_training(*args, **kwargs):
    raise AssertionError("train_classifier must not run on a cache hit")


def test_parts_cnn_follows_its_documented_layers() -> None:
    torch.manual_seed(0)
    net = PartsCNN(n_classes=5, width=4).eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = net(x)
        a = net.conv4(net.conv3(net.conv2(net.conv1(x))))
        expected = net.fc(a.mean(dim=(2, 3)))
    assert a.shape == (2, 16, 8, 8)  # 4w channels, 8x8 for 64x64 inputs
    torch.testing.assert_close(out, expected)
    assert out.shape == (2, 5)


def test_cache_dir_precedence(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_cache_dir() == tmp_path / "xdg" / "captum-srae"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert resolve_cache_dir() == Path.home() / ".cache" / "captum-srae"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert resolve_cache_dir() == tmp_path / "env"
    assert resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"


def test_cache_miss_then_hit(monkeypatch, tmp_path: Path) -> None:
    model, info = train_or_load(cache_dir=tmp_path, **TINY)
    assert not info["cached"]
    assert info["path"].is_file() and info["path"].parent == tmp_path
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
    monkeypatch.setattr(models, "train_classifier", _no_training)
    again, info2 = train_or_load(cache_dir=tmp_path, **TINY)
    assert info2["cached"] and info2["key"] == info["key"]
    assert info2["train_accuracy"] == pytest.approx(info["train_accuracy"])
    for (k, a), (k2, b) in zip(
        model.state_dict().items(), again.state_dict().items(), strict=True
    ):
        assert k == k2 and torch.equal(a, b)
    assert not again.training


def test_env_var_cache(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    _, info = train_or_load(**TINY)
    assert info["path"].parent == tmp_path


def test_different_settings_different_key(tmp_path: Path) -> None:
    _, a = train_or_load(cache_dir=tmp_path, **TINY)
    _, b = train_or_load(cache_dir=tmp_path, **{**TINY, "seed": 1})
    _, c = train_or_load(cache_dir=tmp_path, **{**TINY, "epochs": 2})
    assert len({a["key"], b["key"], c["key"]}) == 3
    assert len(list(tmp_path.glob("*.safetensors"))) == 3
    assert cache_key({"a": 1, "b": 2}) == cache_key({"b": 2, "a": 1})


@pytest.mark.parametrize("content", [b"", b"not a safetensors file" * 10])
def test_corrupt_cache_retrains(tmp_path: Path, content: bytes) -> None:
    _, info = train_or_load(cache_dir=tmp_path, **TINY)
    info["path"].write_bytes(content)
    with pytest.warns(RuntimeWarning, match="retraining"):
        model, info2 = train_or_load(cache_dir=tmp_path, **TINY)
    assert not info2["cached"]
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 4)
    _, info3 = train_or_load(cache_dir=tmp_path, **TINY)
    assert info3["cached"]


def test_unwritable_cache_still_returns_model(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.warns(RuntimeWarning, match="could not cache"):
        model, info = train_or_load(cache_dir=blocker / "sub", **TINY)
    assert not info["cached"] and isinstance(model, PartsCNN)


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=3)
    path = tmp_path_factory.mktemp("w") / "resnet18.pth"
    torch.save(net.state_dict(), path)
    return path, net.state_dict()


def test_load_torchvision_round_trip(resnet_weights) -> None:
    path, state = resnet_weights
    model = load_torchvision_model("resnet18", 3, path)
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 3)


def test_load_torchvision_safetensors_and_wrapped(resnet_weights, tmp_path) -> None:
    from safetensors.torch import save_file

    path, state = resnet_weights
    st = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    model = load_torchvision_model("resnet18", 3, st)
    assert torch.equal(model.fc.weight, state["fc.weight"])
    wrapped = tmp_path / "ckpt.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, wrapped)
    model = load_torchvision_model("resnet18", 3, wrapped)
    assert torch.equal(model.fc.weight, state["fc.weight"])


def test_load_torchvision_errors(resnet_weights, tmp_path: Path) -> None:
    path, _ = resnet_weights
    with pytest.raises(ValueError, match="unknown torchvision model 'resnet17'"):
        load_torchvision_model("resnet17", 3, path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_torchvision_model("resnet18", 3, tmp_path / "missing.pth")
    not_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], not_dict)
    with pytest.raises(ValueError, match="not a state dict"):
        load_torchvision_model("resnet18", 3, not_dict)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot read"):
        load_torchvision_model("resnet18", 3, garbage)
    with pytest.raises(ValueError, match="do not match resnet18"):
        load_torchvision_model("resnet18", 5, path)
    with pytest.raises(ValueError, match="do not match resnet34"):
        load_torchvision_model("resnet34", 3, path)


def test_load_torchvision_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(2, 2), path)  # a whole module, not a state dict
    with pytest.raises(ValueError):
        load_torchvision_model("resnet18", 3, path)


def test_training_is_reproducible_and_keeps_global_rng(tmp_path: Path) -> None:
    state = torch.random.get_rng_state()
    a, _ = train_or_load(cache_dir=tmp_path / "a", **TINY)
    assert torch.equal(torch.random.get_rng_state(), state)
    b, _ = train_or_load(cache_dir=tmp_path / "b", **TINY)
    for v, w in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(v, w)
