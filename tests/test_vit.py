"""The demo's small ViT (issue #17): its trainer and cache, the parts problem
on it, and ``captum-srae fit/explain/report`` on a ViT given by
``module:callable`` with a weights file."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from captum_srae import fit_srae
from captum_srae.apps.cli import main
from captum_srae.core.config import SRAEConfig
from captum_srae.datasets import models as models_module
from captum_srae.datasets.vit import (
    VIT_LAYER,
    VIT_MAP_METHOD,
    VIT_POOLING,
    parts_vit,
    train_or_load_vit,
)
from captum_srae.evaluation.study import PartsProblem

TINY_TRAIN = {"n_train": 32, "epochs": 1, "size": 32, "warmup_epochs": 0}
TINY_SRAE = {
    "n_concepts": 3,
    "hidden_sizes": [16, 8],
    "pretrain_epochs": 1,
    "max_epochs": 3,
    "patience": 2,
    "retune_rounds": 1,
    "batch_size": 16,
}


def _no_training(*args, **kwargs):
    raise AssertionError("train_classifier must not run on a cache hit")


def test_parts_vit_layer_is_a_token_layer() -> None:
    torch.manual_seed(0)
    net = parts_vit().eval()
    out: list[torch.Tensor] = []
    layer = net.get_submodule(VIT_LAYER)
    handle = layer.register_forward_hook(lambda _m, _i, o: out.append(o))
    with torch.no_grad():
        scores = net(torch.rand(2, 3, 64, 64))
    handle.remove()
    assert scores.shape == (2, 4)
    assert out[0].shape == (2, 1 + 8 * 8, 64)  # class token + 8x8 patches
    assert VIT_POOLING == "cls"
    # the stem: (width, stride) (16, 2), (32, 1), (32, 2), (64, 1), (64, 2)
    convs = [m for m in net.conv_proj.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.stride[0]) for c in convs[:-1]] == [
        (16, 2), (32, 1), (32, 2), (64, 1), (64, 2)
    ]  # fmt: skip
    assert convs[-1].kernel_size == (1, 1)
    with pytest.raises(ValueError, match="image_size"):
        parts_vit(image_size=60)
    with pytest.raises(TypeError, match="num_layers"):
        parts_vit(num_layers=2.0)  # type: ignore[arg-type]


def test_vit_cache_miss_then_hit(monkeypatch, tmp_path: Path) -> None:
    model, info = train_or_load_vit(
        cache_dir=tmp_path, show_progress=False, **TINY_TRAIN
    )
    assert not info["cached"] and not model.training
    assert info["path"].is_file() and info["path"].parent == tmp_path
    assert info["path"].name.startswith("parts_vit-")
    # training happens in the models module's shared cache-or-train path
    monkeypatch.setattr(models_module, "train_classifier", _no_training)
    again, info2 = train_or_load_vit(
        cache_dir=tmp_path, show_progress=False, **TINY_TRAIN
    )
    assert info2["cached"] and info2["key"] == info["key"]
    assert info2["train_accuracy"] == pytest.approx(info["train_accuracy"])
    for (k, a), (k2, b) in zip(
        model.state_dict().items(), again.state_dict().items(), strict=True
    ):
        assert k == k2 and torch.equal(a, b)
    assert not again.training
    with pytest.raises(ValueError, match="size"):
        train_or_load_vit(size=60, cache_dir=tmp_path)


def test_parts_problem_on_the_vit_returns_finite_metrics(tmp_path: Path) -> None:
    problem = PartsProblem(
        target=3,
        n_fit=64,
        n_test=32,
        n_maps=32,
        cnn={**TINY_TRAIN, "cache_dir": str(tmp_path)},
        model="vit",
    )
    assert problem.layer == VIT_LAYER and problem.heatmap_layer is None
    assert problem.map_method == VIT_MAP_METHOD == "InputXGradient"
    assert problem.smoothing == 0.0  # the CNN's blur is not the ViT's
    # an explicit token heatmap layer keeps Grad-CAM, as before PARTS_MAPS
    other = PartsProblem(model="vit", heatmap_layer="encoder.layers.encoder_layer_0")
    assert (other.map_method, other.smoothing) == ("gradcam", 0.0)
    data = problem.load()
    assert data.z_train.shape == (64, 64)  # the class token
    assert data.truth["masks"].shape == (32, 4, 32, 32)
    config = SRAEConfig(**TINY_SRAE, pooling="cls")
    srae, _ = fit_srae(data.z_train, data.y_train, config, show_progress=False)
    s = problem.score(srae, data)
    assert {"class_agreement", "class_pointing", "parts_own"} <= set(s)
    assert all(math.isfinite(v) for v in s.values())
    avg, _ = fit_srae(
        data.z_train, data.y_train, SRAEConfig(**TINY_SRAE), show_progress=False
    )
    with pytest.raises(ValueError, match="pooling"):
        problem.score(avg, data)
    with pytest.raises(ValueError, match="model"):
        PartsProblem(model="resnet")
    with pytest.raises(ValueError, match="its name in captum.attr"):
        PartsProblem(map_method="InputXGradiant")  # misspelt: before any fit
    with pytest.raises(ValueError, match="smoothing must be a finite"):
        PartsProblem(smoothing=-1.0)


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_cli_fit_explain_report_on_a_vit(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    colours = {"blue": (30, 60, 220), "red": (220, 40, 40)}
    for name, colour in colours.items():
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(6):
            img = rng.integers(90, 140, size=(64, 64, 3)).astype(np.uint8)
            r0, c0 = rng.integers(2, 50, size=2)
            img[r0 : r0 + 12, c0 : c0 + 12] = colour
            Image.fromarray(img).save(tmp_path / "images" / name / f"{i}.png")
    torch.manual_seed(0)
    weights = tmp_path / "vit.pt"
    torch.save(parts_vit(num_classes=2).state_dict(), weights)
    fitted, explained = tmp_path / "fitted", tmp_path / "explained"
    config = json.dumps({**TINY_SRAE, "pooling": "cls"})
    code, stdout, stderr = _run(
        ["fit", "--model", "captum_srae.datasets.vit:parts_vit", "--num-classes", "2"]
        + ["--weights", str(weights), "--data", str(tmp_path / "images")]
        + ["--layer", VIT_LAYER, "--target", "red", "--image-size", "64"]
        + ["--config", config, "--device=cpu", "--no-progress", "--out", str(fitted)]
    )
    assert code == 0, stderr
    assert "65 tokens" in stdout and "token pooling" not in stderr
    record = json.loads((fitted / "fit.json").read_text())
    assert record["layer_shape"] == [65, 64] and record["config"]["pooling"] == "cls"
    image = str(tmp_path / "images" / "red" / "0.png")
    code, stdout, stderr = _run(
        ["explain", "--explainer", str(fitted), "--images", image]
        + ["--no-progress", "--out", str(explained)]
    )
    assert code == 0, stderr
    doc = json.loads((explained / "explanations.json").read_text())
    assert all(math.isfinite(v) for v in doc["images"][0]["contributions"])
    code, stdout, stderr = _run(
        ["report", "--explainer", str(fitted), "--data", str(tmp_path / "images")]
        + ["--no-progress", "--out", str(tmp_path / "report")]
    )
    assert code == 0, stderr
    assert (tmp_path / "report" / "index.html").is_file()
    # without a token pooling: a warning that "avg" averages each token
    code, _, stderr = _run(
        ["fit", "--model", "captum_srae.datasets.vit:parts_vit", "--num-classes", "2"]
        + ["--data", str(tmp_path / "images"), "--layer", VIT_LAYER, "--target", "0"]
        + ["--image-size", "64", "--config", json.dumps(TINY_SRAE), "--device=cpu"]
        + ["--no-progress", "--max-images", "8", "--out", str(tmp_path / "avg")]
    )
    assert code == 0, stderr
    assert "token pooling" in stderr and '"pooling": "cls"' in stderr
