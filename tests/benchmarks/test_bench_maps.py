"""(a) Grad-CAM x-feature maps on ResNet-18 and (b) Captum maps batched over
x-features, each next to its baseline measured in the same run."""

from __future__ import annotations

import pytest
import torch
import torchvision
from _interleave import interleaved  # noqa: E402
from captum.attr import IntegratedGradients, LayerGradCam

from captum_srae import SRAE, SRAEAttribution, SRAEConfig
from captum_srae.attribution.heatmaps import XFeatureModel, captum_maps

ROUNDS = 6


def resnet_and_srae():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval()
    srae = SRAE(512, 1, SRAEConfig(n_concepts=5)).eval()
    return net, srae


@pytest.fixture(scope="module")
def setup_a():
    net, srae = resnet_and_srae()
    sa = SRAEAttribution.from_sraes(net, "layer4", {0: srae}, n_outputs=1000)
    x = torch.randn(16, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    return net, sa, x


def run(benchmark, fn, rounds=ROUNDS):
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="a: resnet18 layer4, batch 16, 224x224")
def test_a_attribute_vs_gradcam_vs_forward(benchmark, setup_a) -> None:
    net, sa, x = setup_a
    cam = LayerGradCam(net, net.layer4)

    def forward():
        with torch.no_grad():
            return net(x)

    assert sa.attribute(x, target=0).shape == (16, 5, 224, 224)
    interleaved(
        benchmark,
        {
            "forward_no_grad": forward,
            "layergradcam_one_class": lambda: cam.attribute(x, target=0),
            "srae_attribute_5_maps": lambda: sa.attribute(x, target=0),
            "srae_attribute_5_maps_layer_size": lambda: sa.attribute(
                x, target=0, interpolate="layer"
            ),
        },
        rounds=ROUNDS,
    )


@pytest.fixture(scope="module")
def setup_b():
    net, srae = resnet_and_srae()
    xm = XFeatureModel(net, net.layer4, srae)
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    return net, xm, x


def ig_maps(setup, batched):
    net, xm, x = setup
    kwargs = {"n_steps": 16}
    return lambda: captum_maps(
        IntegratedGradients, xm, (x,), (), 5, net.layer4, kwargs, batched=batched
    )[0][0]


@pytest.mark.benchmark(group="b: IntegratedGradients, 5 x-features")
def test_b_ig_batched_vs_loop(benchmark, setup_b) -> None:
    batched, loop = ig_maps(setup_b, batched=True), ig_maps(setup_b, batched=False)
    torch.testing.assert_close(batched(), loop(), rtol=1e-3, atol=1e-5)
    interleaved(benchmark, {"ig_loop": loop, "ig_batched": batched}, rounds=3)
