"""Tests of the open protocol of :func:`compare` (``extra_methods``), the
public scoring functions and :func:`import_peer`; no peer needs installing.

A user's PCA in ten lines must score like the built-in ``"PCA"``, a user's
map callable like the built-in Captum method it wraps, and the scoring
functions must give hand-computed numbers.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import subprocess
import sys
import types
from typing import Any

import pytest
import torch
from captum.attr import LayerGradCam
from torch import Tensor

from captum_srae.apps.parts_comparison import PARTS_SETTINGS
from captum_srae.datasets import make_parts_dataset
from captum_srae.datasets.models import train_or_load
from captum_srae.evaluation.compare import (
    ComparisonResult,
    ConceptMethodModel,
    class_map_scores,
    compare,
    concept_map_scores,
    installed_peer_methods,
)
from captum_srae.evaluation.metrics import part_association, pointing_game
from captum_srae.evaluation.peers import PEER_VERSIONS, import_peer

TINY = PARTS_SETTINGS["tiny"]
K = TINY.config.n_concepts


class Projection:
    """A fitted linear projection: ``encode(z) = (z - mean) @ v``."""

    def __init__(self, mean: Tensor, v: Tensor) -> None:
        self.mean, self.v = mean, v

    def encode(self, z: Tensor) -> Tensor:
        return (z - self.mean) @ self.v

    def decode(self, e: Tensor) -> Tensor:
        return e @ self.v.T + self.mean


class MyPCA:
    """A user's concept method: PCA with torch.pca_lowrank."""

    def __init__(self, k: int) -> None:
        self.k = k

    def fit(self, z: Tensor, y: Tensor, seed: int) -> Projection:
        torch.manual_seed(seed)
        mean = z.mean(dim=0)
        _, _, v = torch.pca_lowrank(z - mean, q=self.k + 4, center=False, niter=20)
        v = v[:, : self.k]
        # scikit-learn's sign convention: each direction's largest entry > 0
        sign = v.gather(0, v.abs().argmax(dim=0, keepdim=True)).sign()
        return Projection(mean, (v * sign).contiguous())


class NoDecode(MyPCA):
    """The same PCA, fitted objects without ``decode``."""

    def fit(self, z: Tensor, y: Tensor, seed: int) -> Any:
        p = super().fit(z, y, seed)

        class Encoder:
            def encode(self, z: Tensor) -> Tensor:
                return p.encode(z)

        return Encoder()


class Broken:
    """A concept method that always raises."""

    def fit(self, z: Tensor, y: Tensor, seed: int) -> Any:
        raise RuntimeError("boom\nsecond line")


def gradcam_lowres(model: Any, layer: Any, x: Tensor, target: Tensor) -> Tensor:
    """A user's map callable: Captum's LayerGradCam at the layer's size,
    ``(N, 1, h, w)`` (compare resizes it)."""
    maps = LayerGradCam(model, layer).attribute(
        x, target.tolist(), relu_attributions=True
    )
    return maps.detach()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    model, _ = train_or_load(
        cache_dir=tmp_path_factory.mktemp("cache"), **TINY.cnn, show_progress=False
    )
    fit = make_parts_dataset(96, seed=1, size=32)
    test = make_parts_dataset(40, seed=2, size=32)
    kw = {
        "labels": test.labels,
        "masks": test.masks,
        "relevant_parts": [2, 3],
        "config": TINY.config,
        "n_maps": 12,
        "n_steps": 4,
        "show_progress": False,
    }
    result = compare(
        model, "conv4", fit.images, test.images,
        methods=["PCA", "LayerGradCam"],
        extra_methods={
            "my PCA": MyPCA(K),
            "no decode": NoDecode(K),
            "broken": Broken(),
            "my Grad-CAM": gradcam_lowres,
        },
        **kw,
    )  # fmt: skip
    return {"model": model, "fit": fit, "test": test, "result": result, "kw": kw}


def test_user_pca_scores_like_the_builtin_pca(setup: dict[str, Any]) -> None:
    res: ComparisonResult = setup["result"]
    assert res.methods == [
        "PCA", "LayerGradCam", "my PCA", "no decode", "broken", "my Grad-CAM",
    ]  # fmt: skip
    assert res.kinds["my PCA"] == "concept" and res.kinds["my Grad-CAM"] == "map"
    ref, mine = res.per_seed["PCA"][0], res.per_seed["my PCA"][0]
    skip = {"fit_seconds", "map_seconds"}
    assert set(mine) == set(ref)
    for key in sorted(set(ref) - skip):
        assert mine[key] == pytest.approx(ref[key], rel=1e-3, abs=1e-4), key


def test_missing_decode_gives_nan_not_an_error(setup: dict[str, Any]) -> None:
    res: ComparisonResult = setup["result"]
    row = res.per_seed["no decode"][0]
    assert math.isnan(row["reconstructed_dims"])
    assert row["r2"] == pytest.approx(res.per_seed["my PCA"][0]["r2"], abs=1e-6)


def test_user_map_callable_scores_like_the_builtin(setup: dict[str, Any]) -> None:
    res: ComparisonResult = setup["result"]
    ref, mine = res.per_seed["LayerGradCam"][0], res.per_seed["my Grad-CAM"][0]
    for key in ("pointing_game", "relevance_mass", "deletion_auc", "insertion_auc"):
        assert mine[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-6), key


def test_raising_method_is_reported_and_the_others_kept(
    setup: dict[str, Any],
) -> None:
    res: ComparisonResult = setup["result"]
    assert res.errors == {"broken": "RuntimeError: boom"}
    assert res.per_seed["broken"] == []
    assert math.isnan(res.mean("broken", "r2"))
    assert all(res.per_seed[m] for m in res.methods if m != "broken")
    md = res.to_markdown(["r2"])
    assert "| broken |  |" in md
    note = "Note: broken failed and has no results (RuntimeError: boom)."
    assert md.rstrip().endswith(note)
    again = ComparisonResult.from_dict(json.loads(json.dumps(res.to_dict())))
    assert again.errors == res.errors
    assert again.to_markdown() == res.to_markdown()


def test_fitted_accepts_extra_method_names(setup: dict[str, Any]) -> None:
    """Pre-fitted objects of an extra method give the numbers of a fit."""
    from captum_srae import collect_activations

    s = setup
    z, y = collect_activations(s["model"], "conv4", s["fit"].images)
    method = MyPCA(K)
    pre = {t: method.fit(z, y[:, t], 0) for t in range(y.shape[1])}
    res = compare(
        s["model"], "conv4", s["fit"].images, s["test"].images, methods=[],
        extra_methods={"my PCA": method}, fitted={"my PCA": pre}, **s["kw"],
    )  # fmt: skip
    ref = s["result"].per_seed["my PCA"][0]
    assert res.per_seed["my PCA"][0]["r2"] == pytest.approx(ref["r2"], abs=1e-6)


def test_own_linear_predict_is_the_head() -> None:
    g = torch.Generator().manual_seed(0)
    z, y = torch.randn(50, 6, generator=g), torch.randn(50, generator=g)
    w, b = torch.tensor([1.5, -2.0]), 0.25

    class Fitted:
        def encode(self, z: Tensor) -> Tensor:
            return z[:, :2] * 2

        def predict(self, e: Tensor) -> Tensor:
            return e @ w + b

    m = ConceptMethodModel.from_fitted(Fitted(), z, y, label="mine")
    assert m.weight[0].tolist() == pytest.approx(w.tolist(), abs=1e-5)
    assert float(m.bias[0]) == pytest.approx(b, abs=1e-5)
    e = m.encode(z)
    assert torch.allclose(m.predict(e)[:, 0], e @ w + b)
    assert torch.allclose(m.contributions(e).sum(-1)[:, 0] + m.bias, e @ w + b)
    with pytest.raises(NotImplementedError, match="mine has no decode"):
        m.decode(e)


@pytest.mark.parametrize(
    ("extra", "error", "match"),
    [
        ([MyPCA(2)], TypeError, "extra_methods must be a mapping"),
        ({"mine": 3}, TypeError, r"extra_methods\['mine'\] must be a concept method"),
        ({"PCA": MyPCA(2)}, ValueError, r"extra_methods\['PCA'\] clashes"),
        ({"": MyPCA(2)}, ValueError, "extra_methods keys"),
    ],
)
def test_bad_extra_methods(
    setup: dict[str, Any], extra: Any, error: type, match: str
) -> None:
    s = setup
    with pytest.raises(error, match=match):
        compare(s["model"], "conv4", s["fit"].images, s["test"].images,
                extra_methods=extra, show_progress=False)  # fmt: skip


def test_bad_fitted_objects_are_named(setup: dict[str, Any]) -> None:
    """``fit`` without ``encode``, or a wrong ``encode`` shape: the error
    names the extra method."""

    class NoEncode:
        def fit(self, z: Tensor, y: Tensor, seed: int) -> Any:
            return object()

    class Flat:
        def fit(self, z: Tensor, y: Tensor, seed: int) -> Any:
            class F:
                def encode(self, z: Tensor) -> Tensor:
                    return z.sum(dim=1)

            return F()

    s = setup
    res = compare(
        s["model"], "conv4", s["fit"].images, s["test"].images, methods=[],
        extra_methods={"a": NoEncode(), "b": Flat()}, show_progress=False,
        n_maps=4, n_steps=2,
    )  # fmt: skip
    assert res.errors["a"].startswith(
        "TypeError: extra_methods['a'].fit(z, y, seed) must return an object "
        "with encode(z)"
    )
    assert res.errors["b"].startswith(
        "ValueError: extra_methods['b']: encode(z) must return a (96, k) tensor"
    )


def test_map_output_shape_is_checked(setup: dict[str, Any]) -> None:
    s = setup
    res = compare(
        s["model"], "conv4", s["fit"].images, s["test"].images, methods=[],
        extra_methods={"flat": lambda m, layer, x, t: torch.zeros(len(x), 5)},
        show_progress=False, n_maps=4, n_steps=2,
    )  # fmt: skip
    assert res.errors["flat"] == (
        "ValueError: extra_methods['flat'] must return (4, H, W) or (4, C, H, W) "
        "maps, got (4, 5)"
    )


# ------------------------------------------------------- scoring functions
def test_concept_map_scores_by_hand() -> None:
    masks = torch.zeros(2, 3, 4, 4, dtype=torch.bool)
    masks[:, 0, :2, :2] = True  # part 0: top-left quarter
    masks[:, 1, 2:, 2:] = True  # part 1: bottom-right quarter
    maps = torch.zeros(2, 3, 4, 4)
    maps[:, 0] = masks[:, 0].float()  # concept 0 is part 0
    maps[:, 1, :2, :] = 1.0  # concept 1: the top half, IoU 4/8 with part 0
    # concept 2 is zero: it overlaps no part and is left out
    scores = concept_map_scores(maps, masks)
    # purity: concept 0 -> 1; concept 1 -> 0.5 / (0.5 + 0) = 1; mean 1
    assert scores == {"part_purity": pytest.approx(1.0), "part_iou": 0.75}
    assoc = part_association(maps, masks)
    assert assoc.iou[1, 0] == pytest.approx(0.5)
    none = concept_map_scores(torch.zeros(2, 3, 4, 4), masks)
    assert math.isnan(none["part_purity"]) and math.isnan(none["part_iou"])


def test_class_map_scores_by_hand() -> None:
    masks = torch.zeros(2, 2, 4, 4, dtype=torch.bool)
    masks[:, 0, 0, 0] = True
    masks[:, 1, 3, 3] = True
    maps = torch.zeros(2, 4, 4)
    maps[0, 0, 0], maps[0, 1, 1] = 3.0, 1.0  # peak in part 0; 3/4 of the mass
    maps[1, 2, 2], maps[1, 3, 3] = 2.0, 2.0  # tie off part: a hit? no (2 >= 2)
    out = class_map_scores(maps, masks, parts=[0, 1])
    assert out["relevance_mass"] == pytest.approx((3 / 4 + 2 / 4) / 2)
    assert out["pointing_game"] == pytest.approx(1.0)
    only0 = class_map_scores(maps, masks[:, 0])
    assert only0["pointing_game"] == pytest.approx(
        float(pointing_game(maps, masks[:, 0]).score)
    )
    assert only0["relevance_mass"] == pytest.approx(3 / 4 / 2)
    with pytest.raises(ValueError, match="parts needs"):
        class_map_scores(maps, masks[:, 0], parts=[0])
    with pytest.raises(ValueError, match="masks must be"):
        class_map_scores(maps, masks[0, 0])


# ---------------------------------------------------------------- import_peer
def test_import_peer_missing_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    with pytest.raises(ValueError) as info:
        import_peer("grad-cam", "pytorch_grad_cam")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg == (
        "peer 'grad-cam' is not installed; install it with pip install "
        "'captum-srae[peers]' (or pip install 'grad-cam>=1.5,<2')"
    )


@pytest.mark.parametrize(
    ("dist", "installed"),
    [("grad-cam", "2.0.1"), ("quantus", "0.5.9"), ("craft-xai", "0.0.4")],
)
def test_import_peer_wrong_version(
    monkeypatch: pytest.MonkeyPatch, dist: str, installed: str
) -> None:
    monkeypatch.setattr(importlib.metadata, "version", lambda name: installed)
    with pytest.raises(ValueError) as info:
        import_peer(dist, "json")
    msg = str(info.value)
    assert "\n" not in msg
    assert f"peer {dist!r} {installed} is installed" in msg
    assert f"supports {dist}{PEER_VERSIONS[dist]}" in msg
    assert "pip install 'captum-srae[peers]'" in msg


def test_import_peer_supported_version_and_broken_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.3.0")
    assert import_peer("overcomplete", "json") is json
    monkeypatch.setitem(sys.modules, "json", None)  # import json fails
    with pytest.raises(ValueError, match=r"importing 'json' failed \(import of json"):
        import_peer("overcomplete", "json")
    with pytest.raises(ValueError, match="distribution must be a supported peer"):
        import_peer("numpy", "numpy")


def test_setup_peers_extra_matches_peer_versions() -> None:
    import ast
    from pathlib import Path

    tree = ast.parse(Path(__file__).parents[1].joinpath("setup.py").read_text())
    value = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and node.targets[0].id == "PEERS_REQUIRES"  # type: ignore[attr-defined]
    )
    assert ast.literal_eval(value) == [f"{d}{v}" for d, v in PEER_VERSIONS.items()]


def test_importing_compare_imports_no_peer() -> None:
    code = (
        "import sys, captum_srae.evaluation.compare, captum_srae.evaluation.peers;"
        "bad = [m for m in ('pytorch_grad_cam', 'quantus', 'overcomplete', 'craft')"
        " if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_installed_peer_methods_keeps_the_importable_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # grad-cam "installed" in a supported version, overcomplete missing
    versions = {"grad-cam": "1.5.7"}

    def version(name: str) -> str:
        if name not in versions:
            raise importlib.metadata.PackageNotFoundError(name)
        return versions[name]

    monkeypatch.setattr(importlib.metadata, "version", version)
    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", types.ModuleType("pgc"))
    names = ("DFF", "oc-TopK SAE", "pgc-GradCAM++")
    assert installed_peer_methods(names) == ["DFF", "pgc-GradCAM++"]
    versions["grad-cam"] = "2.0.0"  # outside the supported range
    assert installed_peer_methods(names) == []
    with pytest.raises(ValueError, match="unknown method"):
        installed_peer_methods(["no such method"])
