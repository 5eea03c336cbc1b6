"""Concurrency of explainers sharing a model, and hooks after failures."""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch import nn

from captum_srae import SRAEConfig, collect_activations
from captum_srae.attribution import SRAEAttribution

CFG = SRAEConfig(
    n_concepts=2,
    hidden_sizes=(8, 4),
    pretrain_epochs=1,
    max_epochs=3,
    retune_rounds=1,
)


class SlowReLU(nn.ReLU):
    """A ReLU that yields the GIL so that two threads interleave inside forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        threading.Event().wait(0.002)
        return super().forward(x)


def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(2, 6, 3, padding=1),
            relu1=SlowReLU(),
            conv2=nn.Conv2d(6, 6, 3, padding=1),
            relu2=SlowReLU(),
            gap=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(6, 3),
        )
    ).eval()


@pytest.fixture(scope="module")
def pair():
    model = net()
    x = torch.rand(40, 2, 6, 6, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a = SRAEAttribution(model, "relu1", config=CFG).fit(
            x, target=0, show_progress=False
        )
        b = SRAEAttribution(model, "relu2", config=CFG).fit(
            x, target=1, show_progress=False
        )
    return model, a, b


def _run(explainer, x):
    return (
        explainer.attribute(x),
        explainer.contributions(x),
        explainer.attribute(x, method="excitation"),
    )


def _equal(r1, r2):
    return all(torch.equal(u, v) for u, v in zip(r1, r2, strict=True))


def test_two_explainers_alternately_and_from_two_threads(pair, no_hooks):
    model, a, b = pair
    xs = [
        torch.rand(3, 2, 6, 6, generator=torch.Generator().manual_seed(i))
        for i in range(6)
    ]
    alone_a = [_run(a, x) for x in xs]
    alone_b = [_run(b, x) for x in xs]
    for i, x in enumerate(xs):  # alternately
        assert _equal(_run(a, x), alone_a[i])
        assert _equal(_run(b, x), alone_b[i])
    assert no_hooks(model)
    with ThreadPoolExecutor(max_workers=4) as pool:  # concurrently, many rounds
        futures = [
            (pool.submit(_run, e, x), ref[i])
            for _ in range(3)
            for i, x in enumerate(xs)
            for e, ref in ((a, alone_a), (b, alone_b))
        ]
        for future, ref in futures:
            assert _equal(future.result(), ref)
    assert no_hooks(model)


def test_collect_activations_from_two_threads_do_not_mix(no_hooks):
    model = net()
    x1 = torch.rand(8, 2, 6, 6, generator=torch.Generator().manual_seed(1))
    x2 = torch.rand(8, 2, 6, 6, generator=torch.Generator().manual_seed(2))
    ref1 = collect_activations(model, "relu1", x1, batch_size=2)
    ref2 = collect_activations(model, "relu2", x2, batch_size=2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = [
            (pool.submit(collect_activations, model, layer, x, batch_size=2), ref)
            for _ in range(4)
            for layer, x, ref in (("relu1", x1, ref1), ("relu2", x2, ref2))
        ]
        for job, ref in jobs:
            z, y = job.result()
            assert torch.equal(z, ref[0]) and torch.equal(y, ref[1])
    assert no_hooks(model)


class Boom(RuntimeError):
    pass


def test_no_hook_remains_after_failures(pair, no_hooks):
    model, a, _ = pair
    x = torch.rand(2, 2, 6, 6)
    real = model.fc.forward

    def fail(*args):
        raise Boom("injected")

    a.attribute(x)  # a first, complete pass counts the calls of relu1
    model.fc.forward = fail
    try:
        a.attribute(x)  # stops after the explained layer: fc does not run
        assert no_hooks(model)
        for call in (
            lambda: a.contributions(x),
            lambda: collect_activations(model, "relu1", x),
            lambda: SRAEAttribution(model, "relu1", config=CFG).fit(
                x.repeat(10, 1, 1, 1), target=0, show_progress=False
            ),
        ):
            with pytest.raises((Boom, ValueError)):
                call()
            assert no_hooks(model)
    finally:
        model.fc.forward = real
    with pytest.raises(RuntimeError, match="channels"):  # bad inputs, hooks placed
        a.attribute(torch.rand(2, 3, 6, 6))
    assert no_hooks(model)
