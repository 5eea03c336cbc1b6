"""Tests of :mod:`captum_srae.evaluation.compare`: the comparison call and its table.

The comparison runs once on tiny settings (a 4-channel parts CNN trained for
one epoch on 32x32 images, XNNs of a few epochs), in a module-scoped fixture;
single numbers are checked against independent computations with
scikit-learn, Captum and the metric functions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam

from captum_srae import collect_activations
from captum_srae.apps.cli import main
from captum_srae.apps.parts_comparison import PARTS_SETTINGS
from captum_srae.datasets import make_parts_dataset
from captum_srae.datasets.models import train_or_load
from captum_srae.evaluation.compare import (
    CONCEPT_METHODS,
    METRIC_INFO,
    ComparisonResult,
    compare,
)
from captum_srae.evaluation.metrics import deletion_curve, pointing_game

TINY = PARTS_SETTINGS["tiny"]  # the settings of `captum-srae compare --tiny`
TINY_CNN = {**TINY.cnn, "show_progress": False}
TINY_CONFIG = TINY.config
METHODS = [*CONCEPT_METHODS, "LayerGradCam", "Saliency"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cache = tmp_path_factory.mktemp("cache")
    model, _ = train_or_load(cache_dir=cache, **TINY_CNN)
    fit = make_parts_dataset(96, seed=1, size=32)
    test = make_parts_dataset(40, seed=2, size=32)
    result = compare(
        model,
        "conv4",
        fit.images,
        test.images,
        labels=test.labels,
        masks=test.masks,
        relevant_parts=[2, 3],
        methods=METHODS,
        config=TINY_CONFIG,
        seeds=(0, 1),
        n_maps=12,
        n_steps=4,
        show_progress=False,
    )
    return {"model": model, "fit": fit, "test": test, "result": result}


def test_table_shape(setup: dict[str, Any]) -> None:
    res: ComparisonResult = setup["result"]
    assert res.methods == METHODS
    assert res.seeds == [0, 1]
    for name in CONCEPT_METHODS:
        assert res.kinds[name] == "concept"
        assert len(res.per_seed[name]) == 2
        row = res.per_seed[name][0]
        for key in ("r2", "top1_agreement", "hoyer"):
            assert key in row and math.isfinite(row[key])
        # images without a positive contribution are left out, so a method
        # cannot look concise by explaining nothing: NaN or at least 1
        sig = row["significant_features"]
        assert math.isnan(sig) or sig >= 1.0
        for key in ("stability", "part_purity", "deletion_auc", "pointing_game"):
            assert key in row
    for name in ("LayerGradCam", "Saliency"):
        assert res.kinds[name] == "map"
        assert len(res.per_seed[name]) == 1
        assert "r2" not in res.per_seed[name][0]
        assert {"deletion_auc", "insertion_auc", "pointing_game"} <= set(
            res.per_seed[name][0]
        )
    assert set(res.metrics()) <= set(METRIC_INFO)


def test_pca_faithfulness_matches_scikit_learn(setup: dict[str, Any]) -> None:
    """PCA(k) + least squares per class, refitted here with scikit-learn."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LinearRegression

    model, fit, test = setup["model"], setup["fit"], setup["test"]
    z, y = collect_activations(model, "conv4", fit.images)
    zt, yt = collect_activations(model, "conv4", test.images)
    pca = PCA(n_components=3, svd_solver="full").fit(z.double().numpy())
    r2s = []
    for t in range(y.shape[1]):
        lr = LinearRegression().fit(pca.transform(z.double().numpy()), y[:, t])
        pred = lr.predict(pca.transform(zt.double().numpy()))
        yy = yt[:, t].double().numpy()
        r2s.append(1 - ((yy - pred) ** 2).sum() / ((yy - yy.mean()) ** 2).sum())
    res: ComparisonResult = setup["result"]
    assert res.mean("PCA", "r2") == pytest.approx(float(np.mean(r2s)), abs=1e-4)
    # PCA has no randomness: both seeds agree and their matching is perfect
    assert res.std("PCA", "r2") == pytest.approx(0.0, abs=1e-9)
    assert res.mean("PCA", "stability") == pytest.approx(1.0, abs=1e-6)
    # two seeds make one pair: one stability value, no sd
    assert ["stability" in row for row in res.per_seed["SRAE"]] == [True, False]
    assert math.isnan(res.std("SRAE", "stability"))


def test_layer_gradcam_row_matches_captum(setup: dict[str, Any]) -> None:
    model, test = setup["model"], setup["test"]
    x = test.images[:12]
    with torch.no_grad():
        pred = model(x).argmax(dim=1)
    maps = LayerGradCam(model, model.conv4).attribute(
        x, pred.tolist(), relu_attributions=True
    )
    maps = LayerAttribution.interpolate(maps, (32, 32), "bilinear")[:, 0]
    relevant = test.masks[:12][:, [2, 3]].any(dim=1)
    row = setup["result"].per_seed["LayerGradCam"][0]
    assert row["pointing_game"] == pytest.approx(
        float(pointing_game(maps, relevant).score)
    )
    auc = deletion_curve(model, x, maps, pred, n_steps=4).auc.mean()
    assert row["deletion_auc"] == pytest.approx(float(auc), rel=1e-5)


def test_result_statistics_and_formats() -> None:
    res = ComparisonResult(
        methods=["A", "B"],
        kinds={"A": "concept", "B": "map"},
        per_seed={
            "A": [{"r2": 0.9, "hoyer": 0.5}, {"r2": 0.8, "hoyer": 0.7}],
            "B": [{"deletion_auc": float("nan")}],
        },
        seeds=[0, 1],
    )
    assert res.mean("A", "r2") == pytest.approx(0.85)
    assert res.std("A", "r2") == pytest.approx(np.std([0.9, 0.8], ddof=1))
    assert math.isnan(res.std("B", "deletion_auc"))
    assert math.isnan(res.mean("B", "r2"))
    data = res.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["methods"]["A"] == {"r2": pytest.approx(0.85), "hoyer": 0.6}
    assert data["methods"]["B"] == {"deletion_auc": None}
    assert data["higher_is_better"]["r2"] is True
    md = res.to_markdown(["r2", "hoyer"]).splitlines()
    assert md[0] == "| method | r2 ↑ | hoyer ↑ |"
    assert md[2] == "| A | 0.85 ± 0.071 | 0.6 ± 0.14 |"
    assert md[3] == "| B |  |  |"
    csv_lines = res.to_csv().splitlines()
    assert csv_lines[0].startswith("method,r2,r2_sd,hoyer,hoyer_sd")
    assert csv_lines[1].startswith("A,0.85")
    fig = res.plot()
    assert len([a for a in fig.axes if a.get_visible()]) == 3


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"methods": ["SRAE", "Nope"]}, ValueError, "unknown method 'Nope'"),
        ({"methods": ["PCA", "PCA"]}, ValueError, "repeated"),
        ({"methods": "PCA"}, ValueError, "sequence of method names"),
        ({"seeds": (0, 0)}, ValueError, "seeds"),
        ({"seeds": ("a",)}, TypeError, "seeds"),
        ({"n_maps": 0}, ValueError, "n_maps"),
        ({"masks": torch.zeros(3, 4, 32, 32, dtype=torch.bool)}, ValueError, "masks"),
        ({"labels": torch.zeros(5, dtype=torch.long)}, ValueError, "labels"),
        ({"labels": [0] * 40}, ValueError, "labels"),
        ({"relevant_parts": [2]}, ValueError, "relevant_parts needs masks"),
        (
            {
                "masks": torch.zeros(40, 4, 32, 32, dtype=torch.bool),
                "relevant_parts": [4],
            },
            ValueError,
            "relevant_parts",
        ),
        ({"methods": ["PCA"], "fitted": {"PCA": {0: None}}}, ValueError, "missing"),
        ({"methods": ["PCA"], "fitted": {"SRAE": {}}}, ValueError, "not in methods"),
    ],
)
def test_bad_arguments(
    setup: dict[str, Any], kwargs: dict[str, Any], error: type, match: str
) -> None:
    test = setup["test"]
    with pytest.raises(error, match=match):
        compare(setup["model"], "conv4", test.images, test.images, **kwargs)


def test_nmf_on_negative_activations_fails_before_any_fit(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import captum_srae.evaluation.compare.runner as run

    fits: list[str] = []
    monkeypatch.setattr(run, "fit_concepts", lambda name, *a: fits.append(name))
    test = setup["test"]
    with pytest.raises(ValueError, match="'NMF' needs nonnegative activations"):
        compare(  # conv4.0 is the convolution before BatchNorm and ReLU
            setup["model"], "conv4.0", test.images, test.images,
            methods=["PCA", "NMF"], show_progress=False,
        )  # fmt: skip
    assert fits == []


def test_cli_compare_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``captum-srae compare`` on tiny settings writes the table and report."""
    out = tmp_path / "cmp"
    argv = [
        "compare",
        "--tiny",
        "--methods", "SRAE", "PCA", "LayerGradCam",
        "--seeds", "0",
        "--cache-dir", str(tmp_path / "cache"),
        "--out", str(out),
        "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "| SRAE |" in text and "| LayerGradCam |" in text
    data = json.loads((out / "report" / "metrics.json").read_text())
    assert set(data["methods"]) == {"SRAE", "PCA", "LayerGradCam"}
    assert "r2" in data["methods"]["SRAE"]
    assert (out / "comparison.csv").read_text().startswith("method,")
    assert (out / "comparison.md").read_text().startswith("| method |")
    assert main([*argv[:3], "Bogus"]) == 2
    assert "unknown method 'Bogus'" in capsys.readouterr().err
    # a foreign non-empty folder is refused before any work; a file too
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    assert main(["compare", "--tiny", "--out", str(foreign)]) == 2
    assert "non-empty folder" in capsys.readouterr().err
    assert (foreign / "keep.txt").read_text() == "precious"
    assert main(["compare", "--tiny", "--out", str(foreign / "keep.txt")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_result_round_trips_through_its_dict(setup: dict[str, Any]) -> None:
    res: ComparisonResult = setup["result"]
    again = ComparisonResult.from_dict(json.loads(json.dumps(res.to_dict())))
    assert again.methods == res.methods and again.kinds == res.kinds
    assert again.to_markdown() == res.to_markdown()


def test_parts_settings_use_the_demo_config() -> None:
    from captum_srae.apps.demo import DEMO_CONFIG
    from captum_srae.apps.parts_comparison import PARTS_SETTINGS

    assert PARTS_SETTINGS["full"].config == DEMO_CONFIG
    assert PARTS_SETTINGS["quick"].config == DEMO_CONFIG


def test_stability_pairs_of_seeds() -> None:
    from captum_srae.evaluation.compare.runner import seed_stability
    from captum_srae.evaluation.metrics import match_features

    g = torch.Generator().manual_seed(0)
    fits = [{0: torch.rand(50, 3, generator=g)} for _ in range(3)]
    assert seed_stability(fits[:1]) == []
    assert seed_stability(fits[:2]) == [
        pytest.approx(float(match_features(fits[0][0], fits[1][0]).score))
    ]
    expected = [
        float(match_features(fits[a][0], fits[b][0]).score)
        for a, b in ((0, 1), (1, 2), (2, 0))
    ]
    assert seed_stability(fits) == pytest.approx(expected)


def test_given_activations_are_used_as_collected(setup: dict[str, Any]) -> None:
    """``activations=`` gives the same table as collecting them, and the
    given tensors are what is scored (shuffled test scores ruin R²)."""
    model, fit, test = setup["model"], setup["fit"], setup["test"]
    z, y = collect_activations(model, "conv4", fit.images)
    zt, yt = collect_activations(model, "conv4", test.images)
    kw = {"methods": ["PCA"], "config": TINY_CONFIG, "n_maps": 6, "n_steps": 3}
    kw.update(labels=test.labels, show_progress=False)
    collected = compare(model, "conv4", fit.images, test.images, **kw)
    given = compare(
        model, "conv4", fit.images, test.images, activations=(z, y, zt, yt), **kw
    )
    for key in ("r2", "top1_agreement", "deletion_auc"):
        assert given.mean("PCA", key) == pytest.approx(
            collected.mean("PCA", key), abs=1e-6
        )
    # a different (shuffled) test y is taken as given: R² drops
    perm = torch.randperm(len(yt), generator=torch.Generator().manual_seed(0))
    given = (z, y, zt, yt[perm])
    shuffled = compare(model, "conv4", fit.images, test.images, activations=given, **kw)
    assert shuffled.mean("PCA", "r2") < collected.mean("PCA", "r2") - 0.5


def _zeros(*shapes: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.zeros(shape) for shape in shapes)


@pytest.mark.parametrize(
    "given, match",
    [
        (_zeros((96, 4)), "4 tensors, got 1 items"),
        ("abcd", "4 tensors, got str"),
        (_zeros((95, 4), (96, 4), (40, 4), (40, 4)), "z_fit.*96 rows"),
        (_zeros((96, 4), (96, 4), (40, 4), (40,)), "y_test"),
        (_zeros((96, 4), (96, 4), (40, 5), (40, 4)), "same columns"),
    ],
)
def test_bad_given_activations(setup: dict[str, Any], given: Any, match: str) -> None:
    fit, test = setup["fit"], setup["test"]
    with pytest.raises((TypeError, ValueError), match=match):
        compare(setup["model"], "conv4", fit.images, test.images, activations=given)


def test_fast_baselines_are_fitted_in_process(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PCA, NMF and the random basis never fork workers (a pool costs more
    than their fits); the TopK SAE keeps the caller's ``n_jobs``; the table
    is the same as with everything in one process."""
    import captum_srae.evaluation.compare.runner as runner

    calls: list[tuple[str, int | None]] = []
    real = runner.run_jobs

    def spy(fn: Any, jobs: Any, n_jobs: Any = None, **kw: Any) -> Any:
        calls.append((jobs[0][0], n_jobs))
        return real(fn, jobs, n_jobs, **kw)

    monkeypatch.setattr(runner, "run_jobs", spy)
    model, fit, test = setup["model"], setup["fit"], setup["test"]
    methods = ["PCA", "NMF", "TopK SAE", "Random basis"]
    kw = {"config": TINY_CONFIG, "n_maps": 6, "n_steps": 3, "show_progress": False}
    result = compare(
        model, "conv4", fit.images, test.images, methods=methods, n_jobs=2, **kw
    )
    assert dict(calls) == {"PCA": 1, "NMF": 1, "TopK SAE": 2, "Random basis": 1}
    monkeypatch.setattr(runner, "run_jobs", real)
    serial = compare(
        model, "conv4", fit.images, test.images, methods=methods, n_jobs=1, **kw
    )
    for name in methods:
        assert result.mean(name, "r2") == pytest.approx(serial.mean(name, "r2"))
