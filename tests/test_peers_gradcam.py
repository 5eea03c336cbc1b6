"""pytorch-grad-cam's CAMs and Deep Feature Factorization in :func:`compare`
(the ``peers`` extra), checked against independent computations.

GradCAM against Captum's ``LayerGradCam``; GradCAM++, ScoreCAM and EigenCAM
against literal implementations of their formulas; DFF against two planted
spatial patterns it must recover.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import Tensor, nn

from captum_srae.apps.parts_comparison import PARTS_SETTINGS
from captum_srae.datasets import make_parts_dataset
from captum_srae.datasets.models import train_or_load
from captum_srae.evaluation.compare import (
    OVERCOMPLETE_METHODS,
    PEER_METHODS,
    ComparisonResult,
    class_maps,
    compare,
)
from captum_srae.evaluation.peers.dff import DFF, spatial_activations
from captum_srae.evaluation.peers.gradcam import PytorchGradCam

pytest.importorskip("pytorch_grad_cam")  # the peers extra
pytestmark = pytest.mark.peers

TINY = PARTS_SETTINGS["tiny"]


def scaled(maps: Tensor) -> Tensor:
    """pytorch-grad-cam's display scaling: each map minus its minimum, over
    its maximum."""
    flat = maps.flatten(1)
    low = flat.min(dim=1).values[:, None, None]
    shifted = maps - low
    return shifted / shifted.flatten(1).max(dim=1).values[:, None, None]


def upsampled(maps: Tensor, size: int) -> Tensor:
    """``(N, h, w)`` maps resized bilinearly to ``size``."""
    return LayerAttribution.interpolate(maps[:, None], (size, size), "bilinear")[:, 0]


@pytest.fixture
def pooled_cnn(tiny_cnn: Callable[..., nn.Sequential]) -> nn.Sequential:
    """conv1, relu1, 2x2 max pool, conv2, relu2, gap, flat, fc: the layer
    ``relu2`` has half the input's resolution."""
    m = tiny_cnn(widths=(6, 10))
    return nn.Sequential(
        OrderedDict(
            conv1=m.conv1,
            relu1=m.relu1,
            pool=nn.MaxPool2d(2),
            conv2=m.conv2,
            relu2=m.relu2,
            gap=m.gap,
            flat=m.flat,
            fc=m.fc,
        )  # fmt: skip
    ).eval()


@pytest.fixture
def images() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(5, 3, 16, 16, generator=g), torch.tensor([0, 1, 2, 0, 1])


def layer_and_grads(
    model: nn.Module, layer: nn.Module, x: Tensor, target: Tensor
) -> tuple[Tensor, Tensor]:
    """Activations ``A`` of ``layer`` and ``d score_target / dA`` (autograd)."""
    store: list[Tensor] = []
    handle = layer.register_forward_hook(lambda m, i, o: store.append(o))
    try:
        scores = model(x)
    finally:
        handle.remove()
    a = store[0]
    chosen = scores.gather(1, target[:, None]).sum()
    (g,) = torch.autograd.grad(chosen, a)
    return a.detach().double(), g.double()


def test_gradcam_is_captum_layer_gradcam_scaled(
    pooled_cnn: nn.Sequential, images: tuple[Tensor, Tensor]
) -> None:
    """Closed form: pgc-GradCAM = scaled(upsampled(ReLU(LayerGradCam)))."""
    x, t = images
    ours = class_maps("pgc-GradCAM", pooled_cnn, pooled_cnn.relu2, x, t)
    lgc = LayerGradCam(pooled_cnn, pooled_cnn.relu2).attribute(
        x, t.tolist(), relu_attributions=True
    )
    ref = scaled(upsampled(lgc.detach()[:, 0], 16))
    assert ours.shape == (5, 16, 16)
    assert float(ref.flatten(1).max(dim=1).values.min()) > 0.99  # not all zero
    assert torch.allclose(ours, ref, atol=1e-5)
    alias = class_maps("pytorch-grad-cam", pooled_cnn, pooled_cnn.relu2, x, t)
    assert torch.equal(alias, ours)
    # pytorch-grad-cam puts the model in eval mode; the adapter restores it
    pooled_cnn.train()
    try:
        class_maps("pgc-GradCAM", pooled_cnn, pooled_cnn.relu2, x, t)
        assert pooled_cnn.training
    finally:
        pooled_cnn.eval()


def test_gradcam_plus_plus_is_its_formula(
    pooled_cnn: nn.Sequential, images: tuple[Tensor, Tensor]
) -> None:
    r"""Chattopadhyay et al. (2018), eq. 19 with exponential scores' second
    and third derivatives replaced by powers of the first:
    ``alpha_kij = g² / (2 g² + Σ_ab A_kab g³ + ε)`` (``alpha = 0`` where
    ``g = 0``), ``w_k = Σ_ij alpha_kij ReLU(g_kij)``, map ``= ReLU(Σ_k w_k
    A_k)``, written as loops. pytorch-grad-cam's ``ε = 1e-6`` is not
    negligible here (``g²`` is about 1e-7), so it is part of the formula."""
    x, t = images
    layer = pooled_cnn.relu2
    ours = PytorchGradCam("GradCAMPlusPlus")(pooled_cnn, layer, x, t)
    a, g = layer_and_grads(pooled_cnn, layer, x, t)
    n, c, h, w = a.shape
    cam = torch.zeros(n, h, w, dtype=torch.float64)
    for i in range(n):
        for k in range(c):
            total = float(a[i, k].sum())
            weight = 0.0
            for p in range(h):
                for q in range(w):
                    gk = float(g[i, k, p, q])
                    if gk == 0:
                        continue
                    alpha = gk**2 / (2 * gk**2 + total * gk**3 + 1e-6)
                    weight += alpha * max(gk, 0.0)
            cam[i] += weight * a[i, k]
    ref = scaled(upsampled(cam.clamp_min(0).float(), 16))
    assert float(ref.flatten(1).max(dim=1).values.min()) > 0.99
    assert torch.allclose(ours, ref, atol=1e-4)


def test_scorecam_is_its_formula(
    pooled_cnn: nn.Sequential, images: tuple[Tensor, Tensor]
) -> None:
    r"""Wang et al. (2020): each channel, upsampled (corner-aligned bilinear)
    and scaled to [0, 1], masks the image; the softmax over channels of the
    masked images' class scores weighs the channels."""
    x, t = images
    layer = pooled_cnn.relu2
    ours = PytorchGradCam("ScoreCAM", batch_size=4)(pooled_cnn, layer, x, t)
    a, _ = layer_and_grads(pooled_cnn, layer, x, t)
    a = a.float()
    up = nn.functional.interpolate(a, (16, 16), mode="bilinear", align_corners=True)
    lo = up.flatten(2).min(dim=2).values[..., None, None]
    hi = up.flatten(2).max(dim=2).values[..., None, None]
    masks = (up - lo) / (hi - lo + 1e-8)
    cams = []
    for i in range(len(x)):
        with torch.no_grad():
            scores = pooled_cnn(x[i][None] * masks[i][:, None])[:, int(t[i])]
        weights = torch.softmax(scores, dim=0)
        cams.append((weights[:, None, None] * a[i]).sum(dim=0))
    ref = scaled(upsampled(torch.stack(cams).clamp_min(0), 16))
    assert torch.allclose(ours, ref, atol=1e-4)


def test_eigencam_is_the_first_principal_component(
    pooled_cnn: nn.Sequential, images: tuple[Tensor, Tensor]
) -> None:
    """Per image: pixels × channels, centred; the projection on the top
    eigenvector of its scatter matrix (eigh, not an SVD), up to sign; the
    same map whatever the class."""
    x, t = images
    layer = pooled_cnn.relu2
    ours = PytorchGradCam("EigenCAM")(pooled_cnn, layer, x, t)
    assert torch.equal(ours, PytorchGradCam("EigenCAM")(pooled_cnn, layer, x, 2 - t))
    a, _ = layer_and_grads(pooled_cnn, layer, x, t)
    n, c, h, w = a.shape
    for i in range(n):
        pixels = a[i].reshape(c, h * w).T
        centred = pixels - pixels.mean(dim=0)
        v = torch.linalg.eigh(centred.T @ centred).eigenvectors[:, -1]
        errors = []
        for sign in (1.0, -1.0):
            proj = (centred @ (sign * v)).reshape(1, h, w).clamp_min(0).float()
            ref = scaled(upsampled(proj, 16))[0]
            errors.append(float((ours[i] - ref).abs().max()))
        assert min(errors) < 1e-4, (i, errors)


def planted(
    n: int, seed: int, vectors: Tensor
) -> tuple[Tensor, Tensor]:  # activations (n, C, 8, 8), patterns (n, 2, 8, 8)
    """Two channel vectors, each present as a Gaussian blob at a random place."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    centres = torch.rand(n, 2, 2, generator=g) * 7
    patterns = torch.exp(
        -(
            (yy - centres[..., 0, None, None]) ** 2
            + (xx - centres[..., 1, None, None]) ** 2
        )
        / 3.0
    )
    strength = 0.5 + torch.rand(n, 2, 1, 1, generator=g)
    patterns = patterns * strength
    acts = torch.einsum("kc,nkhw->nchw", vectors, patterns)
    acts = acts + 0.01 * torch.rand(acts.shape, generator=g)
    return acts, patterns


def best_match(a: Tensor, b: Tensor) -> Tensor:
    """Correlations of rows of ``a`` with rows of ``b``, Hungarian-matched."""
    from scipy.optimize import linear_sum_assignment

    corr = torch.corrcoef(torch.cat([a, b]).double())[: len(a), len(a) :]
    rows, cols = linear_sum_assignment(-corr.numpy())
    return corr[rows, cols]


def test_dff_recovers_two_planted_patterns() -> None:
    """Activations = two channel vectors placed as blobs: DFF's concept
    vectors match the vectors, its concept maps on new images the blobs."""
    g = torch.Generator().manual_seed(0)
    vectors = torch.rand(2, 6, generator=g)
    vectors[0, :3] += 1.0
    vectors[1, 3:] += 1.0
    fit_acts, _ = planted(40, 1, vectors)
    model = nn.Sequential(
        OrderedDict(feat=nn.Identity(), gap=nn.AdaptiveAvgPool2d(1),
                    flat=nn.Flatten(), fc=nn.Linear(6, 2))
    ).eval()  # fmt: skip
    fitted = DFF(2).fit(fit_acts, torch.zeros(40), 0)
    assert torch.all(best_match(fitted.concepts, vectors) > 0.99)
    new_acts, patterns = planted(10, 2, vectors)
    maps = fitted.concept_maps(model, model.feat, new_acts)
    assert maps.shape == (10, 2, 8, 8) and float(maps.min()) >= 0
    corr = best_match(
        maps.transpose(0, 1).reshape(2, -1), patterns.transpose(0, 1).reshape(2, -1)
    )
    assert torch.all(corr > 0.9), corr
    # encode = the codes of the pooled activations; decode rebuilds them
    z = new_acts.mean(dim=(2, 3))
    e = fitted.encode(z)
    assert torch.allclose(fitted.decode(e), z, atol=0.02)
    # DFF's computation_on_concepts with the layer's classifier
    scores = fitted.classify_concepts(model.fc)
    assert torch.allclose(scores, model.fc(fitted.concepts))


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    model, _ = train_or_load(
        cache_dir=tmp_path_factory.mktemp("cache"), **TINY.cnn, show_progress=False
    )
    fit = make_parts_dataset(96, seed=1, size=32)
    test = make_parts_dataset(40, seed=2, size=32)
    result = compare(
        model, "conv4", fit.images, test.images,
        labels=test.labels, masks=test.masks, relevant_parts=[2, 3],
        methods=["LayerGradCam", "pytorch-grad-cam", "NMF", *PEER_METHODS],
        config=TINY.config, n_maps=8, n_steps=4, show_progress=False,
    )  # fmt: skip
    return {"model": model, "fit": fit, "test": test, "result": result}


def test_peer_rows_in_compare(parts: dict[str, Any]) -> None:
    res: ComparisonResult = parts["result"]
    assert res.errors == {}
    for name in ("pgc-GradCAM", "pgc-GradCAM++", "pgc-ScoreCAM", "pgc-EigenCAM"):
        row = res.per_seed[name][0]
        assert res.kinds[name] == "map"
        for key in ("pointing_game", "relevance_mass", "deletion_auc"):
            assert math.isfinite(row[key]), (name, key)
    # GradCAM's scaling changes neither the pointing game nor the ordering
    # of pixels (deletion), so its row is LayerGradCam's; the alias is equal
    ref = res.per_seed["LayerGradCam"][0]
    for name in ("pgc-GradCAM", "pytorch-grad-cam"):
        row = res.per_seed[name][0]
        assert row["pointing_game"] == pytest.approx(ref["pointing_game"])
        assert row["deletion_auc"] == pytest.approx(ref["deletion_auc"], rel=1e-4)
    dff = res.per_seed["DFF"][0]
    assert res.kinds["DFF"] == "concept"
    for key in ("r2", "top1_agreement", "reconstructed_dims", "part_purity"):
        assert math.isfinite(dff[key]), key
    for name in OVERCOMPLETE_METHODS:  # overcomplete's dictionaries by name
        assert res.kinds[name] == "concept"
        assert math.isfinite(res.per_seed[name][0]["r2"]), name
    # overcomplete's NMF and the package's NMF solve the same problem
    oc_nmf, nmf = res.per_seed["oc-NMF"][0], res.per_seed["NMF"][0]
    assert oc_nmf["r2"] == pytest.approx(nmf["r2"], abs=0.05)


def test_dff_r2_is_least_squares_on_its_codes(parts: dict[str, Any]) -> None:
    """DFF's r2: least squares (scikit-learn) of each class score on the NNLS
    codes of the pooled activations on DFF's concepts, refitted here."""
    from sklearn.linear_model import LinearRegression

    from captum_srae import collect_activations

    model = parts["model"]
    fitted = DFF(TINY.config.n_concepts).fit(
        spatial_activations(model, model.conv4, parts["fit"].images)
    )
    z, y = collect_activations(model, "conv4", parts["fit"].images)
    zt, yt = collect_activations(model, "conv4", parts["test"].images)
    with torch.no_grad():
        e, et = fitted.encode(z).double().numpy(), fitted.encode(zt).double().numpy()
    r2s = []
    for t in range(y.shape[1]):
        pred = LinearRegression().fit(e, y[:, t].double().numpy()).predict(et)
        yy = yt[:, t].double().numpy()
        r2s.append(1 - ((yy - pred) ** 2).sum() / ((yy - yy.mean()) ** 2).sum())
    got = parts["result"].mean("DFF", "r2")
    assert got == pytest.approx(sum(r2s) / len(r2s), abs=1e-4)


def test_dff_on_a_non_spatial_layer(parts: dict[str, Any]) -> None:
    p = parts
    with pytest.raises(ValueError) as info:
        compare(p["model"], "fc", p["fit"].images, p["test"].images,
                methods=["DFF"], show_progress=False)  # fmt: skip
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(
        "DFF needs a spatial layer with (N, C, h, w) activations, but layer 'fc'"
    )
    with pytest.raises(ValueError, match=r"DFF needs spatial activations"):
        DFF(2).fit(torch.rand(10, 4), torch.rand(10), 0)


def test_the_demo_report_has_the_peer_rows(tmp_path) -> None:
    # with the peers extra installed the demo's comparison adds the fast peers
    from captum_srae.apps.demo import run_demo
    from captum_srae.evaluation.compare import DEMO_PEER_METHODS

    summary = run_demo(mode="tiny", out=tmp_path / "demo", show_progress=False)
    res = ComparisonResult.from_dict(summary["comparison"])
    assert res.errors == {}
    for name in DEMO_PEER_METHODS:
        assert name in res.methods
        row = res.per_seed[name][0]
        key = "r2" if res.kinds[name] == "concept" else "pointing_game"
        assert math.isfinite(row[key]), (name, key)
    page = (tmp_path / "demo" / "report" / "index.html").read_text()
    assert "oc-TopK SAE" in page and "pgc-GradCAM++" in page
