"""Tests of ``captum_srae.evaluation.baselines``: oracles for each baseline,
the ablation's configuration, the shared interface and use inside
``SRAEAttribution``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.optimize
import torch
from captum.attr import Saliency
from helpers import three_factor_problem
from sklearn.decomposition import NMF, PCA
from torch import nn

from captum_srae import SRAE, SRAEConfig, fit_srae
from captum_srae.attribution import SRAEAttribution
from captum_srae.evaluation.baselines import (
    ABLATED_FIELDS,
    BASELINES,
    ConceptModel,
    NonnegativeLeastSquares,
    TopK,
    autoencoder_config,
    fit_baseline,
    fit_nmf,
)

K = 3
FAST = SRAEConfig(hidden_sizes=(16, 8), pretrain_epochs=1, max_epochs=4, patience=2)
OPTIONS = {"autoencoder": {"config": FAST}, "topk_sae": {"epochs": 10}}


@pytest.fixture(scope="module")
def cnn(tiny_cnn):
    """A tiny CNN, inputs, the pooled ``relu2`` activations and class-1 scores."""
    net = tiny_cnn(3, (6, 10))
    x = torch.rand(120, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        act = net[:4](x)
        y = net(x)
    return net, x, act, act.mean(dim=(2, 3)), y


@pytest.fixture(scope="module")
def fitted(cnn):
    _, _, _, z, y = cnn
    return {
        name: fit_baseline(name, z, y[:, 1], K, **OPTIONS.get(name, {}))
        for name in BASELINES
    }


@pytest.fixture(scope="module")
def problem():
    z, y = three_factor_problem(n=300, d=24, seed=0)
    return z, y


def lstsq_head(e: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    coef = np.linalg.lstsq(np.hstack([e, np.ones((len(e), 1))]), y, rcond=None)[0]
    return coef[:-1], coef[-1]


# ------------------------------------------------------------------ names
def test_names_and_bad_arguments(problem) -> None:
    z, y = problem
    assert BASELINES == ("pca", "nmf", "autoencoder", "topk_sae", "random")
    with pytest.raises(ValueError, match="name must be one of.*'pca'.*'random'"):
        fit_baseline("ica", z, y)
    with pytest.raises(TypeError, match=r"\['epochs'\].*'pca'"):
        fit_baseline("pca", z, y, epochs=3)
    with pytest.raises(ValueError, match="n_concepts must be in"):
        fit_baseline("pca", z, y, 24)
    with pytest.raises(ValueError, match="n_concepts must be in"):
        fit_baseline("random", z, y, 0)
    with pytest.raises(TypeError, match="n_concepts must be an int"):
        fit_baseline("pca", z, y, 2.0)
    with pytest.raises(ValueError, match="same number of samples"):
        fit_baseline("nmf", z, y[:-1])
    with pytest.raises(TypeError, match="z must"):
        fit_baseline("pca", z.tolist(), y)
    with pytest.raises(ValueError, match="z must have shape"):
        fit_baseline("pca", z[0], y)
    with pytest.raises(ValueError, match="z has 3 samples"):
        fit_baseline("pca", z[:3], y[:3], 3)
    with pytest.raises(ValueError, match="y contains NaN"):
        fit_baseline("random", z, torch.full_like(y, float("nan")))
    with pytest.raises(ValueError, match="seed must be"):
        fit_baseline("random", z, y, seed=-1)
    with pytest.raises(ValueError, match="pooling must be"):
        fit_baseline("pca", z, y, pooling="max")
    z_neg = z.clone()
    z_neg[5, 0] = -0.25
    with pytest.raises(ValueError, match="z must be nonnegative.*-0.25"):
        fit_baseline("nmf", z_neg, y)
    for active, error in ((0, ValueError), (6, ValueError), (2.5, TypeError)):
        with pytest.raises(error, match="active must be"):
            fit_baseline("topk_sae", z, y, 5, active=active)
    with pytest.raises(ValueError, match="epochs must be"):
        fit_baseline("topk_sae", z, y, epochs=0)
    with pytest.raises(TypeError, match="config must be an SRAEConfig"):
        fit_baseline("autoencoder", z, y, config={"n_concepts": 3})


# ----------------------------------------------------------------- oracles
def test_pca_is_sklearn_pca_with_lstsq_head(problem) -> None:
    z, y = problem
    model = fit_baseline("pca", z, y, 4)
    ref = PCA(n_components=4, svd_solver="full").fit(z.double().numpy())
    e_ref = ref.transform(z.double().numpy())
    e = model.encode(z)
    assert e.dtype == torch.float32
    np.testing.assert_allclose(e.numpy(), e_ref, atol=2e-4)
    np.testing.assert_allclose(
        model.decode(e).numpy(), ref.inverse_transform(e_ref), atol=2e-4
    )
    w_ref, b_ref = lstsq_head(e_ref, y.double().numpy())
    np.testing.assert_allclose(model.weight[0].numpy(), w_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.bias.numpy(), [b_ref], rtol=1e-4, atol=1e-5)


def test_random_basis_is_orthonormal_seeded_and_has_lstsq_head(problem) -> None:
    z, y = problem
    a = fit_baseline("random", z, y, 5, seed=3)
    b = fit_baseline("random", z, y, 5, seed=3)
    c = fit_baseline("random", z, y, 5, seed=4)
    p = a.basis.double()
    torch.testing.assert_close(p @ p.T, torch.eye(5, dtype=p.dtype), atol=1e-6, rtol=0)
    assert torch.equal(a.basis, b.basis) and torch.equal(a.weight, b.weight)
    assert (a.basis - c.basis).abs().max() > 0.1
    e_ref = (z.double() - z.double().mean(0)).numpy() @ p.numpy().T
    np.testing.assert_allclose(a.encode(z).numpy(), e_ref, atol=1e-4)
    w_ref, b_ref = lstsq_head(e_ref, y.double().numpy())
    np.testing.assert_allclose(a.weight[0].numpy(), w_ref, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(a.bias.numpy(), [b_ref], rtol=1e-4, atol=1e-4)


def test_nmf_features_are_nnls_codes_and_reconstruct_like_sklearn(problem) -> None:
    z, y = problem
    model = fit_nmf(z, y, 4, seed=0)
    z64 = z.double().numpy()
    ref = NMF(4, init="nndsvda", solver="cd", max_iter=1000, random_state=0).fit(z64)
    h = model.components.double().numpy()
    np.testing.assert_allclose(h, ref.components_, rtol=1e-4, atol=1e-5)
    e = model.encode(z)
    assert bool((e >= 0).all())
    nnls = np.stack([scipy.optimize.nnls(h.T, zi)[0] for zi in z64])
    np.testing.assert_allclose(e.numpy(), nnls, atol=1e-4)
    err = np.linalg.norm(z64 - model.decode(e).double().numpy())
    err_ref = np.linalg.norm(z64 - ref.transform(z64) @ ref.components_)
    assert err <= err_ref * (1 + 1e-4) and err >= err_ref * 0.99
    w_ref, b_ref = lstsq_head(nnls, y.double().numpy())
    np.testing.assert_allclose(model.weight[0].numpy(), w_ref, rtol=1e-3, atol=1e-3)
    # Jacobian: on the active set S, e_S = (H_S H_S^T)^{-1} H_S z; 0 elsewhere
    jac = torch.func.vmap(torch.func.jacrev(lambda zi: model.encode(zi[None])[0]))(
        z[:5]
    )
    for i in range(5):
        s = nnls[i] > 0
        hs = h[s]
        ref_j = np.zeros((4, z.shape[1]))
        ref_j[s] = np.linalg.solve(hs @ hs.T, hs)
        np.testing.assert_allclose(jac[i].numpy(), ref_j, atol=1e-3)


def test_topk_keeps_the_m_largest(problem) -> None:
    x = torch.tensor([[3.0, -1.0, 2.0, 5.0], [-1.0, -2.0, -3.0, -0.5]])
    expected = torch.tensor([[3.0, 0.0, 0.0, 5.0], [0.0, 0.0, 0.0, 0.0]])
    assert torch.equal(TopK(2)(x), expected)
    assert torch.equal(TopK(1)(torch.ones(2, 4)).count_nonzero(dim=1), torch.ones(2))
    z, y = problem
    for m in (1, 2):
        model = fit_baseline("topk_sae", z, y, 5, active=m, epochs=5)
        e = model.encode(z)
        assert int(e.count_nonzero(dim=1).max()) <= m and bool((e >= 0).all())
    a = fit_baseline("topk_sae", z, y, 5, seed=1, epochs=20)
    b = fit_baseline("topk_sae", z, y, 5, seed=1, epochs=20)
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    c = fit_baseline("topk_sae", z, y, 5, seed=1, epochs=1)

    def mse(model):  # standardised reconstruction error; predicting 0 gives ~1
        zs = model.standardize_z(z)
        return float(
            (model.standardize_z(model.decode(model.encode(z))) - zs).pow(2).mean()
        )

    assert mse(a) < 0.5 * mse(c) and mse(a) < 0.4
    e = a.encode(z).double().numpy()
    w_ref, _ = lstsq_head(e, y.double().numpy())
    np.testing.assert_allclose(a.weight[0].numpy(), w_ref, rtol=1e-3, atol=1e-3)


def test_autoencoder_is_the_documented_ablation(problem) -> None:
    assert set(ABLATED_FIELDS) == {"reconstruction", "alpha_pt", "retune_rounds"}
    for base in (None, FAST):
        ref = (SRAEConfig() if base is None else base).to_dict()
        cfg = autoencoder_config(base).to_dict()
        diff = {k for k in ref if ref[k] != cfg[k]}
        assert diff == set(ABLATED_FIELDS)
        assert all(cfg[k] == v for k, v in ABLATED_FIELDS.items())
    z, y = problem
    model = fit_baseline("autoencoder", z, y, 3, seed=2, config=FAST)
    cfg = autoencoder_config(FAST, 3, 2)
    assert isinstance(model, SRAE) and model.config == cfg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        direct, _ = fit_srae(z, y, cfg, show_progress=False)
    for key, value in direct.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


# --------------------------------------------------------------- interface
@pytest.mark.parametrize("name", BASELINES)
def test_interface(name, fitted, cnn) -> None:
    model = fitted[name]
    z = cnn[3]
    assert isinstance(model, ConceptModel) and isinstance(model, nn.Module)
    assert model.n_concepts == K and model.in_features == 10 and not model.training
    out = model(z)
    assert out.x_features.shape == (120, K) and out.reconstruction.shape == (120, 10)
    torch.testing.assert_close(out.prediction, model.predict(out.x_features))
    c = model.contributions(out.x_features)
    torch.testing.assert_close(c.sum(-1) + model.bias, out.prediction)
    with pytest.raises(ValueError, match=r"z must have shape \(N, 10\)"):
        model.encode(z[:, :4])
    with pytest.raises(TypeError, match="dtype"):
        model.encode(z.double())
    if name != "autoencoder":
        with pytest.raises(NotImplementedError, match="refit"):
            model.save("unused")


@pytest.mark.parametrize("name", BASELINES)
def test_inside_srae_attribution(name, fitted, cnn) -> None:
    net, x, act, z, _ = cnn
    model = fitted[name]
    sa = SRAEAttribution.from_sraes(net, "relu2", {1: model})
    maps = sa.attribute(x[:4], target=1, interpolate="layer", relu_attributions=False)
    assert maps.shape == (4, K, 6, 6)
    # closed-form Grad-CAM: map_k = sum_c (1/HW) de_k/dz_c A_c
    jac = torch.func.vmap(torch.func.jacrev(lambda zi: model.encode(zi[None])[0]))(
        z[:4]
    )
    ref = torch.einsum("nkc,nchw->nkhw", jac / 36, act[:4])
    torch.testing.assert_close(maps, ref, atol=1e-5, rtol=1e-4)
    sal = sa.attribute(x[:2], target=1, method=Saliency)
    assert sal.shape == (2, K, 6, 6) and bool((sal >= 0).all())
    contrib = sa.contributions(x[:8], target=1)
    pred = model.predict(model.encode(z[:8]))[:, 0]
    torch.testing.assert_close(contrib.sum(1) + model.bias[0], pred)
    ex = sa.explain(x[:3], target=1)
    torch.testing.assert_close(ex.contributions.sum(1) + ex.bias, ex.xnn_score)
    assert ex.heatmaps.shape == (3, K, 6, 6)


def test_projection_baseline_map_is_linear_in_the_activation(fitted, cnn) -> None:
    net, x, act, _, _ = cnn
    model = fitted["pca"]
    sa = SRAEAttribution.from_sraes(net, "relu2", {1: model})
    maps = sa.attribute(x[:3], target=1, interpolate="layer", relu_attributions=False)
    ref = torch.einsum("kc,nchw->nkhw", model.basis / 36, act[:3])
    torch.testing.assert_close(maps, ref, atol=1e-6, rtol=1e-5)


def test_shared_multi_output_baseline(cnn) -> None:
    net, x, _, z, y = cnn
    model = fit_baseline("pca", z, y[:, [0, 2]], K)
    assert model.n_outputs == 2 and model.weight.shape == (2, K)
    for col in range(2):
        w_ref, b_ref = lstsq_head(
            model.encode(z).double().numpy(), y[:, [0, 2]][:, col].double().numpy()
        )
        np.testing.assert_allclose(model.weight[col].numpy(), w_ref, atol=1e-4)
    sa = SRAEAttribution.from_sraes(net, "relu2", model, targets=[0, 2])
    contrib = sa.contributions(x[:5], target=2)
    pred = model.predict(model.encode(z[:5]))[:, 1]
    torch.testing.assert_close(contrib.sum(1) + model.bias[1], pred)
    assert sa.attribute(x[:2], target=0).shape == (2, K, 6, 6)


def test_baselines_score_between_random_and_perfect() -> None:
    z, y = three_factor_problem(n=400, d=24, seed=1)
    # a score that is exactly linear in the top principal component
    pc = PCA(1, svd_solver="full").fit(z.double().numpy())
    y_lin = torch.from_numpy(pc.transform(z.double().numpy())[:, 0]).float()
    pca = fit_baseline("pca", z, y_lin, 3)
    r2 = 1 - (pca.predict(pca.encode(z))[:, 0] - y_lin).pow(2).mean() / y_lin.var()
    assert float(r2) > 0.9999
    # random directions in 24 dimensions rebuild the same score worse than PCA
    rnd = fit_baseline("random", z, y_lin, 3, seed=0)
    r2_rnd = 1 - (rnd.predict(rnd.encode(z))[:, 0] - y_lin).pow(2).mean() / y_lin.var()
    assert float(r2_rnd) < 0.99


def test_excitation_only_for_linear_relu_encoders(fitted, cnn) -> None:
    net, x, act, _, _ = cnn
    a = act[:2]  # relu2, (2, C, 6, 6)
    share = torch.nan_to_num(a / a.sum((2, 3), keepdim=True))  # GAP: A_c / sum A_c
    for name in ("pca", "random"):
        model = fitted[name]
        sa = SRAEAttribution.from_sraes(net, "relu2", {1: model})
        maps = sa.attribute(x[:2], target=1, method="excitation")
        assert maps.shape == (2, K, 6, 6)
        # one linear layer: P(z_c | e_k) = z_c W+_kc / sum_c' z_c' W+_kc'
        (lin,) = [m for m in model.encoder if isinstance(m, nn.Linear)]
        w = (lin.weight / model.z_scale).clamp_min(0).detach()
        p = a.mean((2, 3))[:, None, :] * w[None]
        p = p / p.sum(-1, keepdim=True)
        ref = torch.einsum("nkc,nchw->nkhw", p, share)
        torch.testing.assert_close(maps, ref, rtol=1e-4, atol=1e-6)
    for name, layer in (("nmf", "NonnegativeLeastSquares"), ("topk_sae", "TopK")):
        sa = SRAEAttribution.from_sraes(net, "relu2", {1: fitted[name]})
        with pytest.raises(TypeError, match=f"does not support {layer} layers"):
            sa.attribute(x[:2], target=1, method="excitation")


def test_nnls_encoder_hand_values_and_repeated_components() -> None:
    # H = [[1, 0], [1, 1]]: z = (2, 1) -> e = (1, 1) exactly; z = (0, 1) has
    # unconstrained solution (-1, 1) and NNLS solution (0, 0.5)
    nnls = NonnegativeLeastSquares(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    e = nnls(torch.tensor([[2.0, 1.0], [0.0, 1.0], [0.0, 0.0]]))
    expected = torch.tensor([[1.0, 1.0], [0.0, 0.5], [0.0, 0.0]])
    torch.testing.assert_close(e, expected, atol=1e-5, rtol=0)
    # a repeated component makes the active set singular: the ridge keeps the
    # codes finite and the reconstruction exact
    h = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    z = torch.tensor([[2.0, 3.0, 2.0]])
    e = NonnegativeLeastSquares(h)(z)
    assert bool(torch.isfinite(e).all())
    torch.testing.assert_close(e @ h, z, atol=1e-4, rtol=0)
