"""Tests of the demo: the procedural data, the CNN and the demo run.

The data set is in ``captum_srae.datasets``, the CNN in ``captum_srae.datasets.models``
and the pipeline in ``captum_srae.apps.demo``.

The end-to-end demo (quick mode) runs once, in a module-scoped fixture.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from captum_srae import SRAEAttribution, collect_activations, r2_score
from captum_srae.apps.cli import main
from captum_srae.apps.demo import (
    CNN_TRAIN_IMAGES,
    QUICK,
    TEST_SEED_OFFSET,
    demo_data,
    part_mass,
    run_demo,
)
from captum_srae.datasets import make_parts_dataset, make_shapes_dataset
from captum_srae.datasets.models import (
    PARTS_MAPS,
    SmallCNN,
    accuracy,
    train_classifier,
    train_or_load,
)
from captum_srae.datasets.parts import PART_NAMES, PARTS_CHUNK
from captum_srae.evaluation.compare import PEER_METHODS
from captum_srae.utils.json_data import to_jsonable


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
    with pytest.raises(ValueError, match="warmup_epochs must be fewer"):
        train_classifier(model, x, y, epochs=2, warmup_epochs=2)


def test_train_classifier_warm_up_then_cosine(monkeypatch) -> None:
    """Learning rate at each step: linear from lr/10 over the warm-up epochs,
    then the cosine from lr to 0 over the remaining steps."""
    seen: list[float] = []
    step = torch.optim.Adam.step

    def record(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", record)
    x, y = make_shapes_dataset(64, seed=2)
    kw = {"seed": 0, "show_progress": False, "lr": 0.01, "batch_size": 16}
    train_classifier(SmallCNN(), x, y, epochs=3, warmup_epochs=1, **kw)
    assert len(seen) == 12  # 3 epochs of 4 steps
    warm = [0.01 * (0.1 + 0.9 * i / 4) for i in range(4)]
    cosine = [0.005 * (1 + math.cos(math.pi * i / 8)) for i in range(8)]
    assert seen == pytest.approx(warm + cosine, rel=1e-6)
    seen.clear()
    train_classifier(SmallCNN(), x, y, epochs=2, **kw)  # no warm-up
    assert seen == pytest.approx(
        [0.005 * (1 + math.cos(math.pi * i / 8)) for i in range(8)], rel=1e-6
    )


# ------------------------------------------------------------- demo pieces
def part_mass_oracle(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """A literal loop over images, x-features and parts."""
    n, k_count = maps.shape[:2]
    p_count = masks.shape[1]
    out = torch.full((k_count, p_count), float("nan"), dtype=torch.float64)
    for k in range(k_count):
        for p in range(p_count):
            shares = []
            for i in range(n):
                pos = maps[i, k].double().clamp_min(0)
                if pos.sum() > 0 and masks[i, p].any():
                    shares.append(float(pos[masks[i, p]].sum() / pos.sum()))
            if shares:
                out[k, p] = sum(shares) / len(shares)
    return out


def test_part_mass_matches_the_loop_oracle() -> None:
    gen = torch.Generator().manual_seed(0)
    maps = torch.randn(6, 3, 8, 8, generator=gen)
    maps[2, 1] = -1.0  # no positive mass: skipped for x-feature 1
    masks = torch.rand(6, 4, 8, 8, generator=gen) > 0.7
    masks[:, 3] = False  # an absent part: NaN
    expected = part_mass_oracle(maps, masks)
    torch.testing.assert_close(part_mass(maps, masks), expected, equal_nan=True)
    assert torch.isnan(expected[:, 3]).all()


def test_part_mass_of_a_map_equal_to_the_mask_is_one() -> None:
    data = make_parts_dataset(8, seed=3)
    wing = data.masks[:, 2:3].float()
    mass = part_mass(wing, data.masks)
    assert mass[0, 2] == pytest.approx(1.0)
    # other parts get no mass (masks are disjoint)
    assert all(mass[0, p] == 0.0 or math.isnan(mass[0, p]) for p in (0, 1, 3))


def test_demo_data_splits() -> None:
    fit, test = demo_data(50, 30, seed=2)
    train = make_parts_dataset(CNN_TRAIN_IMAGES, seed=2)
    assert torch.equal(fit.images, train.images[:50])
    assert torch.equal(fit.masks, train.masks[:50])
    assert torch.equal(test.images, make_parts_dataset(30, TEST_SEED_OFFSET + 2).images)
    assert len(fit) == 50 and len(test) == 30
    # a prefix over a chunk boundary: only its chunks are drawn, same images
    fit, _ = demo_data(PARTS_CHUNK + 76, 1, seed=2, n_train=3000, size=32)
    whole = make_parts_dataset(3000, seed=2, size=32)
    assert torch.equal(fit.images, whole.images[: PARTS_CHUNK + 76])
    assert torch.equal(fit.texture, whole.texture[: PARTS_CHUNK + 76])
    with pytest.raises(ValueError, match="n_fit"):
        demo_data(CNN_TRAIN_IMAGES + 1, 10)


# -------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("demo") / "out"
    summary = run_demo(quick=True, show_progress=False, out=out)
    return summary, out


def test_demo_summary(demo: tuple[dict[str, Any], Path]) -> None:
    summary, out = demo
    # JSON-serialisable once non-finite numbers become null
    assert json.loads(json.dumps(to_jsonable(summary))) == to_jsonable(summary)
    assert summary["mode"] == "quick" and summary["seed"] == 0
    assert summary["out"] == str(out / "report" / "index.html")
    data = summary["data"]
    assert (data["n_fit"], data["n_test"]) == (QUICK.n_fit, QUICK.n_test)
    assert data["part_names"] == ["head", "body", "wing", "tail"]
    assert list(summary["classes"]) == data["class_names"]
    assert summary["explainer"]["layer"] == "conv4"
    assert summary["explainer"]["in_features"] == 64
    timings = summary["timings"]
    steps = ["data", "cnn", "fit", "evaluation", "comparison", "report"]
    assert all(timings[k] >= 0 for k in steps)
    assert timings["total"] == pytest.approx(sum(timings[k] for k in steps))


def test_demo_quality(demo: tuple[dict[str, Any], Path]) -> None:
    summary = demo[0]
    # measured (seed 0, library defaults, per-class fits in one-thread
    # workers) on data version 1: CNN 95.7 %, agreement 99.3 %, R²
    # 0.9970-0.9978 per class; on version 2: CNN 98.3 %, agreement 99.5 %, R²
    # 0.9967-0.9986 (99.2 % and 0.9975-0.9986 with init_explained). The
    # issue's targets (CNN >= 97 %, R² >= 0.995) are
    # properties of the shipped CNN and over seeds; these bounds are
    # regression checks
    assert summary["cnn"]["test_accuracy"] >= 0.97
    assert summary["agreement"] >= 0.98
    n = summary["data"]["n_test"]
    for entry in summary["classes"].values():
        assert entry["r2"] >= 0.994
        assert entry["r2"] > entry["baseline_r2"]
        assert entry["rmse"] < entry["baseline_rmse"]
        # rmse and r2 describe the same residuals: rmse^2 = (1 - r2) * var
        var = entry["score_std"] ** 2 * (n - 1) / n
        assert entry["rmse"] == pytest.approx(math.sqrt((1 - entry["r2"]) * var))
        assert sum(entry["share"]) == pytest.approx(1.0)


@pytest.mark.parametrize("target", [1])
def test_demo_gives_each_evidence_part_its_own_x_feature(
    demo: tuple[dict[str, Any], Path], target: int
) -> None:
    """With the library defaults and the demo's maps (``PARTS_MAPS``), the
    wing of "winged" has its own x-feature: its map peaks on the wing (or
    within one pixel of it) on >= 70 % of the images where the wing is
    present and the x-feature active, and it carries >= 20 % of the
    positive score (``own_part_features``). Measured over 8 seeds of the
    same setting on data version 2 (docs/concepts.rst): 8 / 8 fits, wing
    pointing 0.944-0.965 strictly. "winged+tailed" is not tested here: it
    had both parts in 8 / 8 fits of the study (with the pixel of
    tolerance), but the demo's own fit of it depends on rounding: it passes
    in a fresh process, and in a run of the suite after tests that set
    torch to one thread one x-feature took 76 % of the score at seed 0.
    The start that separates such parts is tested on a made-up score and
    on the two-part problem (test_concept_quality.py)."""
    from captum_srae.evaluation.study.parts import (
        EVIDENCE_PARTS,
        own_part_features,
        part_pointing_rates,
    )
    from captum_srae.evaluation.study.scoring import positive_shares

    _, out = demo
    model, _ = train_or_load(show_progress=False)
    explainer = SRAEAttribution.load(out / "explainer", model, **PARTS_MAPS)
    _, test = demo_data(QUICK.n_fit, QUICK.n_test)
    x, masks = test.images[: QUICK.n_maps], test.masks[: QUICK.n_maps]
    z, y = collect_activations(model, "conv4", test.images)
    srae = explainer.sraes_[target]
    with torch.no_grad():
        c = srae.contributions(srae.encode(z))[:, 0, :]
    rows = y.argmax(1) == target
    shares = positive_shares(c[rows].mean(0)[None])[0].nan_to_num(0.0)
    maps = explainer.attribute(x, target=target)
    with torch.no_grad():
        e = srae.encode(z[: len(x)])
        pointing = part_pointing_rates(maps, masks, e, tolerance=1)
    assert EVIDENCE_PARTS[1] == (PART_NAMES.index("wing"),)
    own = own_part_features(pointing, shares, EVIDENCE_PARTS[target])
    assert None not in own, (pointing, shares)


def test_demo_comparison(demo: tuple[dict[str, Any], Path]) -> None:
    summary, out = demo
    comparison = summary["comparison"]
    methods = comparison["methods"]
    # --quick leaves the autoencoder ablation (a second fit per class) out;
    # the fast peer methods join when the peers extra is installed
    assert [m for m in methods if m not in PEER_METHODS] == [
        "SRAE", "PCA", "NMF", "TopK SAE", "Random basis",
        "LayerGradCam", "GuidedGradCam", "IntegratedGradients", "Saliency",
    ]  # fmt: skip
    # the comparison reuses the demo's XNNs on the same held-out images
    r2 = [entry["r2"] for entry in summary["classes"].values()]
    assert methods["SRAE"]["r2"] == pytest.approx(sum(r2) / len(r2), abs=1e-5)
    assert methods["SRAE"]["top1_agreement"] == pytest.approx(summary["agreement"])
    assert methods["SRAE"]["r2"] > methods["PCA"]["r2"] > methods["Random basis"]["r2"]
    assert "r2" not in methods["LayerGradCam"]
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert metrics["methods"] == json.loads(json.dumps(methods))
    page = (out / "report" / "index.html").read_text()
    assert "Comparison of methods (same images and layer)" in page


def test_demo_x_features_follow_the_class_parts(
    demo: tuple[dict[str, Any], Path],
) -> None:
    """The class is wing + 2 * tail: the contributions react to the wing and
    the tail far more than to the head, a distractor present in 60 % of the
    images of every class."""
    total = dict.fromkeys(["head", "wing", "tail"], 0.0)
    for entry in demo[0]["classes"].values():
        effect = {p: sum(abs(v) for v in e) for p, e in entry["part_effect"].items()}
        assert effect["head"] < min(effect["wing"], effect["tail"]), effect
        for part in total:
            total[part] += effect[part]
    # measured on a CNN trained afresh with two threads (seed 0): wing 7.2x,
    # tail 2.6x the head; the CNN's weights depend on the thread count, and a
    # one-thread CNN gave more than 3x for both
    assert total["wing"] > 3 * total["head"], total
    assert total["tail"] > 2 * total["head"], total


def test_demo_output_folder(demo: tuple[dict[str, Any], Path]) -> None:
    summary, out = demo
    assert json.loads((out / "summary.json").read_text()) == to_jsonable(summary)
    page = (out / "report" / "index.html").read_text()
    images = [part.split('"')[0] for part in page.split('<img src="')[1:]]
    assert len(images) >= 1 + 4 + 4 + 4  # explanations, galleries, curves...
    assert all((out / "report" / name).is_file() for name in images)
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert metrics["top1_agreement"] == pytest.approx(summary["agreement"])
    assert (out / "report" / "table_0.csv").read_text().startswith("class,")
    # the saved explainer reproduces the held-out faithfulness
    model, _ = train_or_load(show_progress=False)
    loaded = SRAEAttribution.load(out / "explainer", model)
    _, test = demo_data(10, QUICK.n_test, seed=0)
    with torch.no_grad():
        scores = model(test.images)
    ex = loaded.explain(test.images, target=2)
    assert r2_score(scores[:, 2], ex.xnn_score) == pytest.approx(
        summary["classes"]["tailed"]["r2"], abs=1e-4
    )


def test_demo_explainer_works_with_the_command_line(
    demo: tuple[dict[str, Any], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``captum-srae explain`` rebuilds the cached CNN from the demo's fit.json."""
    from PIL import Image

    _, out = demo
    files = sorted((out / "images" / "2_tailed").glob("*.png"))
    assert len(files) == 3
    record = json.loads((out / "explainer" / "fit.json").read_text())
    assert record["maps"] == PARTS_MAPS  # explain draws the report's maps
    argv = ["explain", "--explainer", str(out / "explainer"), "--images"]
    argv += [str(f) for f in files] + ["--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    doc = json.loads((tmp_path / "explanations.json").read_text())
    model, _ = train_or_load(show_progress=False)
    for item, file in zip(doc["images"], files, strict=True):
        with Image.open(file) as img:
            x = torch.from_numpy(np.asarray(img.convert("RGB"))).permute(2, 0, 1)
        with torch.no_grad():
            scores = model(x[None].float() / 255)[0]
        assert item["predicted_class"] == int(scores.argmax())
        t = item["target"]
        assert item["model_score"] == pytest.approx(float(scores[t]), abs=1e-4)


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

    monkeypatch.setattr("captum_srae.apps.demo.run_demo", fake_run_demo)
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--no-progress", "--out", str(out)]) == 0
    assert calls == [
        {
            "quick": True,
            "seed": 0,
            "out": str(out),
            "show_progress": False,
            "cache_dir": None,
            "mode": None,
        }
    ]
    text = capsys.readouterr().out
    assert "quick mode, seed 0" in text
    for name, entry in summary["classes"].items():
        line = next(x for x in text.splitlines() if x.startswith(f"  {name} "))
        assert f"{entry['r2']:.4f}" in line and f"{entry['baseline_r2']:.4f}" in line
    assert f"{100 * summary['agreement']:.1f} %" in text
    assert "Timings" in text and summary["out"] in text
    assert text.isascii()


def test_cli_demo_tiny_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real ``captum-srae demo --tiny``: every step on a tiny CNN."""
    out = tmp_path / "tiny"
    argv = ["demo", "--tiny", "--no-progress", "--out", str(out)]
    assert main([*argv, "--cache-dir", str(tmp_path / "cache")]) == 0
    text = capsys.readouterr().out

    def strict(name: str) -> None:
        raise AssertionError(f"summary.json holds {name}, which is not JSON")

    text_json = (out / "summary.json").read_text()
    summary = json.loads(text_json, parse_constant=strict)
    assert summary["mode"] == "tiny" and summary["explainer"]["n_concepts"] == 3
    assert summary["data"]["n_fit"] == 96 and summary["data"]["n_test"] == 40
    assert set(summary["comparison"]["methods"]) >= {"SRAE", "PCA", "Saliency"}
    assert (out / "report" / "index.html").is_file()
    assert (out / "explainer" / "attribution.json").is_file()
    # the tiny CNN has another width: no fit.json for `captum-srae explain`
    assert not (out / "explainer" / "fit.json").exists()
    for name in summary["classes"]:
        assert f"  {name} " in text
    assert f"Report      {out / 'report' / 'index.html'}" in text
    assert "Try " not in text


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
    with pytest.raises(ValueError, match="mode must be one of"):
        run_demo(mode="huge", show_progress=False)
    assert time.perf_counter() - start < 5.0
