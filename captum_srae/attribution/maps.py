#!/usr/bin/env python3
r"""The computations of :class:`~captum_srae.attribution.SRAEAttribution`.

Free functions behind :meth:`SRAEAttribution.attribute` (one heatmap per
x-feature, by Grad-CAM, Excitation Backprop or a Captum class, batched and
grouped by explained class) and behind :meth:`SRAEAttribution.explain`
(x-features, contributions and scores). The arguments are already checked
(see :mod:`captum_srae.attribution.checks`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import Tensor, nn

from captum_srae.activations import pool_activations
from captum_srae.attribution.checks import check_fitted, check_inputs, model_device
from captum_srae.attribution.excitation import excitation_maps
from captum_srae.attribution.heatmaps import (
    XFeatureModel,
    captum_maps,
    capture_layers,
    gradcam_maps,
    resize_maps,
)
from captum_srae.core.model import SRAE
from captum_srae.utils.captum_compat import TargetType, _format_additional_forward_args

if TYPE_CHECKING:
    from captum_srae.attribution.srae_attribution import SRAEAttribution

__all__ = ["attribute_maps", "capture", "concept_maps", "encode", "resize", "scores"]


def capture(
    forward_func: Callable[..., Tensor],
    inputs: tuple,
    extra: tuple,
    module: nn.Module,
    hm: nn.Module,
    need_output: bool = True,
) -> tuple[dict[str, Tensor], Any]:
    """Run the model once, recording the outputs of ``module`` and ``hm``.

    Args:
        forward_func (nn.Module or Callable): the explained model.
        inputs (tuple): the inputs.
        extra (tuple): extra model arguments.
        module (nn.Module): the explained layer (key ``"layer"``).
        hm (nn.Module): the heatmap layer (key ``"heatmap_layer"`` unless it
            is ``module``).
        need_output (bool, optional): False stops the pass after the last
            recorded layer (early exit) and returns None as the output.
            Default: True

    Returns:
        *tuple[dict[str, Tensor], Any]*: the layer outputs and the model's
        output.
    """
    mods = {"layer": module} if hm is module else {"layer": module, "heatmap_layer": hm}
    return capture_layers(forward_func, mods, inputs, extra, need_output=need_output)


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
    method: Any,
    ks: list[int],
    acts: dict[str, Tensor],
    modules: tuple[nn.Module, nn.Module],
    attribution_kwargs: dict[str, Any] | None,
) -> tuple[tuple[Tensor, ...], bool]:
    """Maps ``(N, len(ks), ...)`` per returned tensor; whether in layer space.

    Args:
        forward_func (nn.Module or Callable): the explained model.
        inputs (tuple[Tensor, ...]): one group's inputs.
        extra (tuple): the group's extra model arguments.
        srae (SRAE): the group's SRAE.
        method (str or type): ``"gradcam"``, ``"excitation"`` or a Captum
            attribution class.
        ks (list[int]): the x-features to map.
        acts (dict[str, Tensor]): the outputs from :func:`capture`.
        modules (tuple[nn.Module, nn.Module]): the layer and heatmap layer.
        attribution_kwargs (dict, optional): extra arguments of the method.

    Returns:
        *tuple[tuple[Tensor, ...], bool]*: the maps and whether they have the
        heatmap layer's spatial size (rather than the input's).

    Raises:
        ValueError: if the heatmap layer is not spatial for a layer method,
            or ``attribution_kwargs`` do not suit the method.
    """
    module, hm = modules
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
    if method == "gradcam":
        if hm is module and pooling == "avg" and not attribution_kwargs:
            return (gradcam_maps(acts["layer"], srae, ks),), True
        method = LayerGradCam
    if method == "excitation":
        kwargs = dict(attribution_kwargs or {})
        contrastive = bool(kwargs.pop("contrastive", False))
        if kwargs:
            raise ValueError(
                f"attribution_kwargs for excitation accept only 'contrastive', "
                f"got {sorted(kwargs)}"
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
    xmodel = XFeatureModel(forward_func, module, srae, pooling, ks)
    return captum_maps(method, xmodel, inputs, extra, len(ks), hm, attribution_kwargs)


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
                f"for maps of shape {tuple(maps.shape)}; pass interpolate='layer'"
            )
        interpolate = first_input.shape[2 - maps.ndim :]
    return resize_maps(maps, interpolate)


def attribute_maps(
    explainer: SRAEAttribution,
    tup: tuple[Tensor, ...],
    extra: tuple,
    tgt: Tensor,
    ks: list[int],
    *,
    method: Any,
    output: str,
    interpolate: Any,
    relu: bool,
    size: int,
    attribution_kwargs: dict[str, Any] | None,
) -> tuple[Tensor, ...]:
    """The body of :meth:`SRAEAttribution.attribute`, on checked arguments.

    Args:
        explainer (SRAEAttribution): the fitted explainer.
        tup (tuple[Tensor, ...]): the inputs, ``N`` examples.
        extra (tuple): extra model arguments; tensors with ``N`` rows are
            split with the inputs.
        tgt (Tensor): the class of each example.
        ks (list[int]): the x-features to map.
        method (str or type): see :meth:`SRAEAttribution.attribute`.
        output (str): ``"concepts"`` or ``"class"``.
        interpolate (bool, str or Sequence[int]): see
            :meth:`SRAEAttribution.attribute`.
        relu (bool): whether to ReLU each x-feature map.
        size (int): examples per forward pass.
        attribution_kwargs (dict, optional): extra arguments of the method.

    Returns:
        *tuple[Tensor, ...]*: the maps of all examples, one per tensor the
        method returns.
    """
    n = tup[0].shape[0]
    modules = explainer._modules()
    results: list[Tensor] = []
    for start in range(0, n, size):
        for idx, srae, col in explainer._groups(tgt[start : start + size]):
            idx = idx + start
            sub = tuple(t[idx] for t in tup)
            sub_extra = tuple(
                a[idx]
                if isinstance(a, Tensor) and a.ndim and a.shape[0] == n > 1
                else a
                for a in extra
            )
            acts, _ = capture(
                explainer.forward_func, sub, sub_extra, *modules, need_output=False
            )
            maps, layer_space = concept_maps(
                explainer.forward_func,
                sub,
                sub_extra,
                srae,
                method,
                ks,
                acts,
                modules,
                attribution_kwargs,
            )
            maps = tuple(m.clamp_min(0) if relu else m for m in maps)
            if output == "class":
                c = encode(acts["layer"], srae, col)[1][:, ks]
                maps = tuple(
                    (m * c.reshape(c.shape + (1,) * (m.ndim - 2))).sum(1, keepdim=True)
                    for m in maps
                )
            if layer_space and interpolate not in (False, "layer"):
                maps = tuple(resize(m, tup[0], interpolate) for m in maps)
            if not results:
                results = [m.new_zeros((n,) + m.shape[1:]) for m in maps]
            for res, m in zip(results, maps, strict=True):
                res[idx] = m.to(res.dtype)
    return tuple(results)


def scores(
    explainer: SRAEAttribution,
    inputs: Any,
    target: TargetType,
    additional_forward_args: Any,
) -> dict[str, Tensor]:
    """Per-example x-features, weights, bias, contributions and scores.

    Args:
        explainer (SRAEAttribution): the explainer.
        inputs (Tensor or tuple[Tensor, ...]): the inputs.
        target (int, list[int] or Tensor, optional): the explained classes.
        additional_forward_args (Any): extra model arguments.

    Returns:
        *dict[str, Tensor]*: ``"e"``, ``"w"``, ``"b"``, ``"c"`` (x-features,
        weights, bias, contributions), ``"xnn"`` and ``"model"`` (scores) and
        ``"target"``.

    Raises:
        NotFittedError: if the explainer is not fitted.
    """
    check_fitted(explainer)
    tup = check_inputs(inputs, model_device(explainer.forward_func))
    extra = _format_additional_forward_args(additional_forward_args) or ()
    n = tup[0].shape[0]
    tgt = explainer._targets(target, n)
    module = explainer._resolve(explainer.layer, "layer")
    acts, out = capture(explainer.forward_func, tup, extra, module, module)
    parts: dict[str, list[tuple[Tensor, Tensor]]] = {}
    for idx, srae, col in explainer._groups(tgt):
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
