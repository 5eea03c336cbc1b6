#!/usr/bin/env python3
r"""The computations of :class:`~captum_srae.attribution.SRAEAttribution`.

Free functions behind :meth:`SRAEAttribution.attribute` (one heatmap per
x-feature, by Grad-CAM, Excitation Backprop or a Captum class, batched and
grouped by explained class) and behind :meth:`SRAEAttribution.explain`
(x-features, contributions and scores). The arguments are already checked
(see :mod:`captum_srae.attribution.checks`); the fitted XNNs come as a
:class:`~captum_srae.attribution.fitted.FittedXNNs`.

``early_exit`` (default True everywhere) lets a pass whose model output is not
needed stop right after the explained layer; False runs the whole model on
every pass (for models whose forward has side effects, or whose number of
calls of the layer changes from input to input).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import Tensor, nn

from captum_srae.activations import pool_activations
from captum_srae.attribution.checks import MapOptions
from captum_srae.attribution.excitation import excitation_maps
from captum_srae.attribution.fitted import FittedXNNs
from captum_srae.attribution.heatmaps import (
    XFeatureModel,
    captum_maps,
    capture_layers,
    gradcam_maps,
    resize_maps,
)
from captum_srae.attribution.smoothing import smooth_maps
from captum_srae.attribution.tokens import (
    patch_grid,
    token_layer_maps,
    token_maps,
    tokens_to_grid,
)
from captum_srae.core.config import TOKEN_POOLINGS
from captum_srae.core.model import SRAE

__all__ = [
    "attribute_maps",
    "capture",
    "concept_maps",
    "encode",
    "resize",
    "scores",
    "token_gradcam",
    "tokens_laid_out",
]


def capture(
    forward_func: Callable[..., Tensor],
    inputs: tuple,
    extra: tuple,
    module: nn.Module,
    hm: nn.Module,
    need_output: bool = True,
    early_exit: bool = True,
) -> tuple[dict[str, Tensor], Any]:
    """Run the model once, recording the outputs of ``module`` and ``hm``.

    Args:
        forward_func (nn.Module or Callable): the explained model.
        inputs (tuple): the inputs.
        extra (tuple): extra model arguments.
        module (nn.Module): the explained layer (key ``"layer"``).
        hm (nn.Module): the heatmap layer (key ``"heatmap_layer"`` unless it
            is ``module``).
        need_output (bool, optional): False returns None as the output and
            lets the pass stop after the last recorded layer. Default: True
        early_exit (bool, optional): allow that stop. Default: True

    Returns:
        *tuple[dict[str, Tensor], Any]*: the layer outputs and the model's
        output.
    """
    mods = {"layer": module} if hm is module else {"layer": module, "heatmap_layer": hm}
    return capture_layers(
        forward_func,
        mods,
        inputs,
        extra,
        need_output=need_output,
        early_exit=early_exit,
    )


def encode(a: Tensor, srae: SRAE, column: int) -> tuple[Tensor, Tensor]:
    """x-features and contributions of one group's layer output.

    Args:
        a (Tensor): the layer's output, batch first.
        srae (SRAE): the group's SRAE.
        column (int): the SRAE's output column of the group's class.

    Returns:
        *tuple[Tensor, Tensor]*: ``e`` and ``e·v``, both ``(N, n_concepts)``.
    """
    with torch.no_grad():
        e = srae.encode(pool_activations(a.to(srae.z_mean.dtype), srae.config.pooling))
        return e, e * srae.weight[column]


def concept_maps(
    forward_func: Callable[..., Tensor],
    inputs: tuple[Tensor, ...],
    extra: tuple,
    srae: SRAE,
    acts: dict[str, Tensor],
    modules: tuple[nn.Module, nn.Module],
    options: MapOptions,
    early_exit: bool = True,
) -> tuple[tuple[Tensor, ...], bool]:
    """Maps ``(N, len(options.concepts), ...)`` per returned tensor; whether in
    layer space.

    Args:
        forward_func (nn.Module or Callable): the explained model.
        inputs (tuple[Tensor, ...]): one group's inputs.
        extra (tuple): the group's extra model arguments.
        srae (SRAE): the group's SRAE.
        acts (dict[str, Tensor]): the outputs from :func:`capture`.
        modules (tuple[nn.Module, nn.Module]): the layer and heatmap layer.
        options (MapOptions): the method, x-features and its arguments.
        early_exit (bool, optional): let the x-feature model's passes stop
            after the layer. Default: True

    Returns:
        *tuple[tuple[Tensor, ...], bool]*: the maps and whether they have the
        heatmap layer's spatial size (rather than the input's).

    Raises:
        ValueError: if the heatmap layer is not spatial for a layer method,
            or ``attribution_kwargs`` do not suit the method; see
            :func:`~captum_srae.attribution.tokens.token_layer_maps` for a
            token pooling.
    """
    module, hm = modules
    method, ks, kwargs = options.method, options.concepts, options.attribution_kwargs
    pooling = srae.config.pooling
    hm_act = acts.get("heatmap_layer", acts["layer"])
    spatial_needed = method in ("gradcam", "excitation") or (
        isinstance(method, type) and issubclass(method, LayerAttribution)
    )
    if spatial_needed and hm_act.ndim < 3:
        which = "heatmap_layer" if "heatmap_layer" in acts else "layer"
        raise ValueError(
            f"{which} output of shape {tuple(hm_act.shape)} is not spatial "
            "(N, C, H, W); pass a convolutional heatmap_layer"
        )
    xmodel = XFeatureModel(forward_func, module, srae, pooling, ks, early_exit)
    if pooling in TOKEN_POOLINGS and hm_act.ndim == 3:
        maps = _token_layer(xmodel, inputs, extra, acts, hm, options)
        if maps is not None:
            return (maps,), True
    _check_token_options(method, pooling, options.interpolate)
    if method == "gradcam":
        if hm is module and pooling == "avg" and not kwargs:
            return (gradcam_maps(acts["layer"], srae, ks),), True
        method = LayerGradCam
    if method == "excitation":
        rest = dict(kwargs)
        contrastive = bool(rest.pop("contrastive", False))
        if rest:
            raise ValueError(
                f"attribution_kwargs for excitation accept only 'contrastive', "
                f"got {sorted(rest)}"
            )
        maps = excitation_maps(
            forward_func,
            module,
            srae,
            inputs,
            extra,
            heatmap_layer=hm,
            pooling=pooling,
            concepts=ks,
            contrastive=contrastive,
            activation=acts["layer"] if hm is module else None,
        )
        return (maps,), True
    return captum_maps(method, xmodel, inputs, extra, len(ks), hm, kwargs)


def _token_layer(
    xmodel: XFeatureModel,
    inputs: tuple[Tensor, ...],
    extra: tuple,
    acts: dict[str, Tensor],
    hm: nn.Module,
    options: MapOptions,
) -> Tensor | None:
    """Maps of a token layer at a token heatmap layer ("gradcam" or a Captum
    layer method), laid out; None for the other methods."""
    method = options.method
    if method == "gradcam" and hm is xmodel.layer:
        return token_gradcam(acts["layer"], xmodel.srae, True, options)
    if method == "gradcam" or (
        isinstance(method, type) and issubclass(method, LayerAttribution)
    ):
        hm_act = acts.get("heatmap_layer", acts["layer"])
        kwargs = options.attribution_kwargs
        maps = token_layer_maps(method, xmodel, inputs, extra, hm, hm_act, kwargs)
        return tokens_laid_out(maps, options.interpolate)
    return None


def _check_token_options(method: Any, pooling: str, interpolate: Any) -> None:
    """``interpolate="tokens"`` needs a token layer."""
    if interpolate == "tokens" and pooling not in TOKEN_POOLINGS:
        raise ValueError(
            f"interpolate='tokens' needs a token layer (pooling one of "
            f"{TOKEN_POOLINGS}), got pooling={pooling!r}; use 'layer' or False"
        )


def token_gradcam(
    activation: Tensor, srae: SRAE, at_layer: bool, options: MapOptions
) -> Tensor:
    """Grad-CAM maps of a token layer, on the patch grid where there is one.

    Args:
        activation (Tensor): the explained layer's output ``(N, T, D)``.
        srae (SRAE): the group's SRAE (a token pooling).
        at_layer (bool): whether the heatmap layer is the explained layer.
        options (MapOptions): the x-features, ``interpolate`` and the
            method's arguments.

    Returns:
        *Tensor*: ``(N, n, √P, √P)`` (see
        :func:`~captum_srae.attribution.tokens.tokens_to_grid`), or the maps
        over the tokens ``(N, n, T)`` when ``options.interpolate`` is
        ``"tokens"`` (a text classifier), or is False or ``"layer"`` and
        ``T`` is not a square grid (plus a class token).

    Raises:
        ValueError: for a heatmap layer other than the layer, any
            ``attribution_kwargs``, a layer that is not ``(N, T, D)``, or a
            token count without a square grid when maps are resized.
    """
    if not at_layer:
        raise ValueError(
            "token_gradcam maps the explained layer; use token_layer_maps for "
            "another heatmap_layer"
        )
    if options.attribution_kwargs:
        raise ValueError(
            "attribution_kwargs are not accepted by 'gradcam' on a token layer, "
            f"got {sorted(options.attribution_kwargs)}"
        )
    maps = token_maps(activation, srae, srae.config.pooling, options.concepts)
    return tokens_laid_out(maps, options.interpolate)


def tokens_laid_out(maps: Tensor, interpolate: Any) -> Tensor:
    """Token maps ``(N, n, T)`` on the patch grid, unless ``interpolate`` is
    ``"tokens"`` or (False or ``"layer"``) the tokens have no square grid.

    Args:
        maps (Tensor): maps over the tokens ``(N, n, T)``.
        interpolate (Any): the ``interpolate`` argument of ``attribute``.

    Returns:
        *Tensor*: ``(N, n, √P, √P)`` or ``maps``.

    Raises:
        ValueError: if the maps are to be resized but ``T`` has no grid.
    """
    keep_tokens = interpolate in (False, "layer")
    if interpolate == "tokens" or (
        keep_tokens and patch_grid(int(maps.shape[-1])) is None
    ):
        return maps
    return tokens_to_grid(maps)


def resize(maps: Tensor, first_input: Tensor, interpolate: Any) -> Tensor:
    """Resize layer-space maps as ``interpolate`` asks.

    Args:
        maps (Tensor): maps ``(N, k, *spatial)``.
        first_input (Tensor): the first input, whose trailing dimensions give
            the size when ``interpolate`` is True.
        interpolate (bool or Sequence[int]): True or a size.

    Returns:
        *Tensor*: the resized maps.

    Raises:
        ValueError: if ``interpolate`` is True but the input is not spatial.
    """
    if interpolate is True:
        if first_input.ndim < maps.ndim:
            raise ValueError(
                f"inputs of shape {tuple(first_input.shape)} have no spatial size "
                f"for maps of shape {tuple(maps.shape)}; pass interpolate='layer' "
                "(or 'tokens' for maps over a token layer's tokens)"
            )
        interpolate = first_input.shape[2 - maps.ndim :]
    return resize_maps(maps, interpolate)


def _rows(extra: tuple, idx: Tensor, n: int) -> tuple:
    """The extra arguments of the examples ``idx``: tensors with ``n`` rows
    are indexed, anything else is passed as it is."""
    return tuple(
        a[idx] if isinstance(a, Tensor) and a.ndim and a.shape[0] == n > 1 else a
        for a in extra
    )


def _finish(
    maps: tuple[Tensor, ...],
    layer_space: bool,
    contributions: Tensor | None,
    first_input: Tensor,
    options: MapOptions,
) -> tuple[Tensor, ...]:
    """ReLU, class map (``Σ_k c_k map_k``), smoothing and resizing of one
    group's maps."""
    maps = tuple(m.clamp_min(0) if options.relu else m for m in maps)
    if contributions is not None:  # output="class"
        c = contributions
        maps = tuple(
            (m * c.reshape(c.shape + (1,) * (m.ndim - 2))).sum(1, keepdim=True)
            for m in maps
        )
    if options.smoothing > 0:
        maps = tuple(smooth_maps(m, options.smoothing) for m in maps)
    if layer_space and options.interpolate not in (False, "layer", "tokens"):
        maps = tuple(resize(m, first_input, options.interpolate) for m in maps)
    return maps


def attribute_maps(
    forward_func: Callable[..., Tensor],
    modules: tuple[nn.Module, nn.Module],
    fitted: FittedXNNs,
    tup: tuple[Tensor, ...],
    extra: tuple,
    tgt: Tensor,
    options: MapOptions,
    early_exit: bool = True,
) -> tuple[Tensor, ...]:
    """The body of :meth:`SRAEAttribution.attribute`, on checked arguments.

    Args:
        forward_func (nn.Module or Callable): the explained model.
        modules (tuple[nn.Module, nn.Module]): the layer and heatmap layer.
        fitted (FittedXNNs): the fitted XNN(s).
        tup (tuple[Tensor, ...]): the inputs, ``N`` examples.
        extra (tuple): extra model arguments; tensors with ``N`` rows are
            split with the inputs.
        tgt (Tensor): the class of each example.
        options (MapOptions): the checked options of ``attribute``.
        early_exit (bool, optional): let passes stop after the layer.
            Default: True

    Returns:
        *tuple[Tensor, ...]*: the maps of all examples, one per tensor the
        method returns.
    """
    n = tup[0].shape[0]
    size = options.batch_size or n
    results: list[Tensor] = []
    for start in range(0, n, size):
        for idx, srae, col in fitted.groups(tgt[start : start + size]):
            idx = idx + start
            sub, sub_extra = tuple(t[idx] for t in tup), _rows(extra, idx, n)
            acts, _ = capture(
                forward_func,
                sub,
                sub_extra,
                *modules,
                need_output=False,
                early_exit=early_exit,
            )
            maps, layer_space = concept_maps(
                forward_func, sub, sub_extra, srae, acts, modules, options, early_exit
            )
            c = None
            if options.output == "class":
                c = encode(acts["layer"], srae, col)[1][:, options.concepts]
            maps = _finish(maps, layer_space, c, tup[0], options)
            if not results:
                results = [m.new_zeros((n,) + m.shape[1:]) for m in maps]
            for res, m in zip(results, maps, strict=True):
                res[idx] = m.detach().to(res.dtype)
    return tuple(results)


def scores(
    forward_func: Callable[..., Tensor],
    layer: nn.Module,
    fitted: FittedXNNs,
    tup: tuple[Tensor, ...],
    extra: tuple,
    tgt: Tensor,
) -> dict[str, Tensor]:
    """Per-example x-features, weights, bias, contributions and scores.

    Args:
        forward_func (nn.Module or Callable): the explained model.
        layer (nn.Module): the explained layer.
        fitted (FittedXNNs): the fitted XNN(s).
        tup (tuple[Tensor, ...]): the checked inputs.
        extra (tuple): extra model arguments.
        tgt (Tensor): the class of each example.

    Returns:
        *dict[str, Tensor]*: ``"e"``, ``"w"``, ``"b"``, ``"c"`` (x-features,
        weights, bias, contributions), ``"xnn"`` and ``"model"`` (scores) and
        ``"target"``.
    """
    n = tup[0].shape[0]
    acts, out = capture(forward_func, tup, extra, layer, layer)
    parts: dict[str, list[tuple[Tensor, Tensor]]] = {}
    for idx, srae, col in fitted.groups(tgt):
        e, c = encode(acts["layer"][idx], srae, col)
        w = srae.weight[col].detach().expand_as(e)
        b = srae.bias[col].detach().expand(e.shape[0])
        for key, val in (("e", e), ("w", w), ("b", b), ("c", c)):
            parts.setdefault(key, []).append((idx, val))
    res = {}
    for key, items in parts.items():
        full = items[0][1].new_zeros((n,) + items[0][1].shape[1:])
        for idx, val in items:
            full[idx] = val
        res[key] = full
    res["xnn"] = res["c"].sum(dim=1) + res["b"]
    if isinstance(out, Tensor) and out.ndim == 2:
        res["model"] = out.detach()[torch.arange(n), tgt.to(out.device)]
    else:
        res["model"] = torch.full((n,), float("nan"))
    res["target"] = tgt
    return res
