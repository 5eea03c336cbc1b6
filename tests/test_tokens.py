"""Token layers ``(N, T, D)`` as explained layers (issue #17): the token
poolings, Grad-CAM maps over tokens against an autograd oracle, the vision
transformer grid, and bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from captum.attr import LayerGradCam, LayerGradientXActivation
from torch import Tensor, nn
from torchvision.models.vision_transformer import VisionTransformer

from captum_srae import SRAE, SRAEAttribution, SRAEConfig
from captum_srae.activations import pool_activations
from captum_srae.attribution.heatmaps import XFeatureModel
from captum_srae.attribution.tokens import (
    patch_grid,
    token_layer_maps,
    token_maps,
    tokens_to_grid,
)

TOL = 1e-5


class TokenMix(nn.Module):
    """Attention-free token mixing: ``A = X + tanh(M X)``, ``M`` (T, T)."""

    def __init__(self, n_tokens: int) -> None:
        super().__init__()
        self.mix = nn.Linear(n_tokens, n_tokens)

    def forward(self, x: Tensor) -> Tensor:
        return x + torch.tanh(self.mix(x.transpose(1, 2)).transpose(1, 2))


class TinyTokenNet(nn.Module):
    """2×2 patches of a 1-channel image embedded as tokens, a class token,
    one mixing block (the explained layer ``block``, output ``(N, 1 + P, D)``)
    and a head on the class token or the mean of the tokens."""

    def __init__(self, n_patches: int, dim: int = 6, head_pool: str = "cls"):
        super().__init__()
        self.embed = nn.Linear(4, dim)
        self.cls_token = nn.Parameter(torch.randn(dim))
        self.block = TokenMix(n_patches + 1)
        self.head = nn.Linear(dim, 3)
        self.head_pool = head_pool

    def forward(self, x: Tensor) -> Tensor:
        patches = F.unfold(x, 2, stride=2).transpose(1, 2)  # (N, P, 4)
        t = self.embed(patches)
        t = torch.cat([self.cls_token.expand(t.shape[0], 1, -1), t], dim=1)
        a = self.block(t)
        return self.head(a[:, 0] if self.head_pool == "cls" else a.mean(dim=1))


def _srae(dim: int, pooling: str, n_concepts: int = 3) -> SRAE:
    """A hand-set float64 SRAE with every encoder unit active."""
    cfg = SRAEConfig(n_concepts=n_concepts, hidden_sizes=(8, 5), pooling=pooling)
    srae = SRAE(dim, 1, cfg).double().eval()
    with torch.no_grad():
        for m in srae.encoder:
            if isinstance(m, nn.Linear):
                m.bias.fill_(0.5)
    return srae


def _block_output(net: TinyTokenNet, x: Tensor) -> Tensor:
    """The explained layer's output, read independently of the package."""
    out: list[Tensor] = []
    handle = net.block.register_forward_hook(lambda _m, _i, o: out.append(o))
    try:
        with torch.no_grad():
            net(x)
    finally:
        handle.remove()
    return out[0]


def _oracle_maps(a: Tensor, srae: SRAE, pooling: str) -> Tensor:
    """``m_k,t = (1/T) Σ_d (∂e_k/∂z_d) A_t,d`` by torch.autograd's Jacobian."""
    pooled = {
        "cls": a[:, 0],
        "mean": a.mean(dim=1),
        "mean_patches": a[:, 1:].mean(dim=1),
    }[pooling]
    maps = []
    for i in range(a.shape[0]):
        jac = torch.autograd.functional.jacobian(
            lambda z: srae.encode(z[None])[0], pooled[i]
        )  # (n, D)
        maps.append(a[i] @ jac.T / a.shape[1])  # (T, n)
    return torch.stack(maps).transpose(1, 2)


@pytest.fixture
def token_setup():
    def make(pooling: str, n_patches: int = 4, head_pool: str = "cls"):
        torch.manual_seed(0)
        net = TinyTokenNet(n_patches, head_pool=head_pool).double().eval()
        side = int(round(n_patches**0.5))
        shape = (2 * side,) * 2 if side * side == n_patches else (2, 2 * n_patches)
        x = torch.randn(3, 1, *shape, dtype=torch.float64)
        return net, _srae(6, pooling), x

    return make


# ------------------------------------------------------------------ pooling
def test_token_poolings_values() -> None:
    a = torch.arange(24.0).reshape(2, 3, 4)
    assert torch.equal(pool_activations(a, "cls"), a[:, 0])
    assert torch.equal(pool_activations(a, "mean"), a.mean(dim=1))
    assert torch.equal(pool_activations(a, "mean_patches"), a[:, 1:].mean(dim=1))
    # the CNN poolings are unchanged: "avg" averages every dim after the 2nd
    assert torch.equal(pool_activations(a, "avg"), a.mean(dim=2))


@pytest.mark.parametrize("pooling", ["cls", "mean", "mean_patches"])
@pytest.mark.parametrize("shape", [(2, 8, 3, 3), (2, 8), (2, 3, 4, 5, 6)])
def test_token_pooling_on_other_ranks_raises(pooling: str, shape: tuple) -> None:
    with pytest.raises(ValueError, match=rf"pooling='{pooling}'.*{shape}"):
        pool_activations(torch.ones(shape), pooling)


def test_config_accepts_token_poolings() -> None:
    for pooling in ("cls", "mean", "mean_patches"):
        assert SRAEConfig(pooling=pooling).pooling == pooling
    with pytest.raises(ValueError, match="pooling must be one of"):
        SRAEConfig(pooling="max")  # type: ignore[arg-type]


def test_patch_grid() -> None:
    assert patch_grid(197) == (1, 14)
    assert patch_grid(196) == (0, 14)
    assert patch_grid(17) == (1, 4)
    assert patch_grid(6) is None
    maps = torch.arange(2 * 17.0).reshape(1, 2, 17)
    grid = tokens_to_grid(maps)
    assert grid.shape == (1, 2, 4, 4)
    assert torch.equal(grid.flatten(2), maps[..., 1:])


# ------------------------------------------------------------------ oracles
@pytest.mark.parametrize("pooling", ["cls", "mean", "mean_patches"])
def test_token_maps_equal_autograd_oracle(token_setup, pooling: str) -> None:
    net, srae, x = token_setup(pooling, head_pool="cls" if pooling == "cls" else "m")
    a = _block_output(net, x)
    assert a.shape == (3, 5, 6)
    expected = _oracle_maps(a, srae, pooling)
    got = token_maps(a, srae, pooling)
    assert got.shape == (3, 3, 5)
    diff = (got - expected).abs().max().item()
    assert diff < TOL, diff
    assert expected.abs().max() > 0.02  # not a trivially zero comparison

    # through SRAEAttribution: the patch tokens on the 2×2 grid
    sa = SRAEAttribution.from_sraes(net, "block", srae)
    raw = sa.attribute(x, target=0, interpolate=False, relu_attributions=False)
    assert raw.shape == (3, 3, 2, 2)
    diff = (raw.flatten(2) - expected[..., 1:]).abs().max().item()
    assert diff < TOL, diff
    relu = sa.attribute(x, target=0, interpolate=False)  # relu by default
    diff = (relu.flatten(2) - expected[..., 1:].clamp_min(0)).abs().max().item()
    assert diff < TOL, diff


def test_mean_pooling_maps_average_to_the_linearisation(token_setup) -> None:
    # m_k,t = (1/T) Σ_d w_k,d A_t,d and z = (1/T) Σ_t A_t, so
    # Σ_t m_k,t = Σ_d w_k,d z_d exactly (the first-order term of e_k at z).
    net, srae, x = token_setup("mean", head_pool="mean")
    a = _block_output(net, x)
    z = a.mean(dim=1)
    maps = token_maps(a, srae, "mean")
    jac = torch.stack(
        [
            torch.autograd.functional.jacobian(lambda v: srae.encode(v[None])[0], zi)
            for zi in z
        ]
    )
    linear = torch.einsum("nkd,nd->nk", jac, z)
    diff = (maps.sum(dim=2) - linear).abs().max().item()
    assert diff < 1e-10, diff


def test_mean_pooling_maps_equal_cnn_gradcam_on_the_same_grid(token_setup) -> None:
    # the same activations as tokens (N, T, D) with "mean" pooling and as a
    # grid (N, D, h, w) with "avg" pooling: the same maps, scale included
    from captum_srae.attribution.heatmaps import gradcam_maps

    net, srae, x = token_setup("mean", n_patches=16, head_pool="mean")
    a = _block_output(net, x)  # (N, 17, D): drop the class token
    tokens = a[:, 1:]
    grid = tokens.transpose(1, 2).reshape(a.shape[0], a.shape[2], 4, 4)
    got = token_maps(tokens, srae, "mean")
    ref = gradcam_maps(grid, srae).flatten(2)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------- vision transformers
def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks for m in model.modules())


def _vit_config() -> SRAEConfig:
    return SRAEConfig(
        pooling="cls",
        n_concepts=3,
        hidden_sizes=(16, 8),
        pretrain_epochs=1,
        max_epochs=2,
        batch_size=16,
        epoch_samples=32,
        retune_rounds=1,
    )


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_small_vit_fit_and_attribute() -> None:
    torch.manual_seed(0)
    model = VisionTransformer(
        image_size=32,
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        mlp_dim=64,
        num_classes=3,
    ).eval()
    x = torch.randn(32, 3, 32, 32)
    sa = SRAEAttribution(model, "encoder.layers.encoder_layer_1", config=_vit_config())
    sa.fit(x, target=0, show_progress=False)
    assert sa.layer_shape_ == (17, 32)
    maps = sa.attribute(x[:4], target=0)
    assert maps.shape == (4, 3, 32, 32)
    assert torch.isfinite(maps).all()
    assert sa.attribute(x[:4], target=0, interpolate=False).shape == (4, 3, 4, 4)
    assert sa.attribute(x[:4], target=0, output="class").shape == (4, 1, 32, 32)
    assert _no_hooks(model)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_vit_b_16_fit_and_attribute() -> None:
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16(weights=None).eval()
    x = torch.randn(8, 3, 224, 224)  # 8: the fit holds out a split
    cfg = SRAEConfig(
        pooling="cls",
        n_concepts=3,
        hidden_sizes=(8, 4),
        pretrain_epochs=0,
        max_epochs=1,
        batch_size=8,
        epoch_samples=8,
        retune_rounds=1,
    )
    sa = SRAEAttribution(model, "encoder.layers.encoder_layer_1", config=cfg)
    sa.fit(x, target=0, show_progress=False)
    maps = sa.attribute(x[:2], target=0)
    assert maps.shape == (2, 3, 224, 224)
    assert torch.isfinite(maps).all()
    assert _no_hooks(model)


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_token_pooling_on_conv_layer_raises(pooling: str) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    net.append(nn.Linear(4, 2))
    cfg = SRAEConfig(pooling=pooling, n_concepts=2, hidden_sizes=(4, 3))
    sa = SRAEAttribution(net, "1", config=cfg)
    with pytest.raises(ValueError, match=rf"pooling='{pooling}'.*\(16, 4, 6, 6\)"):
        sa.fit(torch.randn(16, 3, 8, 8), target=0, show_progress=False)
    assert _no_hooks(net)


def test_interpolate_tokens_needs_a_token_layer() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    net.append(nn.Linear(4, 2))
    srae = SRAE(4, 1, SRAEConfig(n_concepts=2, hidden_sizes=(4, 3))).eval()
    sa = SRAEAttribution.from_sraes(net, "1", {0: srae}, n_outputs=2)
    x = torch.randn(3, 3, 8, 8)
    with pytest.raises(ValueError, match="interpolate='tokens' needs a token layer"):
        sa.attribute(x, target=0, interpolate="tokens")
    assert sa.attribute(x, target=0, interpolate="layer").shape == (3, 2, 6, 6)
    assert _no_hooks(net)


def test_non_square_token_count(token_setup) -> None:
    net, srae, x = token_setup("cls", n_patches=5)  # T = 6: no square grid
    sa = SRAEAttribution.from_sraes(net, "block", srae)
    with pytest.raises(ValueError, match="interpolate='tokens'"):
        sa.attribute(x, target=0)
    maps = sa.attribute(x, target=0, interpolate=False, relu_attributions=False)
    assert maps.shape == (3, 3, 6)  # the maps over all tokens
    expected = _oracle_maps(_block_output(net, x), srae, "cls")
    assert (maps - expected).abs().max() < TOL
    assert _no_hooks(net)


class _ChannelsLast(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, 2, 3, 1)


def test_swin_style_layout_raises() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 2, stride=2),
        _ChannelsLast(),  # (N, H, W, C), as Swin's stages
        nn.Flatten(),
        nn.Linear(4 * 4 * 8, 2),
    )
    srae = SRAE(8, 1, SRAEConfig(pooling="mean", n_concepts=2, hidden_sizes=(4, 3)))
    sa = SRAEAttribution.from_sraes(net, "1", srae.eval())
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(
        ValueError, match=r"pooling='mean'.*\(2, 4, 4, 8\).*\(N, C, H, W\)"
    ):
        sa.attribute(x, target=0)
    with pytest.raises(ValueError, match=r"\(N, T, D\)"):
        sa.contributions(x, target=0)
    assert _no_hooks(net)


def test_token_pooling_rejects_excitation_and_layergradcam(token_setup) -> None:
    net, srae, x = token_setup("cls")
    sa = SRAEAttribution.from_sraes(net, "block", srae)
    with pytest.raises(ValueError, match="pooling"):
        sa.attribute(x, target=0, method="excitation")
    # LayerGradCam would average the tokens over their width
    with pytest.raises(ValueError, match="method: LayerGradCam averages"):
        sa.attribute(x, target=0, method=LayerGradCam)
    other = SRAEAttribution.from_sraes(net, "block", srae, heatmap_layer="embed")
    with pytest.raises(ValueError, match="method: LayerGradCam averages"):
        other.attribute(x, target=0, method=LayerGradCam)
    with pytest.raises(ValueError, match="attribution_kwargs"):
        other.attribute(x, target=0, attribution_kwargs={"n_steps": 3})
    assert _no_hooks(net)


def _embed_gradients(net: TinyTokenNet, srae: SRAE, x: Tensor) -> tuple:
    """``∂e_k/∂E`` at the patch embedding ``E`` ``(N, P, D)``, by autograd
    through an independent re-implementation of the forward pass."""
    patches = F.unfold(x, 2, stride=2).transpose(1, 2)
    emb = net.embed(patches).detach().requires_grad_()
    t = torch.cat([net.cls_token.expand(x.shape[0], 1, -1), emb], dim=1)
    e = srae.encode(net.block(t)[:, 0])
    grads = [
        torch.autograd.grad(e[:, k].sum(), emb, retain_graph=True)[0]
        for k in range(e.shape[1])
    ]
    return emb.detach(), torch.stack(grads, dim=1)  # (N, P, D), (N, n, P, D)


def test_earlier_token_heatmap_layer_equals_autograd_oracle(token_setup) -> None:
    net, srae, x = token_setup("cls")
    emb, grads = _embed_gradients(net, srae, x)
    sa = SRAEAttribution.from_sraes(net, "block", srae, heatmap_layer="embed")
    # Grad-CAM over tokens: the gradient averaged over the P tokens
    expected = torch.einsum("nkd,npd->nkp", grads.mean(dim=2), emb)
    got = sa.attribute(x, target=0, interpolate=False, relu_attributions=False)
    assert got.shape == (3, 3, 2, 2)  # 4 patch tokens, no class token
    diff = (got.flatten(2) - expected).abs().max().item()
    assert diff < TOL, diff
    assert expected.abs().max() > 0.01
    # gradient × activation, summed over the width
    gxa = (grads * emb[:, None]).sum(-1)
    got = sa.attribute(
        x,
        target=0,
        method=LayerGradientXActivation,
        interpolate="tokens",
        relu_attributions=False,
    )
    assert got.shape == (3, 3, 4)
    assert (got - gxa).abs().max().item() < TOL
    # resized to the input like a CNN's maps
    assert sa.attribute(x, target=0).shape == (3, 3, 4, 4)
    assert _no_hooks(net)


def test_token_layer_maps_at_the_layer_equal_the_closed_form(token_setup) -> None:
    net, srae, x = token_setup("mean", head_pool="m")
    a = _block_output(net, x)
    xmodel = XFeatureModel(net, net.block, srae, "mean")
    got = token_layer_maps("gradcam", xmodel, (x,), (), net.block, a)
    diff = (got - token_maps(a, srae, "mean")).abs().max().item()
    assert diff < 1e-10, diff
    sa = SRAEAttribution.from_sraes(net, "block", srae)
    via_layer = sa.attribute(
        x,
        target=0,
        method=LayerGradientXActivation,
        interpolate="tokens",
        relu_attributions=False,
    )
    # "mean" pooling: ∂z/∂A_t = 1/T, so gradient × activation summed over D
    # is the closed form m_t = (1/T) Σ_d w_d A_t,d
    diff = (via_layer - token_maps(a, srae, "mean")).abs().max().item()
    assert diff < 1e-10, diff


def test_token_maps_reject_a_cnn_pooling(token_setup) -> None:
    _, srae, _ = token_setup("cls")
    with pytest.raises(ValueError, match="pooling must be one of"):
        token_maps(torch.ones(2, 5, 6, dtype=torch.float64), srae, "avg")


def test_compare_runs_concept_baselines_on_a_token_layer() -> None:
    # the baselines accept the token poolings, and their concept maps are
    # drawn by the token closed form, as the SRAE's
    from captum_srae.evaluation.compare import compare

    torch.manual_seed(0)
    net = TinyTokenNet(16, head_pool="mean").eval()
    x_fit, x_test = torch.randn(120, 1, 8, 8), torch.randn(30, 1, 8, 8)
    cfg = SRAEConfig(n_concepts=2, pooling="mean", hidden_sizes=(8, 4))
    res = compare(
        net, "block", x_fit, x_test, methods=["PCA", "Random basis"],
        config=cfg, n_maps=6, n_steps=2, show_progress=False,
    )  # fmt: skip
    assert res.errors == {}
    for name in ("PCA", "Random basis"):
        row = res.per_seed[name][0]
        assert math.isfinite(row["r2"]) and math.isfinite(row["deletion_auc"])
    assert res.per_seed["PCA"][0]["r2"] > 0.5  # the head is linear in 6 dims
