"""Display objects under Agg: panel counts, titles, image data, saving."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from matplotlib import pyplot as plt
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from PIL import Image

from captum_srae import TrainingHistory
from captum_srae.visualization import (
    ConceptGalleryDisplay,
    ExplanationDisplay,
    ExplanationGridDisplay,
    FaithfulnessDisplay,
    TrainingCurvesDisplay,
    render,
)

TITLE = re.compile(r"#(\d+) r=([+-][\d.]+) \(([+-][\d.e+-]+)\)")


def parse_titles(axes) -> list[tuple[int, float, float]]:
    out = []
    for ax in axes:
        m = TITLE.fullmatch(ax.get_title())
        assert m is not None, ax.get_title()
        out.append((int(m[1]), float(m[2]), float(m[3])))
    return out


def captum_grey(image: np.ndarray) -> np.ndarray:
    """The grey background Captum's ``blended_heat_map`` draws."""
    return np.mean(np.clip((image * 255).astype(int), 0, 255), axis=2)


def test_explanation_display_panels_titles_and_data(explanation) -> None:
    ex, images = explanation
    disp = ExplanationDisplay.from_explanation(ex, images, index=0).plot()
    assert disp.plot(ax=None) is not None and plt.get_fignums() == []
    assert isinstance(disp.figure_, Figure)
    assert len(disp.ax_) == 1 + 3 and len(disp.figure_.axes) == 1 + 3
    titles = parse_titles(disp.ax_[1:])
    assert [t[0] for t in titles] == [2, 0, 1]
    assert [t[2] for t in titles] == sorted((t[2] for t in titles), reverse=True)
    assert [t[1] for t in titles] == [1.0, 0.25, -0.5]
    colours = [to_rgb(ax.title.get_color()) for ax in disp.ax_[1:]]
    assert colours == [render.WARM, render.WARM, render.COOL]
    header = disp.figure_.get_suptitle()
    assert "model score 1.85" in header and "XNN score 1.75" in header
    assert "class 0" in header
    image = render.to_hwc(images[0])
    np.testing.assert_array_equal(disp.ax_[0].images[0].get_array(), image)
    for ax, k in zip(disp.ax_[1:], [2, 0, 1], strict=True):
        grey, heat = ax.images
        np.testing.assert_array_equal(grey.get_array(), captum_grey(image))
        np.testing.assert_array_equal(
            heat.get_array(), render.normalize_map(ex.heatmaps[0, k])
        )
    assert [ax.images[1].get_cmap().name for ax in disp.ax_[1:]] == [
        "Reds",
        "Reds",
        "Blues",
    ]


def test_all_zero_map_draws_the_image_with_a_note(explanation) -> None:
    ex, images = explanation
    ex.heatmaps[0, 1] = 0.0
    disp = ExplanationDisplay.from_explanation(ex, images, 0).plot()
    blank = disp.ax_[3]  # x-feature 1 has the smallest contribution
    assert parse_titles([blank])[0][0] == 1
    assert len(blank.images) == 1 and [t.get_text() for t in blank.texts] == [
        "all-zero map"
    ]
    np.testing.assert_array_equal(blank.images[0].get_array(), render.to_hwc(images[0]))


def test_plot_into_given_axes_and_errors(explanation) -> None:
    ex, images = explanation
    fig = Figure()
    axes = fig.subplots(1, 4)
    disp = ExplanationDisplay.from_explanation(ex, images, 1).plot(ax=axes)
    assert disp.figure_ is fig and list(disp.ax_) == list(axes)
    with pytest.raises(ValueError, match="4 matplotlib Axes"):
        disp.plot(ax=axes[:2])
    with pytest.raises(ValueError, match="one contribution"):
        ExplanationDisplay(images[0], ex.heatmaps[0], [1.0, 2.0])


def test_save_png_and_svg(explanation, tmp_path) -> None:
    ex, images = explanation
    disp = ExplanationDisplay.from_explanation(ex, images, 0)
    png = disp.save(tmp_path / "a.png")  # plots on demand
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as a, Image.open(disp.save(tmp_path / "b.png")) as b:
        assert a.size == b.size == (800, 230)
    svg = disp.save(tmp_path / "a.svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg
    with pytest.raises(ValueError, match="save supports"):
        disp.save(tmp_path / "a.jpg")


def test_grid_rows(explanation) -> None:
    ex, images = explanation
    grid = ExplanationGridDisplay.from_explanation(ex, images, title="three").plot()
    assert grid.ax_.shape == (3, 4) and len(grid.figure_.axes) == 12
    for i, row in enumerate(grid.ax_):
        c = ex.contributions[i].tolist()
        assert [t[0] for t in parse_titles(row[1:])] == sorted(
            range(3), key=lambda k: -c[k]
        )
        assert "model score" in row[0].get_title()
    sub = ExplanationGridDisplay.from_explanation(ex, images, [2, 0]).plot()
    assert sub.ax_.shape == (2, 4)


@pytest.mark.parametrize(
    ("by", "expected"),
    [("value", [[1, 2], [0, 2], [0, 1]]), ("contribution", [[1, 2], [1, 2], [0, 1]])],
)
def test_concept_gallery(explanation, by, expected) -> None:
    ex, images = explanation
    gal = ConceptGalleryDisplay.from_explanation(ex, images, by=by, k=2).plot()
    assert gal.indices_.tolist() == expected
    assert gal.ax_.shape == (3, 2)
    for row, concept in enumerate(range(3)):
        assert gal.ax_[row, 0].get_ylabel() == f"x-feature {concept}"
        for col, i in enumerate(expected[row]):
            ax = gal.ax_[row, col]
            assert ax.get_title().startswith(f"#{i}: ")
            np.testing.assert_array_equal(
                ax.images[1].get_array(), render.normalize_map(ex.heatmaps[i, concept])
            )
    one = ConceptGalleryDisplay.from_explanation(ex, images, k=9, concepts=[1]).plot()
    assert one.ax_.shape == (1, 3)
    with pytest.raises(ValueError, match="by must be"):
        ConceptGalleryDisplay.from_explanation(ex, images, by="size")


def test_training_curves() -> None:
    epochs = [
        {
            "round": r,
            "epoch": e,
            "total": 3.0 - e + r,
            "prediction": 1.0 / e,
            "reconstruction": 0.5,
            "pull_away": 0.1,
            "val_r2": 0.5 + 0.1 * e,
        }
        for r in range(2)
        for e in range(1, 4)
    ]
    disp = TrainingCurvesDisplay.from_history(TrainingHistory(epochs=epochs)).plot()
    losses, r2_ax = disp.ax_
    assert len(disp.figure_.axes) == 2
    assert set(disp.lines_) == {
        "total",
        "prediction",
        "reconstruction",
        "pull_away",
    } | {"val_r2"}
    np.testing.assert_array_equal(disp.lines_["total"].get_xdata(), np.arange(1, 7))
    np.testing.assert_array_equal(
        disp.lines_["total"].get_ydata(), [2.0, 1.0, 0.0, 3.0, 2.0, 1.0]
    )
    assert losses.get_yscale() == "linear"  # a zero loss: no log scale
    np.testing.assert_allclose(disp.lines_["val_r2"].get_ydata(), [0.6, 0.7, 0.8] * 2)
    boundary = [ln for ln in r2_ax.lines if ln.get_linestyle() == "--"]
    assert len(boundary) == 1 and boundary[0].get_xdata()[0] == 3.5
    only = TrainingCurvesDisplay.from_history({"epochs": epochs}, terms=["prediction"])
    assert only.plot().ax_[0].get_yscale() == "log"


def test_faithfulness_scatter(explanation) -> None:
    ex, _ = explanation
    disp = FaithfulnessDisplay.from_explanation(ex, title="class 0").plot()
    assert disp.r2_ == pytest.approx(render.r2(ex.model_score, ex.xnn_score))
    points = disp.ax_.collections[0].get_offsets()
    np.testing.assert_allclose(points, torch.stack([ex.model_score, ex.xnn_score], 1))
    identity = disp.ax_.lines[0]
    np.testing.assert_array_equal(identity.get_xdata(), identity.get_ydata())
    assert f"R² = {disp.r2_:.3f}" in disp.ax_.get_title()
    with pytest.raises(ValueError, match="differ"):
        FaithfulnessDisplay([1.0, 2.0], [1.0])


def test_tiny_maps_draw_without_warnings(explanation) -> None:
    ex, images = explanation
    ex.heatmaps *= 1e-9  # below Captum's warning threshold of 1e-5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        disp = ExplanationDisplay.from_explanation(ex, images, 0).plot()
    np.testing.assert_array_equal(
        disp.ax_[1].images[1].get_array(), render.normalize_map(ex.heatmaps[0, 2])
    )
