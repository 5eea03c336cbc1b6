#!/usr/bin/env python3
r"""Maps of x-features at a token layer ``(N, T, D)`` (a vision transformer).

With a token pooling (``SRAEConfig.pooling`` ``"cls"``, ``"mean"`` or
``"mean_patches"``) the SRAE reads the pooled vector ``z`` of the tokens
``A`` ``(T, D)``. The map of x-feature ``k`` is Grad-CAM's closed form on the
tokens: the weights are the gradient of ``e_k`` at the pooled vector,
``w_d = ∂e_k/∂z_d`` (:func:`~captum_srae.attribution.heatmaps.encoder_jacobian`),
and the map over tokens is ``m_t = (1/T)·Σ_d w_d·A_t,d`` (:func:`token_maps`):
Grad-CAM's channel weight is the *mean* gradient over the ``T`` positions, as
for a CNN layer of ``T`` locations, so the maps of a CNN and of a token layer
have the same scale. For ``"mean"`` pooling the maps add up to the
linearisation of ``e_k`` at ``z``: ``Σ_t m_t = Σ_d w_d·z_d``.

:func:`tokens_to_grid` lays the patch tokens of a vision transformer on their
``√P × √P`` grid: the first token is the class token when ``T − 1`` is a
perfect square, and there is none when ``T`` is one (:func:`patch_grid`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from captum.attr import LayerAttribution, LayerGradCam, LayerGradientXActivation
from torch import Tensor, nn

from captum_srae.activations import pool_activations
from captum_srae.attribution.heatmaps import (
    XFeatureModel,
    check_method,
    encoder_jacobian,
)
from captum_srae.core.config import TOKEN_POOLINGS
from captum_srae.core.model import SRAE

__all__ = [
    "mask_tokens",
    "patch_grid",
    "token_layer_maps",
    "token_maps",
    "tokens_to_grid",
]


def token_maps(
    activation: Tensor,
    srae: SRAE,
    pooling: str,
    concepts: Sequence[int] | None = None,
) -> Tensor:
    r"""Grad-CAM maps over the tokens of every x-feature, no ReLU applied.

    ``m_k,t = (1/T)·Σ_d w_k,d·A_t,d`` with ``w_k,d = ∂e_k/∂z_d`` at
    ``z = pool(A)`` (``pool`` as in
    :func:`~captum_srae.activations.pool_activations`).

    Args:
        activation (Tensor): the token layer's output ``A``, shape ``(N, T, D)``.
        srae (SRAE): the explanation network (``in_features == D``).
        pooling (str): the SRAE's pooling, ``"cls"``, ``"mean"`` or
            ``"mean_patches"``.
        concepts (Sequence[int], optional): the x-features to map.
            Default: None (all)

    Returns:
        *Tensor*: the maps, shape ``(N, n, T)``; the class token (if any)
        keeps its own entry.

    Raises:
        ValueError: if ``pooling`` is not a token pooling or ``activation``
            is not 3-D (see :func:`~captum_srae.activations.pool_activations`).

    Examples::

        >>> srae = SRAE(32, config=SRAEConfig(n_concepts=3, pooling="cls"))
        >>> token_maps(torch.rand(2, 17, 32), srae, "cls").shape
        torch.Size([2, 3, 17])
    """
    if pooling not in TOKEN_POOLINGS:
        raise ValueError(
            f"pooling must be one of {TOKEN_POOLINGS} for maps over tokens, "
            f"got {pooling!r}"
        )
    a = activation.detach().to(srae.z_mean.dtype)
    z = pool_activations(a, pooling)  # raises unless a is (N, T, D)
    w = encoder_jacobian(srae, z, concepts)
    return torch.einsum("nkd,ntd->nkt", w.detach(), a) / a.shape[1]


def token_layer_maps(
    method: Any,
    xmodel: XFeatureModel,
    inputs: tuple[Tensor, ...],
    additional_forward_args: tuple,
    heatmap_layer: nn.Module,
    activation: Tensor,
    attribution_kwargs: dict[str, Any] | None = None,
) -> Tensor:
    r"""Maps over the tokens of a heatmap layer ``(N, T', D')``, any block.

    For maps drawn at another token layer than the explained one (an earlier
    block, where attention has not yet mixed the tokens, or a text model's
    embedding), or with a Captum layer method at the explained layer.

    * ``"gradcam"``: Grad-CAM over the tokens, ``m_k,t = Σ_d ᾱ_k,d·A'_t,d``
      with ``ᾱ_k,d = (1/T')·Σ_t ∂e_k/∂A'_t,d`` (the gradient averaged over
      the tokens); at the explained layer it equals :func:`token_maps`.
    * A Captum layer method (``LayerGradientXActivation``,
      ``LayerIntegratedGradients``, …) run on ``xmodel`` for each
      x-feature, its attribution ``(N, T', D')`` summed over the width.
      ``LayerGradCam`` averages over the width, not the tokens: refused.

    Args:
        method (str or type): ``"gradcam"`` or a Captum layer method class.
        xmodel (captum_srae.attribution.heatmaps.XFeatureModel): the
            x-features as a model.
        inputs (tuple[Tensor, ...]): the inputs.
        additional_forward_args (tuple): passed after the inputs.
        heatmap_layer (nn.Module): the token layer of the maps.
        activation (Tensor): its output on ``inputs``, ``(N, T', D')``.
        attribution_kwargs (dict, optional): arguments of the Captum
            method's ``attribute``; none for ``"gradcam"``. Default: None

    Returns:
        *Tensor*: the maps ``(N, n, T')`` of the outputs of ``xmodel``, no
        ReLU applied.

    Raises:
        ValueError: for ``LayerGradCam``, a method that is not a layer
            method, ``attribution_kwargs`` with ``"gradcam"``, or an
            attribution that is not ``(N, T', D')``.

    Examples::

        >>> xm = XFeatureModel(vit, vit.encoder.layers[3], srae, "cls")
        >>> maps = token_layer_maps("gradcam", xm, (x,), (), early, act)
    """
    kwargs = dict(attribution_kwargs or {})
    if method != "gradcam":
        kwargs = check_method(method, kwargs)  # no target etc. in the kwargs
    explainer = _layer_explainer(method, xmodel, heatmap_layer, kwargs)
    attrs = _per_x_feature(explainer, xmodel, inputs, additional_forward_args, kwargs)
    a = activation.detach()
    maps = []
    for attr in attrs:
        if attr.shape != a.shape:
            raise ValueError(
                f"method: an attribution of shape {tuple(attr.shape)} for a "
                f"token heatmap_layer of shape {tuple(a.shape)}"
            )
        if method == "gradcam":  # the gradient, averaged over the tokens
            maps.append(torch.einsum("nd,ntd->nt", attr.to(a.dtype).mean(dim=1), a))
        else:
            maps.append(attr.sum(dim=-1))
    return torch.stack(maps, dim=1)


def _layer_explainer(
    method: Any, xmodel: XFeatureModel, layer: nn.Module, kwargs: dict[str, Any]
) -> Any:
    """The Captum layer method of :func:`token_layer_maps` (the layer's
    gradient for "gradcam"), or a ValueError."""
    if method == "gradcam":
        if kwargs:
            raise ValueError(
                "attribution_kwargs are not accepted by 'gradcam' on a token "
                f"layer, got {sorted(kwargs)}"
            )
        return LayerGradientXActivation(xmodel, layer, multiply_by_inputs=False)
    if isinstance(method, type) and issubclass(method, LayerGradCam):
        raise ValueError(
            f"method: {method.__name__} averages a token layer over its width, "
            "not over the tokens; use method='gradcam' for Grad-CAM over tokens"
        )
    if isinstance(method, type) and issubclass(method, LayerAttribution):
        return method(xmodel, layer)
    raise ValueError(
        f"method: maps at a token heatmap_layer need 'gradcam' or a Captum "
        f"layer method, got {method!r}"
    )


def _per_x_feature(
    explainer: Any,
    xmodel: XFeatureModel,
    inputs: tuple[Tensor, ...],
    additional_forward_args: tuple,
    kwargs: dict[str, Any],
) -> list[Tensor]:
    """``explainer.attribute`` for each output of ``xmodel``, detached."""
    n = len(xmodel.concepts) if xmodel.concepts is not None else None
    n = n if n is not None else xmodel.srae.config.n_concepts
    args = inputs if len(inputs) > 1 else inputs[0]
    extra = additional_forward_args or None
    out = []
    with torch.enable_grad():
        for k in range(n):
            attr = explainer.attribute(
                args, target=k, additional_forward_args=extra, **kwargs
            )
            out.append((attr[0] if isinstance(attr, tuple) else attr).detach())
    return out


def patch_grid(n_tokens: int) -> tuple[int, int] | None:
    r"""The class tokens and grid side of a vision transformer's ``T`` tokens.

    Args:
        n_tokens (int): the number of tokens ``T``.

    Returns:
        *tuple[int, int] or None*: ``(1, √(T−1))`` when ``T − 1`` is a
        positive perfect square (a class token, then the patches),
        ``(0, √T)`` when ``T`` is a perfect square (patches only), None
        otherwise.

    Examples::

        >>> patch_grid(197), patch_grid(196), patch_grid(6)
        ((1, 14), (0, 14), None)
    """
    for prefix in (1, 0):
        p = n_tokens - prefix
        side = math.isqrt(p) if p > 0 else 0
        if side and side * side == p:
            return prefix, side
    return None


def tokens_to_grid(maps: Tensor) -> Tensor:
    r"""Lay token maps ``(N, n, T)`` on the patch grid ``(N, n, √P, √P)``,
    dropping the class token (see :func:`patch_grid`).

    Args:
        maps (Tensor): maps over the tokens, shape ``(N, n, T)``.

    Returns:
        *Tensor*: the maps of the ``P`` patch tokens, in row-major order on
        the ``√P × √P`` grid.

    Raises:
        ValueError: if ``T`` is neither ``1 + P`` nor ``P`` for a perfect
            square ``P``.

    Examples::

        >>> tokens_to_grid(torch.rand(2, 3, 65)).shape
        torch.Size([2, 3, 8, 8])
    """
    n_tokens = int(maps.shape[-1])
    grid = patch_grid(n_tokens)
    if grid is None:
        raise ValueError(
            f"a token layer with {n_tokens} tokens (maps of shape "
            f"{tuple(maps.shape)}) has no square grid of patches (T = P or "
            "1 + P with P a perfect square); pass interpolate='tokens' to get "
            "the maps over the tokens (N, n, T)"
        )
    prefix, side = grid
    return maps[..., prefix:].reshape(*maps.shape[:-1], side, side)


def mask_tokens(maps: Tensor, mask: Tensor) -> Tensor:
    r"""Set the maps of padding tokens to zero.

    Args:
        maps (Tensor): maps over the tokens, shape ``(N, n, T)``.
        mask (Tensor): the attention mask ``(N, T)``, nonzero (True) for the
            real tokens, zero (False) for padding.

    Returns:
        *Tensor*: ``maps`` with the entries of padding tokens set to 0.

    Raises:
        ValueError: if ``mask`` is not ``(N, T)`` for these maps.

    Examples::

        >>> mask_tokens(torch.ones(1, 2, 3), torch.tensor([[1, 1, 0]]))[0, 0]
        tensor([1., 1., 0.])
    """
    if maps.ndim != 3 or tuple(mask.shape) != (maps.shape[0], maps.shape[2]):
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} must be (N, T) for maps over "
            f"tokens of shape {tuple(maps.shape)}"
        )
    keep = mask.to(device=maps.device) != 0
    return maps * keep.unsqueeze(1).to(maps.dtype)
