"""Fixtures shared by the test modules: tiny CNNs, small configs, a hook check.

Test modules take these as fixtures and never import from one another;
``tests/helpers.py`` holds the literal oracles and synthetic problems.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import torch
from torch import nn

from captum_srae import SRAE, SRAEConfig
from captum_srae.utils.cache import CACHE_ENV


def _tiny_cnn(
    in_channels: int = 3,
    widths: Sequence[int] = (6, 10),
    padding: int = 1,
    n_classes: int = 3,
) -> nn.Sequential:
    """``conv1, relu1, ..., convN, reluN, gap, flat, fc`` in eval mode.

    Built right after ``torch.manual_seed(0)``, so the weights depend on the
    architecture only: 3x3 convolutions of the given ``widths``, global
    average pooling and a linear head with ``n_classes`` outputs.
    """
    torch.manual_seed(0)
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels = in_channels
    for i, width in enumerate(widths, start=1):
        layers[f"conv{i}"] = nn.Conv2d(channels, width, 3, padding=padding)
        layers[f"relu{i}"] = nn.ReLU()
        channels = width
    layers["gap"] = nn.AdaptiveAvgPool2d(1)
    layers["flat"] = nn.Flatten()
    layers["fc"] = nn.Linear(channels, n_classes)
    return nn.Sequential(layers).eval()


@pytest.fixture(scope="session")
def tiny_cnn() -> Callable[..., nn.Sequential]:
    """Builder of a fresh tiny CNN: ``tiny_cnn(in_channels, widths, padding)``."""
    return _tiny_cnn


def _no_hooks(model: nn.Module) -> bool:
    """True when no module of ``model`` holds a forward or backward hook."""
    return all(
        not m._forward_hooks
        and not m._forward_pre_hooks
        and not m._backward_hooks
        and not getattr(m, "_backward_pre_hooks", None)
        for m in model.modules()
    )


@pytest.fixture(scope="session")
def no_hooks() -> Callable[[nn.Module], bool]:
    """The predicate ``no_hooks(model)``: every hook was removed again."""
    return _no_hooks


@pytest.fixture(scope="session")
def small_config() -> SRAEConfig:
    """Three concepts, hidden layers ``(16, 8)``, the rest default."""
    return SRAEConfig(n_concepts=3, hidden_sizes=(16, 8))


@pytest.fixture(scope="session")
def tiny_config() -> SRAEConfig:
    """Three concepts, hidden layers ``(8, 4)``, the rest default."""
    return SRAEConfig(n_concepts=3, hidden_sizes=(8, 4))


@pytest.fixture(scope="session")
def active_srae(small_config: SRAEConfig) -> Callable[[int], SRAE]:
    """Builder of an untrained ``SRAE(in_features, 1, small_config)`` in eval
    mode whose encoder biases are 0.5, so that every unit is active and maps
    and gradients are not all zero. It draws from the global generator."""

    def make(in_features: int) -> SRAE:
        srae = SRAE(in_features, 1, small_config).eval()
        with torch.no_grad():
            for m in srae.encoder:
                if isinstance(m, nn.Linear):
                    m.bias.fill_(0.5)
        return srae

    return make


# ------------------------------------------------- hand-set net and SRAE
@pytest.fixture
def hand_net() -> nn.Sequential:
    """float64 net: 1x1 conv with channel weights (1, -1, 2), so A_c = w_c * x,
    then global average pooling and a head with weights 0.5, bias 0."""
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


@pytest.fixture
def hand_srae() -> SRAE:
    """float64 SRAE on 3 channels: e1 = 2 z0, e2 = 30 - (z1 + z2) - 20 around
    z = (0.5, -0.5, 1); prediction e1 + 2 e2 + 0.5."""
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


@pytest.fixture
def x_hand() -> torch.Tensor:
    """The 1x1x2x2 float64 input of ``hand_net``: [[1, 2], [3, -4]]."""
    return torch.tensor([[[[1.0, 2.0], [3.0, -4.0]]]], dtype=torch.float64)


@pytest.fixture(scope="session", autouse=True)
def cache_in_a_temporary_folder(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    """Every test caches trained CNNs in one temporary folder of the session,
    never in the user's ``~/.cache`` (tests that check the cache rules set
    the variables themselves with ``monkeypatch``)."""
    folder = tmp_path_factory.mktemp("captum-srae-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv(CACHE_ENV, str(folder))
    yield folder
    patch.undo()
