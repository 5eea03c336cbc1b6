"""The Displays built from a real (tiny) fitted SRAEAttribution."""

from __future__ import annotations

import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from captum_srae import SRAEAttribution, SRAEConfig
from captum_srae.visualization import (
    ConceptGalleryDisplay,
    ExplanationDisplay,
    ExplanationGridDisplay,
    FaithfulnessDisplay,
    TrainingCurvesDisplay,
    render,
    write_report,
)

CFG = SRAEConfig(
    n_concepts=3, hidden_sizes=(16, 8), max_epochs=4, pretrain_epochs=1, retune_rounds=1
)


@pytest.fixture(scope="module")
def fitted() -> tuple[SRAEAttribution, torch.Tensor]:
    torch.manual_seed(0)
    net = nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(3, 8, 3, padding=1),
            relu=nn.ReLU(),
            conv2=nn.Conv2d(8, 16, 3, padding=1),
            relu2=nn.ReLU(),
            gap=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(16, 2),
        )
    ).eval()
    x = torch.rand(80, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sa = SRAEAttribution(net, "relu2", config=CFG)
        sa.fit(x, target=1, show_progress=False)
    return sa, x


def test_displays_from_a_fitted_explainer(fitted, tmp_path) -> None:
    sa, x = fitted
    one = ExplanationDisplay.from_explainer(sa, x[:4], target=1, index=2).plot()
    assert len(one.ax_) == 1 + 3
    c = sa.explain(x[:4], 1).contributions[2].numpy()
    np.testing.assert_array_equal(one.contributions, c)
    order = np.argsort(-c, kind="stable").tolist()
    assert [int(t.split()[0][1:]) for t in one.titles()] == order
    assert [ax.get_title() for ax in one.ax_[1:]] == one.titles()
    grid = ExplanationGridDisplay.from_explainer(sa, x[:2], 1).plot()
    assert grid.ax_.shape == (2, 4)
    gallery = ConceptGalleryDisplay.from_explainer(sa, x[:10], 1, k=3).plot()
    assert gallery.ax_.shape == (3, 3)
    scatter = FaithfulnessDisplay.from_explainer(sa, x[:20], 1).plot()
    ex = sa.explain(x[:20], 1)
    assert scatter.r2_ == pytest.approx(render.r2(ex.model_score, ex.xnn_score))
    curves = TrainingCurvesDisplay.from_explainer(sa, 1).plot()
    assert curves.x.size == len(sa.history_[1].epochs) > 0
    page = write_report(
        tmp_path / "r",
        explanation_figures=[one, grid],
        gallery=gallery,
        curves=curves,
        scatter=scatter,
        metrics={"val_r2": sa.history_[1].val_r2},
    )
    assert page.exists() and len(list(page.parent.glob("*.png"))) == 5
