"""Tests of the demo: the procedural data, the CNN and the demo run.

The data set is in ``captum_srae.datasets``, the CNN in ``captum_srae.models``
and the pipeline in ``captum_srae.demo``.

The end-to-end demo (quick mode) runs once, in a module-scoped fixture.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch

import captum_srae.demo as demo_module
from captum_srae import SRAE, r2_score
from captum_srae.cli import main
from captum_srae.datasets import make_shapes_dataset
from captum_srae.demo import (
    CLASS_NAMES,
    PART_NAMES,
    QUICK,
    run_demo,
    shapes_demo_data,
)
from captum_srae.models import SmallCNN, accuracy, train_classifier


def test_demo_reexports_the_moved_names() -> None:
    assert demo_module.make_shapes_dataset is make_shapes_dataset
    assert demo_module.SmallCNN is SmallCNN
    assert demo_module.accuracy is accuracy
    assert demo_module.train_classifier is train_classifier
    moved = {"make_shapes_dataset", "SmallCNN", "accuracy", "train_classifier"}
    assert moved <= set(demo_module.__all__)


# ------------------------------------------------------------------ dataset
def test_dataset_is_deterministic() -> None:
    a = make_shapes_dataset(300, seed=7, return_masks=True)
    b = make_shapes_dataset(300, seed=7, return_masks=True)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    c = make_shapes_dataset(300, seed=8, return_masks=True)
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[1], c[1])


def test_dataset_does_not_touch_global_rng() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make_shapes_dataset(50, seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_dataset_shapes_and_range() -> None:
    n = 1100  # more than one chunk of 1024
    x, y, masks = make_shapes_dataset(n, seed=0, return_masks=True)
    assert x.shape == (n, 3, 32, 32) and x.dtype == torch.float32
    assert y.shape == (n,) and y.dtype == torch.int64
    assert masks.shape == (n, 2, 32, 32) and masks.dtype == torch.bool
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert set(y.tolist()) == {0, 1, 2, 3}
    counts = torch.bincount(y, minlength=4).float() / n
    assert bool((counts > 0.18).all()), counts  # each class about a quarter
    assert len(make_shapes_dataset(5, seed=0)) == 2
    assert make_shapes_dataset(4, seed=0, size=48)[0].shape == (4, 3, 48, 48)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"n": 0}, ValueError),
        ({"n": 4, "size": 8}, ValueError),
        ({"n": 4, "seed": -1}, ValueError),
        ({"n": 2.5}, TypeError),
        ({"n": True}, TypeError),
    ],
)
def test_dataset_rejects_bad_arguments(kwargs: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        make_shapes_dataset(**kwargs)


def _bbox(mask: torch.Tensor) -> tuple[int, int]:
    """Height and width of the bounding box of a nonempty mask ``(H, W)``."""
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    cols = torch.nonzero(mask.any(dim=0)).flatten()
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def _assert_filled_disc(mask: torch.Tensor) -> None:
    """A filled disc: painted within r - 0.8 of the centroid, nothing beyond
    r + 0.4 (r from the area), and not a full square box."""
    yy, xx = torch.meshgrid(
        torch.arange(mask.shape[0]), torch.arange(mask.shape[1]), indexing="ij"
    )
    cy, cx = yy[mask].double().mean(), xx[mask].double().mean()
    dist = ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()
    r = math.sqrt(int(mask.sum()) / math.pi)
    assert 2.5 <= r <= 5.5
    assert bool(mask[dist <= r - 0.8].all())
    assert not bool(mask[dist > r + 0.4].any())
    h, w = _bbox(mask)
    assert abs(h - w) <= 1 and int(mask.sum()) / (h * w) < 0.95


def test_labels_match_the_painted_parts() -> None:
    """Pixel-level check: the label says which of a disc and a bar are drawn."""
    x, y, masks = make_shapes_dataset(400, seed=3, return_masks=True)
    has_disc = masks[:, 0].flatten(1).any(dim=1)
    has_bar = masks[:, 1].flatten(1).any(dim=1)
    assert torch.equal(y, 2 * has_disc.long() + has_bar.long())
    assert not bool((masks[:, 0] & masks[:, 1]).any())  # the parts never overlap
    both = torch.nonzero(y == 3).flatten()
    assert len(both) > 50
    for i in both.tolist():
        disc, bar = masks[i, 0], masks[i, 1]
        _assert_filled_disc(disc)
        # a horizontal bar: a full rectangle, much wider than high
        h, w = _bbox(bar)
        assert int(bar.sum()) == h * w and w >= 3 * h and h <= 4
        # each part is painted in one flat colour (up to the pixel noise)
        for mask in (disc, bar):
            pixels = x[i][:, mask]
            assert float(pixels.std(dim=1).max()) < 0.08
    for i in torch.nonzero(y == 0).flatten().tolist():
        assert not bool(masks[i].any())


def test_dataset_is_fast() -> None:
    make_shapes_dataset(10)  # warm-up
    start = time.perf_counter()
    make_shapes_dataset(4000, seed=1)
    assert time.perf_counter() - start < 4.0  # about 0.2 s on two idle cores


# -------------------------------------------------------------- classifier
def test_small_cnn() -> None:
    model = SmallCNN()
    assert model(torch.rand(5, 3, 32, 32)).shape == (5, 4)
    assert model(torch.rand(2, 3, 48, 48)).shape == (2, 4)
    assert 20_000 <= sum(p.numel() for p in model.parameters()) <= 40_000
    names = dict(model.named_children())
    assert list(names) == ["conv1", "conv2", "conv3", "pool", "fc"]
    assert isinstance(model.pool, torch.nn.AdaptiveAvgPool2d)


def test_train_classifier_returns_training_accuracy() -> None:
    x, y = make_shapes_dataset(128, seed=2)
    torch.manual_seed(0)
    model = SmallCNN()
    acc = train_classifier(model, x, y, epochs=1, seed=0, show_progress=False)
    assert acc == accuracy(model, x, y)
    assert 0.0 <= acc <= 1.0
    assert not model.training
    with pytest.raises(ValueError, match="epochs"):
        train_classifier(model, x, y, epochs=0, show_progress=False)
    with pytest.raises(ValueError, match="same length"):
        train_classifier(model, x, y[:5], epochs=1, show_progress=False)


# -------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("demo") / "explainer"
    summary = run_demo(quick=True, show_progress=False, out=out)
    return summary, out


def test_demo_summary(demo: tuple[dict[str, Any], Path]) -> None:
    summary, out = demo
    assert json.loads(json.dumps(summary)) == summary  # JSON-serialisable
    assert summary["mode"] == "quick" and summary["seed"] == 0
    assert summary["out"] == str(out)
    data = summary["data"]
    assert (data["n_train"], data["n_test"]) == (QUICK.n_train, QUICK.n_test)
    assert data["part_names"] == list(PART_NAMES)
    assert data["class_names"] == list(CLASS_NAMES)
    assert summary["cnn"]["test_accuracy"] >= 0.9
    assert summary["explainer"]["layer"] == "conv3"
    assert summary["explainer"]["target"] == 3
    assert summary["explainer"]["in_features"] == 64
    timings = summary["timings"]
    steps = ["data", "cnn", "activations", "srae_fit", "evaluation"]
    assert all(timings[k] >= 0 for k in steps)
    assert timings["total"] == pytest.approx(sum(timings[k] for k in steps))


def test_demo_faithfulness(demo: tuple[dict[str, Any], Path]) -> None:
    faith = demo[0]["faithfulness"]
    assert faith["r2"] >= 0.9
    assert faith["r2"] > faith["baseline_r2"]
    assert faith["rmse"] < faith["baseline_rmse"]
    # rmse and r2 describe the same residuals: rmse^2 = (1 - r2) * var
    n = demo[0]["data"]["n_test"]
    var = faith["score_std"] ** 2 * (n - 1) / n
    assert faith["rmse"] == pytest.approx(math.sqrt((1 - faith["r2"]) * var))


def test_demo_contributions(demo: tuple[dict[str, Any], Path]) -> None:
    summary = demo[0]
    contrib = summary["contributions"]
    k = summary["explainer"]["n_concepts"]
    assert len(contrib["mean"]) == len(contrib["share"]) == k
    assert sum(contrib["share"]) == pytest.approx(1.0)
    assert all(s >= 0 for s in contrib["share"])
    assert set(contrib["part_effect"]) == set(PART_NAMES)
    groups = contrib["by_parts"]
    assert list(groups) == ["none", "disc", "bar", "disc+bar"]
    assert sum(g["n"] for g in groups.values()) == summary["data"]["n_test"]
    for g in groups.values():
        # mean contributions + bias = mean reconstructed score, in every group
        assert sum(g["mean"]) + contrib["bias"] == pytest.approx(
            g["xnn_score"], abs=1e-4
        )
    # the class-3 score is highest on the images that hold both parts
    both = groups["disc+bar"]["model_score"]
    assert all(
        both > g["model_score"] for key, g in groups.items() if key != "disc+bar"
    )


def test_demo_saved_explainer(demo: tuple[dict[str, Any], Path]) -> None:
    summary, out = demo
    assert json.loads((out / "summary.json").read_text()) == summary
    config = json.loads((out / "config.json").read_text())
    assert config["metadata"]["demo"]["explainer"]["layer"] == "conv3"
    srae = SRAE.load(out)
    saved = safetensors.torch.load_file(str(out / "test_data.safetensors"))
    z, y, y_hat = saved["z"], saved["y"], saved["y_hat"]
    assert z.shape == (QUICK.n_test, 64) and y.shape == (QUICK.n_test, 1)
    with torch.no_grad():
        e = srae.encode(z)
        pred = srae.predict(e)
        contributions = srae.contributions(e)
    # the loaded explainer gives the predictions of the fitted one
    torch.testing.assert_close(pred, y_hat, rtol=0, atol=1e-5)
    torch.testing.assert_close(e, saved["e"], rtol=0, atol=1e-5)
    # contributions + bias = predicted score
    torch.testing.assert_close(
        contributions.sum(dim=-1) + srae.bias, pred, rtol=0, atol=1e-4
    )
    assert r2_score(y, pred) == pytest.approx(summary["faithfulness"]["r2"], abs=1e-5)


def test_demo_saved_cnn_reproduces_scores(demo: tuple[dict[str, Any], Path]) -> None:
    summary, out = demo
    model = SmallCNN()
    model.load_state_dict(safetensors.torch.load_file(str(out / "cnn.safetensors")))
    model.eval()
    data = shapes_demo_data(QUICK.n_train, QUICK.n_test, seed=summary["seed"])
    saved = safetensors.torch.load_file(str(out / "test_data.safetensors"))
    assert torch.equal(saved["labels"], data.y_test)
    with torch.no_grad():
        scores = model(data.x_test)[:, 3:4]
    torch.testing.assert_close(scores, saved["y"], rtol=1e-4, atol=1e-4)
    assert accuracy(model, data.x_test, data.y_test) == pytest.approx(
        summary["cnn"]["test_accuracy"]
    )


def test_cli_demo_prints_table(
    demo: tuple[dict[str, Any], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``demo --quick`` via :func:`main`, reusing the fixture's run."""
    summary = demo[0]
    calls: list[dict[str, Any]] = []

    def fake_run_demo(**kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        return summary

    monkeypatch.setattr("captum_srae.demo.run_demo", fake_run_demo)
    out = tmp_path / "explainer"
    assert main(["demo", "--quick", "--no-progress", "--out", str(out)]) == 0
    assert calls == [
        {"quick": True, "seed": 0, "out": str(out), "show_progress": False}
    ]
    text = capsys.readouterr().out
    assert "quick mode, seed 0" in text
    assert f"{summary['faithfulness']['r2']:.4f}" in text
    assert f"{summary['faithfulness']['baseline_r2']:.4f}" in text
    assert "test accuracy" in text and "PCA (5 components)" in text
    for k in range(1, summary["explainer"]["n_concepts"] + 1):
        assert f"\n  x{k} " in text
    assert "disc+bar" in text and "+disc" in text and "+bar" in text
    assert "Timings" in text and summary["out"] in text


def test_run_demo_rejects_bad_arguments_before_working(tmp_path: Path) -> None:
    start = time.perf_counter()
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(ValueError, match="non-empty folder"):
        run_demo(quick=True, out=tmp_path, show_progress=False)
    assert (tmp_path / "keep.txt").read_text() == "precious"
    with pytest.raises(ValueError, match="not a directory"):
        run_demo(quick=True, out=tmp_path / "keep.txt", show_progress=False)
    with pytest.raises(ValueError, match="seed"):
        run_demo(quick=True, seed=-1, show_progress=False)
    with pytest.raises(TypeError, match="seed"):
        run_demo(quick=True, seed="1", show_progress=False)  # type: ignore[arg-type]
    assert time.perf_counter() - start < 5.0
