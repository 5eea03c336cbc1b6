"""Deletion / insertion curves on hand-set linear models (no training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from captum_srae import SRAE, SRAEConfig
from captum_srae.attribution.heatmaps import XFeatureModel
from captum_srae.evaluation.metrics import (
    deletion_curve,
    insertion_curve,
    make_baseline,
)


class PixelLinear(nn.Module):
    """f(x) = Σ_cp w_cp x_cp (+ a second output with weights -w when two=True)."""

    def __init__(self, weight: torch.Tensor, two: bool = False) -> None:
        super().__init__()
        self.weight = weight
        self.two = two

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x * self.weight).flatten(1).sum(dim=1, keepdim=True)
        return torch.cat([s, -2 * s], dim=1) if self.two else s


def oracle_curve(model, x, maps, base, n_steps, mode):
    """Plain loops: rank pixels, replace them, evaluate, trapezoid."""
    n, _, h, w = x.shape
    scores = np.zeros((n, n_steps + 1))
    for i in range(n):
        flat = maps[i].flatten().tolist()
        order = sorted(range(h * w), key=lambda p: (-flat[p], p))
        for t in range(n_steps + 1):
            m = int(round(t / n_steps * h * w))
            img = x[i].clone() if mode == "deletion" else base[i].clone()
            src = base[i] if mode == "deletion" else x[i]
            for p in order[:m]:
                img[:, p // w, p % w] = src[:, p // w, p % w]
            scores[i, t] = float(model(img[None])[0, 0])
    fr = np.linspace(0, 1, n_steps + 1)
    auc = [
        sum((s[t] + s[t + 1]) / 2 * (fr[t + 1] - fr[t]) for t in range(n_steps))
        for s in scores
    ]
    return scores, np.array(auc)


@pytest.fixture
def problem():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 5, 5, generator=g, dtype=torch.float64)
    w = torch.randn(1, 2, 5, 5, generator=g, dtype=torch.float64)
    return x, w, PixelLinear(w)


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
def test_curve_matches_loop_oracle(problem, mode):
    x, w, model = problem
    g = torch.Generator().manual_seed(1)
    maps = torch.rand(3, 5, 5, generator=g, dtype=torch.float64)
    maps[1] = torch.round(maps[1] * 2)  # ties: broken by pixel index
    fn = deletion_curve if mode == "deletion" else insertion_curve
    res = fn(model, x, maps, baseline="mean", n_steps=4)
    base = make_baseline(x, "mean")
    scores, auc = oracle_curve(model, x, maps, base, 4, mode)
    np.testing.assert_allclose(res.scores.numpy(), scores, rtol=1e-10)
    np.testing.assert_allclose(res.auc.numpy(), auc, rtol=1e-10)
    assert res.fractions.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    # both ends: the image and the baseline
    ends = (model(x)[:, 0], model(base)[:, 0])
    first, last = ends if mode == "deletion" else ends[::-1]
    np.testing.assert_allclose(res.scores[:, 0].numpy(), first.numpy())
    np.testing.assert_allclose(res.scores[:, -1].numpy(), last.numpy())


def test_true_contribution_map_beats_random_map(problem):
    x, w, model = problem
    base = make_baseline(x, 0.0)
    true_map = (w * (x - base)).sum(dim=1)  # each pixel's exact contribution
    g = torch.Generator().manual_seed(2)
    for seed in range(3):
        rand_map = torch.rand(3, 5, 5, generator=g, dtype=torch.float64)
        d_true = deletion_curve(model, x, true_map, baseline=0.0, n_steps=25).auc
        d_rand = deletion_curve(model, x, rand_map, baseline=0.0, n_steps=25).auc
        i_true = insertion_curve(model, x, true_map, baseline=0.0, n_steps=25).auc
        i_rand = insertion_curve(model, x, rand_map, baseline=0.0, n_steps=25).auc
        assert bool((d_true < d_rand).all()), seed
        assert bool((i_true > i_rand).all()), seed
    # the inverted map is the worst ordering
    d_inv = deletion_curve(model, x, -true_map, baseline=0.0, n_steps=25).auc
    assert bool((d_inv > d_rand).all())


def test_targets_batching_and_low_resolution_maps(problem):
    x, w, _ = problem
    model = PixelLinear(w, two=True)
    g = torch.Generator().manual_seed(3)
    small = torch.rand(3, 1, 3, 3, generator=g, dtype=torch.float64)
    ref = deletion_curve(model, x, small, target=[0, 1, 0], baseline="blur", n_steps=5)
    again = deletion_curve(
        model,
        x,
        small,
        target=torch.tensor([0, 1, 0]),
        baseline="blur",
        n_steps=5,
        internal_batch_size=4,
    )
    np.testing.assert_allclose(ref.scores.numpy(), again.scores.numpy(), rtol=1e-12)
    up = nn.functional.interpolate(small, size=(5, 5), mode="bilinear")
    same = deletion_curve(model, x, up, target=[0, 1, 0], baseline="blur", n_steps=5)
    np.testing.assert_allclose(ref.scores.numpy(), same.scores.numpy(), rtol=1e-12)
    # target 1 is -2 times target 0
    t0 = deletion_curve(model, x, small, target=0, baseline="blur", n_steps=5)
    np.testing.assert_allclose(ref.scores[1].numpy(), -2 * t0.scores[1].numpy())
    # channel maps are summed
    two_ch = torch.cat([small, small], dim=1)
    ch = deletion_curve(model, x, two_ch, target=[0, 1, 0], baseline="blur", n_steps=5)
    np.testing.assert_allclose(ref.scores.numpy(), ch.scores.numpy(), rtol=1e-12)


def test_baselines():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(2, 3, 16, 16, generator=g)
    mean = make_baseline(x, "mean")
    assert torch.allclose(mean[:, :, 3, 7], x.mean(dim=(2, 3)))
    blur = make_baseline(x, "blur")  # sigma = 16/16 = 1, kernel 7
    assert torch.allclose(blur, gaussian_blur(x, [7, 7], [1.0, 1.0]))
    const = torch.full((1, 3, 4, 4), 0.3)
    assert torch.allclose(make_baseline(const, "blur", blur_sigma=5.0), const)
    assert make_baseline(x, torch.zeros(3, 1, 1)).abs().max().item() == 0.0
    with pytest.raises(ValueError, match="baseline"):
        make_baseline(x, "noise")
    with pytest.raises(ValueError, match="baseline"):
        make_baseline(x, torch.zeros(5))
    with pytest.raises(ValueError, match="blur_sigma"):
        make_baseline(x, "blur", blur_sigma=0.0)


def test_concept_level_with_xfeature_model():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2)
    )
    x = torch.rand(4, 3, 8, 8)
    net(x)
    srae = SRAE(8, config=SRAEConfig(n_concepts=3, hidden_sizes=(6, 5))).eval()
    xm = XFeatureModel(net, net[1], srae)
    maps = torch.rand(4, 3, 4, 4)[:, 1]
    res = deletion_curve(xm, x, maps, target=1, baseline="mean", n_steps=4)
    with torch.no_grad():
        assert torch.allclose(res.scores[:, 0], xm(x)[:, 1])
        assert torch.allclose(res.scores[:, -1], xm(make_baseline(x, "mean"))[:, 1])


def test_argument_errors(problem):
    x, w, model = problem
    maps = torch.rand(3, 5, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="attributions"):
        deletion_curve(model, x, maps[:2])
    with pytest.raises(ValueError, match="inputs"):
        deletion_curve(model, x[0], maps)
    with pytest.raises(ValueError, match="n_steps"):
        deletion_curve(model, x, maps, n_steps=0)
    with pytest.raises(TypeError, match="forward_func"):
        insertion_curve("model", x, maps)
    with pytest.raises(ValueError, match="target"):
        deletion_curve(PixelLinear(w, two=True), x, maps)
    with pytest.raises(ValueError, match="target"):
        deletion_curve(PixelLinear(w, two=True), x, maps, target=2)
    with pytest.raises(ValueError, match="target"):
        deletion_curve(PixelLinear(w, two=True), x, maps, target=[0, 1])
