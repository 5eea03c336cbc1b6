"""End-to-end tests of ``captum-srae fit``, ``explain`` and ``report``.

A tiny image folder (3 classes x 8 images of 32x32, each class a coloured
blob) is written with PIL, the model is a tiny CNN built by ``module:callable``
from a module written to a temporary folder (or torchvision's resnet18), and
the SRAE fit is kept tiny through ``--config``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from captum_srae import SRAEAttribution
from captum_srae.apps import common
from captum_srae.apps.cli import main
from captum_srae.datasets.folders import image_folder_dataset

MODULE = "srae_cli_tiny_models"
MODEL_SOURCE = """
import torch
from torch import nn


class TinyCNN(nn.Module):
    def __init__(self, num_classes=3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def make_net(num_classes=3):
    torch.manual_seed(7)
    return TinyCNN(num_classes)
"""
CONFIG = {
    "n_concepts": 3,
    "hidden_sizes": [16, 8],
    "pretrain_epochs": 1,
    "max_epochs": 4,
    "patience": 2,
    "retune_rounds": 1,
    "batch_size": 8,
}
COLOURS = {"blue": (30, 60, 220), "green": (40, 200, 60), "red": (220, 40, 40)}


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` with its stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def make_folder(root: Path, per_class: int = 8, size: int = 32) -> Path:
    """ImageFolder ``root/<colour>/<i>.png``: a blob of the class colour."""
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(90, 140, size=(size, size, 3)).astype(np.uint8)
            r0, c0 = rng.integers(2, size - 14, size=2)
            img[r0 : r0 + 12, c0 : c0 + 12] = colour
            Image.fromarray(img).save(root / name / f"{i}.png")
    return root


def tiny_net() -> torch.nn.Module:
    return sys.modules[MODULE].make_net()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Image folder, the tiny model's module and weights, and one fit."""
    base = tmp_path_factory.mktemp("cli_user")
    (base / "mods").mkdir()
    (base / "mods" / f"{MODULE}.py").write_text(MODEL_SOURCE)
    sys.path.insert(0, str(base / "mods"))
    try:
        net = __import__(MODULE).make_net()
        weights = base / "tiny.pt"
        torch.save(net.state_dict(), weights)
        data = make_folder(base / "images")
        saved: dict[str, Any] = {}
        original = SRAEAttribution.save

        def spy(self: SRAEAttribution, path: Any) -> None:
            saved["explainer"] = self
            original(self, path)

        out = base / "explainer"
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(SRAEAttribution, "save", spy)
            code, stdout, stderr = run_cli(
                [
                    "fit",
                    f"--model={MODULE}:make_net",
                    f"--weights={weights}",
                    f"--data={data}",
                    "--layer=features.2",
                    "--target",
                    "0",
                    "red",
                    "--image-size=32",
                    f"--config={json.dumps(CONFIG)}",
                    "--device=cpu",
                    "--no-progress",
                    f"--out={out}",
                ]
            )
        yield {
            "base": base,
            "data": data,
            "weights": weights,
            "out": out,
            "fit": (code, stdout, stderr),
            "in_memory": saved.get("explainer"),
        }
    finally:
        sys.path.remove(str(base / "mods"))
        sys.modules.pop(MODULE, None)


def folder_inputs(root: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    ds = image_folder_dataset(root, size=32)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    return x, torch.tensor(ds.targets), [p for p, _ in ds.samples]


def assert_error(result: tuple[int, str, str], *phrases: str) -> None:
    code, stdout, stderr = result
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("captum-srae: error: ")
    assert "Traceback" not in stderr and stdout == ""
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


# ------------------------------------------------------------------------ fit
def test_fit_writes_explainer_and_side_file(world: dict[str, Any]) -> None:
    code, stdout, stderr = world["fit"]
    assert code == 0, stderr
    # --no-progress: no bars; the tiny fit may warn that it was not accepted
    for line in stderr.splitlines():
        assert line.startswith("captum-srae: warning: SRAE re-tuning")
    out = world["out"]
    record = json.loads((out / "fit.json").read_text())
    # the fit command's explainer draws the default maps
    assert record["maps"] == {"map_method": "gradcam", "map_smoothing": 0.0}
    weights = world["weights"]
    assert record["model"] == {
        "spec": f"{MODULE}:make_net",
        "kind": "callable",
        "num_classes": None,
        "weights": str(weights.resolve()),
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "seed": 0,
    }
    assert record["class_names"] == ["blue", "green", "red"]
    assert record["targets"] == [0, 2]  # "red" is the third sorted folder
    assert record["n_outputs"] == 3 and record["layer"] == "features.2"
    assert record["layer_shape"] == [12, 32, 32]
    assert record["transform"]["image_size"] == 32
    assert record["transform"]["resize"] == round(32 * 256 / 224)
    assert record["data"]["n_images"] == 24
    assert record["config"]["n_concepts"] == 3
    assert record["config"]["hidden_sizes"] == [16, 8]
    for t in ("0", "2"):
        f = record["faithfulness"][t]
        assert math.isfinite(f["val_r2"]) and f["n_val"] + f["n_train"] == 24
        assert f"R^2 {f['val_r2']:.3f}" in stdout
    history = json.loads((out / "history.json").read_text())
    assert sorted(history) == ["0", "2"] and 1 <= len(history["0"]["epochs"]) <= 4
    assert str(out) in stdout


def test_saved_explainer_matches_the_fitted_one(world: dict[str, Any]) -> None:
    before = world["in_memory"]
    loaded = SRAEAttribution.load(world["out"], tiny_net())
    x, _, _ = folder_inputs(world["data"])
    for t in (0, 2):
        a = before.attribute(x[:6], target=t)
        b = loaded.attribute(x[:6], target=t)
        assert a.shape == (6, 3, 32, 32)
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(
            before.contributions(x, target=t), loaded.contributions(x, target=t)
        )


def test_recorded_transform_is_the_folder_transform(world: dict[str, Any]) -> None:
    ds = image_folder_dataset(world["data"], size=32)
    rebuilt = common.transform_from_record(common.transform_record(32))
    for i in (0, 9, 23):
        with Image.open(ds.samples[i][0]) as img:
            torch.testing.assert_close(rebuilt(img.convert("RGB")), ds[i][0])


def test_fit_torchvision_name(world: dict[str, Any], tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), weights)
    out = tmp_path / "r18"
    args = ["fit", "--model", "resnet18", "--num-classes", "3"]
    args += ["--weights", str(weights), "--data", str(world["data"])]
    args += ["--layer", "layer4", "--target", "green", "--image-size", "32"]
    args += ["--config", json.dumps(CONFIG), "--max-images", "12", "--device=cpu"]
    code, stdout, stderr = run_cli([*args, "--out", str(out)])
    assert code == 0, stderr
    assert "Collecting activations" in stderr  # progress bars are on
    record = json.loads((out / "fit.json").read_text())
    assert record["model"]["kind"] == "torchvision"
    assert record["model"]["num_classes"] == 3
    assert record["targets"] == [1] and record["layer_shape"] == [512, 1, 1]
    assert record["data"]["n_images"] == 12
    assert "layer layer4 (512 channels)" in stdout
    # a second fit into the same folder replaces the first
    code, _, stderr = run_cli([*args, "--n-concepts", "2", "--out", str(out)])
    assert code == 0, stderr
    assert json.loads((out / "fit.json").read_text())["config"]["n_concepts"] == 2


# -------------------------------------------------------------------- explain
def test_explain_writes_figures_and_numbers(world: dict[str, Any]) -> None:
    x, _, paths = folder_inputs(world["data"])
    picks = [0, 8, 16]  # one image of each class
    files = [paths[i] for i in picks]
    out = world["base"] / "explained"
    args = ["explain", "--explainer", str(world["out"]), "--images", *files]
    code, stdout, stderr = run_cli([*args, "--no-progress", "--out", str(out)])
    assert code == 0, stderr
    doc = json.loads((out / "explanations.json").read_text())
    net = tiny_net()
    net.load_state_dict(torch.load(world["weights"], weights_only=True))
    with torch.no_grad():
        scores = net(x[picks])
    assert len(doc["images"]) == 3
    for item, s, file in zip(doc["images"], scores, files, strict=True):
        assert item["image"] == str(Path(file).resolve())
        # default target: the fitted class (0 or 2) the model scores highest
        assert item["target"] == (0 if s[0] >= s[2] else 2)
        assert item["predicted_class"] == int(s.argmax())
        assert item["model_score"] == pytest.approx(float(s[item["target"]]), 1e-4)
        c = item["contributions"]
        assert len(c) == 3 and all(math.isfinite(v) for v in c)
        assert sum(c) + item["bias"] == pytest.approx(item["xnn_score"], abs=1e-4)
        ev = [e * v for e, v in zip(item["x_features"], item["weights"], strict=True)]
        assert ev == pytest.approx(c, abs=1e-5)
        with Image.open(out / item["figure"]) as png:
            assert png.format == "PNG" and png.size[0] > png.size[1] > 100
        assert str(out / item["figure"]) in stdout
    names = [item["figure"] for item in doc["images"]]
    assert names == ["0.png", "0_2.png", "0_3.png"]  # same stems, deduplicated
    # an explicit target by folder name
    code, _, stderr = run_cli(
        [*args[:-3], files[0], "--target", "red", "--out", str(out)]
    )
    assert code == 0, stderr
    doc = json.loads((out / "explanations.json").read_text())
    assert [i["target"] for i in doc["images"]] == [2]


def test_fit_and_explain_without_normalisation(
    world: dict[str, Any], tmp_path: Path
) -> None:
    """``--no-normalize``: the model sees pixels in [0, 1], at fit and explain."""
    out = tmp_path / "raw"
    args = ["fit", f"--model={MODULE}:make_net", f"--weights={world['weights']}"]
    args += [f"--data={world['data']}", "--layer=features.2", "--target", "0"]
    args += ["--image-size=32", f"--config={json.dumps(CONFIG)}", "--no-normalize"]
    code, _, stderr = run_cli([*args, "--no-progress", f"--out={out}"])
    assert code == 0, stderr
    record = json.loads((out / "fit.json").read_text())
    assert record["transform"]["mean"] == [0.0, 0.0, 0.0]
    assert record["transform"]["std"] == [1.0, 1.0, 1.0]
    ds = image_folder_dataset(world["data"], size=32, normalize=False)
    assert 0.0 <= float(ds[0][0].min()) and float(ds[0][0].max()) <= 1.0
    file = ds.samples[5][0]
    code, _, stderr = run_cli(
        ["explain", f"--explainer={out}", "--images", file, "--no-progress",
         f"--out={tmp_path / 'ex'}"]
    )  # fmt: skip
    assert code == 0, stderr
    item = json.loads((tmp_path / "ex" / "explanations.json").read_text())["images"][0]
    net = tiny_net()
    net.load_state_dict(torch.load(world["weights"], weights_only=True))
    with torch.no_grad():
        score = net(ds[5][0][None])[0, 0]
    assert item["model_score"] == pytest.approx(float(score), rel=1e-4, abs=1e-5)


# --------------------------------------------------------------------- report
def test_report_writes_html_and_metrics(world: dict[str, Any]) -> None:
    out = world["base"] / "report"
    args = ["report", "--explainer", str(world["out"]), "--data", str(world["data"])]
    code, stdout, stderr = run_cli([*args, "--no-progress", "--out", str(out)])
    assert code == 0, stderr
    index = out / "index.html"
    assert f"Report: {index}" in stdout
    page = index.read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert "gallery.png" in sources and "curves.png" in sources
    assert sum(s.startswith("explanation_") for s in sources) == 4
    for src in sources:
        assert (out / src).is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == 24
    # oracle: R^2 of the loaded explainer's XNN score on the whole folder
    loaded = SRAEAttribution.load(world["out"], tiny_net())
    x, _, _ = folder_inputs(world["data"])
    for t, name in ((0, "class 0 'blue'"), (2, "class 2 'red'")):
        ex = loaded.explain(x, target=t)
        y, y_hat = ex.model_score.double().numpy(), ex.xnn_score.double().numpy()
        sse = sum((a - b) ** 2 for a, b in zip(y, y_hat, strict=True))
        sst = sum((a - y.mean()) ** 2 for a in y)
        got = metrics["faithfulness_on_data"][name]
        assert got["r2"] == pytest.approx(1 - sse / sst, rel=1e-5, abs=1e-6)
        assert got["rmse"] == pytest.approx(math.sqrt(sse / 24), rel=1e-5)
        assert got["n"] == 24


# --------------------------------------------------------------------- errors
def fit_args(world: dict[str, Any], tmp_path: Path, **changes: str) -> list[str]:
    opts = {
        "--model": f"{MODULE}:make_net",
        "--weights": str(world["weights"]),
        "--data": str(world["data"]),
        "--layer": "features.2",
        "--target": "0",
        "--image-size": "32",
        "--config": json.dumps(CONFIG),
        "--out": str(tmp_path / "out"),
    }
    opts.update({f"--{k.replace('_', '-')}": v for k, v in changes.items()})
    return ["fit", "--no-progress", *[f"{k}={v}" for k, v in opts.items()]]


@pytest.mark.parametrize(
    ("changes", "phrases"),
    [
        ({"model": "resnet81"}, ["unknown torchvision model", "resnet18"]),
        ({"model": f"{MODULE}:make_nett"}, ["has no 'make_nett'", "make_net?"]),
        ({"model": "no_such_module_xyz:f"}, ["cannot import module"]),
        ({"weights": "/nonexistent/w.pt"}, ["weights file not found"]),
        ({"layer": "features.9"}, ["--layer", "is not a submodule"]),
        ({"target": "3"}, ["--target 3 is out of range", "3 outputs"]),
        ({"target": "gren"}, ["neither a class index", "green?"]),
        ({"data": "/nonexistent/images"}, ["does not exist"]),
        ({"config": '{"n_concept": 2}'}, ["--config", "unknown SRAEConfig"]),
        ({"config": "{not json"}, ["--config", "not valid JSON"]),
        ({"device": "gpu7"}, ["--device 'gpu7'"]),
    ],
)
def test_fit_errors(
    world: dict[str, Any], tmp_path: Path, changes: dict[str, str], phrases: list[str]
) -> None:
    assert_error(run_cli(fit_args(world, tmp_path, **changes)), *phrases)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_fit_error_cuda_unavailable(world: dict[str, Any], tmp_path: Path) -> None:
    result = run_cli(fit_args(world, tmp_path, device="cuda"))
    assert_error(result, "CUDA is not available")


def test_fit_error_weights_do_not_fit(world: dict[str, Any], tmp_path: Path) -> None:
    other = tmp_path / "five.pt"
    torch.save(sys.modules[MODULE].make_net(5).state_dict(), other)
    result = run_cli(fit_args(world, tmp_path, weights=str(other)))
    assert_error(result, "do not fit", "shape mismatch", "fc.weight")
    torch.save(torchvision.models.resnet18(num_classes=5).state_dict(), other)
    args = fit_args(world, tmp_path, weights=str(other), model="resnet18")
    result = run_cli([*args, "--num-classes=3", "--layer=layer4"])
    assert_error(result, "do not match resnet18", "fc.weight")


def test_fit_error_image_folders(world: dict[str, Any], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_error(run_cli(fit_args(world, tmp_path, data=str(empty))), "is empty")
    bad = tmp_path / "bad"
    shutil.copytree(world["data"], bad)
    (bad / "green" / "3.png").write_bytes(b"this is not a png")
    result = run_cli(fit_args(world, tmp_path, data=str(bad)))
    assert_error(result, "cannot read image", str(bad / "green" / "3.png"))
    assert not (tmp_path / "out").exists()


def test_fit_refuses_a_foreign_out_folder(
    world: dict[str, Any], tmp_path: Path
) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    result = run_cli(fit_args(world, tmp_path, out=str(foreign)))
    assert_error(result, "non-empty folder")
    assert (foreign / "thesis.tex").read_text() == "precious"


def explain_args(explainer: Path, image: str, out: Path) -> list[str]:
    return ["explain", "--explainer", str(explainer), "--images", image,
            "--no-progress", "--out", str(out)]  # fmt: skip


def test_explain_errors(world: dict[str, Any], tmp_path: Path) -> None:
    _, _, paths = folder_inputs(world["data"])
    out = tmp_path / "ex"
    missing = explain_args(tmp_path / "nothing", paths[0], out)
    assert_error(run_cli(missing), "no such folder")
    broken = tmp_path / "broken"
    shutil.copytree(world["out"], broken)
    (broken / "fit.json").write_text("{ truncated")
    assert_error(run_cli(explain_args(broken, paths[0], out)), "fit.json is corrupt")
    (broken / "fit.json").unlink()
    assert_error(run_cli(explain_args(broken, paths[0], out)), "has no fit.json")
    record = json.loads((world["out"] / "fit.json").read_text())
    for maps in ({"layer": 1}, {"map_smoothing": "x"}, {"map_smoothing": -1}):
        (broken / "fit.json").write_text(json.dumps({**record, "maps": maps}))
        assert_error(run_cli(explain_args(broken, paths[0], out)), "invalid 'maps'")
    shutil.copy(world["out"] / "fit.json", broken / "fit.json")
    (broken / "class_2" / "weights.safetensors").write_bytes(b"garbage")
    result = run_cli(explain_args(broken, paths[0], out))
    assert_error(result, "class_2")
    good = world["out"]
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8 not really a jpeg")
    assert_error(run_cli(explain_args(good, str(junk), out)), "cannot read image")
    nofile = str(tmp_path / "gone.png")
    assert_error(run_cli(explain_args(good, nofile, out)), "image file not found")
    args = [*explain_args(good, paths[0], out), "--target", "green"]
    assert_error(run_cli(args), "was not fitted", "0 'blue', 2 'red'")
    assert not out.exists()


def test_explain_error_weights_changed(world: dict[str, Any], tmp_path: Path) -> None:
    weights = tmp_path / "w.pt"
    shutil.copy(world["weights"], weights)
    fitted = tmp_path / "fitted"
    code, _, stderr = run_cli(
        fit_args(world, tmp_path, weights=str(weights), out=str(fitted))
    )
    assert code == 0, stderr
    _, _, paths = folder_inputs(world["data"])
    net = tiny_net()
    torch.nn.init.zeros_(net.fc.bias)
    torch.save(net.state_dict(), weights)
    result = run_cli(explain_args(fitted, paths[0], tmp_path / "ex"))
    assert_error(result, "changed since the explainer was fitted")
    weights.unlink()
    result = run_cli(explain_args(fitted, paths[0], tmp_path / "ex"))
    assert_error(result, "weights recorded in fit.json are missing")


def test_report_errors(world: dict[str, Any], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["report", "--explainer", str(world["out"]), "--data", str(empty)]
    assert_error(run_cli([*args, "--out", str(tmp_path / "r")]), "is empty")
    args = ["report", "--explainer", str(tmp_path), "--data", str(world["data"])]
    assert_error(run_cli([*args, "--out", str(tmp_path / "r")]), "has no fit.json")


def test_help_has_examples() -> None:
    for command in ("fit", "explain", "report"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0
        assert "examples:" in out.getvalue()
        assert f"captum-srae {command} --" in out.getvalue()


# ------------------------------------------------------------------- helpers
def test_faithfulness_hand_computed() -> None:
    from captum_srae.apps.commands.report import faithfulness

    y = torch.tensor([1.0, 2.0, 3.0])
    f = faithfulness(y, torch.tensor([1.0, 2.0, 4.0]))
    # sse = 1, sst = 2 -> R^2 = 0.5; RMSE = sqrt(1 / 3)
    assert f["r2"] == pytest.approx(0.5) and f["rmse"] == pytest.approx(3**-0.5)
    assert f["score_std"] == pytest.approx((2 / 3) ** 0.5) and f["n"] == 3
    perfect = faithfulness(y, y.clone())
    assert perfect["r2"] == 1.0 and perfect["rmse"] == 0.0
    assert faithfulness(y, torch.full((3,), 2.0))["r2"] == pytest.approx(0.0)


def test_resolve_targets_names_and_indices() -> None:
    names = ["blue", "green", "red"]
    assert common.resolve_targets(["red", "0"], names, 3) == [2, 0]
    assert common.resolve_targets(["7"], names, 10) == [7]  # beyond the folder
    with pytest.raises(ValueError, match="out of range"):
        common.resolve_targets(["-1"], names, 3)
    with pytest.raises(ValueError, match="repeats class 2"):
        common.resolve_targets(["2", "red"], names, 3)
    # class folders named by numbers sort as text: "10" is output 2, "2" is 3
    names = ["0", "1", "10", "2"]
    assert common.resolve_targets(["0", "1"], names, 4) == [0, 1]
    with pytest.raises(ValueError, match="ambiguous"):
        common.resolve_targets(["2"], names, 4)


def test_parse_config_forms(tmp_path: Path) -> None:
    from captum_srae import SRAEConfig

    assert common.parse_config(None) == SRAEConfig()
    assert common.parse_config("qi2021") == SRAEConfig.preset("qi2021")
    inline = common.parse_config('{"preset": "qi2021", "n_concepts": 2}')
    assert inline == SRAEConfig.preset("qi2021", n_concepts=2)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(CONFIG))
    assert common.parse_config(str(path)).hidden_sizes == (16, 8)
    with pytest.raises(ValueError, match="neither a preset"):
        common.parse_config(str(tmp_path / "missing.json"))


def test_explain_reads_a_fit_json_from_before_the_maps_entry(
    world: dict[str, Any], tmp_path: Path
) -> None:
    """A ``fit.json`` written before 0.2 has no ``"maps"``: the explainer
    loads with the default maps and explains as before."""
    _, _, paths = folder_inputs(world["data"])
    old = tmp_path / "old"
    shutil.copytree(world["out"], old)
    record = json.loads((old / "fit.json").read_text())
    del record["maps"]
    (old / "fit.json").write_text(json.dumps(record))
    out = tmp_path / "ex"
    code, _, stderr = run_cli(explain_args(old, paths[0], out))
    assert code == 0, stderr
    doc = json.loads((out / "explanations.json").read_text())
    new = tmp_path / "ex_new"
    code, _, stderr = run_cli(explain_args(world["out"], paths[0], new))
    assert code == 0, stderr
    assert doc["images"][0]["contributions"] == pytest.approx(
        json.loads((new / "explanations.json").read_text())["images"][0][
            "contributions"
        ]
    )
