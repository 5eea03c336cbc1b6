#!/usr/bin/env python3
r"""Excitation Backprop through the combined CNN + XNN (Zhang et al., ECCV 2016).

Excitation Backprop (https://arxiv.org/abs/1608.00507) passes a top-down
probability ``P`` (the *marginal winning probability*) from an output unit to
the units below it. For a layer ``y_i = Σ_j W_ij a_j`` with nonnegative inputs
``a`` and the positive part ``W+`` of its weights,

.. math::

    P(a_j) = a_j \sum_i W^+_{ij} \frac{P(y_i)}{\sum_{j'} a_{j'} W^+_{ij'}},

so the probability mass is conserved from layer to layer (biases are ignored).
This module implements that rule for ``Linear`` and ``Conv`` layers; average
pooling and residual additions are positive linear maps and follow the same
rule; max pooling gives all of a window's mass to its winner; ``ReLU``,
``BatchNorm`` and ``Dropout`` pass ``P`` through unchanged, as in the authors'
implementations; reshapes move it along.

Qi, Khorram and Li explain x-feature ``k`` with ``P(e_k) = 1`` at the top of
the SRAE encoder, pass it through the encoder (whose input standardisation is
folded into the first ``Linear``), the pooling, and the CNN down to a spatial
layer, and draw ``Σ_c P(a_c)`` there. The *contrastive* variant subtracts the
map obtained from a dual unit whose top-layer weights are negated.

The default heatmap layer is the explained layer itself and needs only its
activations. A lower ``heatmap_layer`` needs the CNN's graph between the two
layers, obtained with ``torch.fx``: nn.Sequential chains, torchvision ResNets
(``BasicBlock``, ``Bottleneck``) and VGG-style networks are supported; any
other operation on the path raises a ``TypeError`` that names it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from captum_srae.activations import pool_activations
from captum_srae.activations.early_exit import run_model
from captum_srae.attribution.heatmaps import capture_layers
from captum_srae.core.model import SRAE

__all__ = ["encoder_excitation", "excitation_maps", "excitation_rule"]

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_POSITIVE_LINEAR = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_POSITIVE_LINEAR += (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
_ROUTE = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.Flatten, nn.Unflatten)
_ROUTE += (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_PASS = (nn.ReLU, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.Identity)
_PASS += (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
_ADD = (operator.add, operator.iadd, torch.add)
_FN_ROUTE = (torch.flatten, torch.reshape, torch.cat, F.max_pool2d)
_FN_ROUTE += (F.adaptive_max_pool2d, F.max_pool1d, F.max_pool3d)
_FN_PASS = (F.relu, torch.relu, F.dropout)
_FN_POSITIVE = (F.avg_pool2d, F.adaptive_avg_pool2d, F.avg_pool1d, torch.mean)
_METHOD_ROUTE = ("view", "reshape", "flatten", "contiguous", "permute")
_METHOD_ROUTE += ("squeeze", "unsqueeze", "transpose")
_SUPPORTED = (
    "Linear, Conv1d/2d/3d, Avg/AdaptiveAvg/Max/AdaptiveMaxPool, ReLU, "
    "BatchNorm, Dropout, Identity, Flatten, residual additions and reshapes"
)


def excitation_rule(
    positive_op: Callable[..., Tensor], inputs: Sequence[Tensor], p_out: Tensor
) -> list[Tensor]:
    r"""The marginal winning probability rule for a positive linear operation.

    ``P(a) = a ⊙ Jᵀ (P(y) / f₊(a))``, where ``f₊`` is the operation with only
    its positive weights and no bias, ``J`` its (constant) Jacobian, and
    ``0/0 = 0``. Inputs are clipped at zero, as the rule assumes.

    Args:
        positive_op (Callable): ``f₊``, linear with nonnegative coefficients.
        inputs (Sequence[Tensor]): its inputs ``a``.
        p_out (Tensor): ``P(y)``, shaped like ``f₊(a)``, or with one extra
            leading dimension to propagate several signals at once.

    Returns:
        *list[Tensor]*: ``P(a)`` for each input (with the extra leading
        dimension of ``p_out``, if any).

    Examples::

        >>> w = torch.tensor([[1.0, 3.0]])
        >>> excitation_rule(lambda a: a @ w.T, [torch.tensor([[1.0, 1.0]])],
        ...                 torch.ones(1, 1))
        [tensor([[0.2500, 0.7500]])]
    """
    xs = [t.detach().clamp_min(0).requires_grad_(True) for t in inputs]
    with torch.enable_grad():
        out = positive_op(*xs)
        ratio = torch.where(out > 0, p_out / torch.where(out > 0, out, 1.0), 0.0)
        grads = _grads(out, xs, ratio.detach())
    return [x.detach() * g for x, g in zip(xs, grads, strict=True)]


def _grads(out: Tensor, xs: list[Tensor], grad_out: Tensor) -> list[Tensor]:
    """``Jᵀ grad_out`` for each input; a leading signal dimension is batched."""
    batched = grad_out.ndim == out.ndim + 1
    grads = torch.autograd.grad(
        out, xs, grad_out, allow_unused=True, is_grads_batched=batched
    )
    lead = grad_out.shape[:1] if batched else ()
    return [
        g if g is not None else x.new_zeros(lead + x.shape)
        for x, g in zip(xs, grads, strict=True)
    ]


def _route(op: Callable[..., Tensor], inputs: Sequence[Tensor], p: Tensor) -> list:
    xs = [t.detach().requires_grad_(True) for t in inputs]
    with torch.enable_grad():
        return _grads(op(*xs), xs, p)


def encoder_excitation(
    srae: SRAE, z: Tensor, concepts: Sequence[int], contrastive: bool = False
) -> Tensor:
    r"""``P(z)`` for the top signals ``P(e_k) = 1`` through the SRAE encoder.

    The standardisation ``(z - mean) / scale`` is folded into the first
    ``Linear`` (weights ``W / scale``), so the rule sees the raw activations.

    Args:
        srae (SRAE): the explanation network.
        z (Tensor): pooled activations ``(N, D)``, assumed nonnegative.
        concepts (Sequence[int]): the x-features ``k``, one signal each.
        contrastive (bool, optional): use the dual units (top-layer weights
            negated) instead. Default: False

    Returns:
        *Tensor*: ``P(z)``, shape ``(len(concepts), N, D)``.
    """
    z = z.detach().to(srae.z_mean.dtype)
    linears: list[tuple[Tensor, Tensor]] = []  # (input, weight)
    x = srae.standardize_z(z)
    first = True
    with torch.no_grad():
        for module in srae.encoder:
            if isinstance(module, nn.Linear):
                w = module.weight / srae.z_scale if first else module.weight
                linears.append((z if first else x, w))
                first = False
            elif not isinstance(module, _PASS):
                raise TypeError(
                    f"excitation backprop does not support {type(module).__name__} "
                    "layers in the SRAE encoder"
                )
            x = module(x)
    eye = torch.eye(srae.n_concepts, dtype=z.dtype, device=z.device)
    p = eye[list(concepts)][:, None, :].expand(-1, z.shape[0], -1)
    for i, (a, w) in enumerate(reversed(linears)):
        wp = (-w if (contrastive and i == 0) else w).clamp_min(0)
        p = excitation_rule(lambda t, wp=wp: F.linear(t, wp), [a], p)[0]
    return p


def _pool_excitation(a: Tensor, p_z: Tensor, pooling: str) -> Tensor:
    if pooling == "flatten" or a.ndim == 2:
        return p_z.reshape(p_z.shape[:1] + a.shape)
    dims = tuple(range(2, a.ndim))
    return excitation_rule(lambda t: t.mean(dim=dims), [a], p_z)[0]


def _rule(node: fx.Node, gm: fx.GraphModule) -> tuple[str, Callable | None]:
    """Classify a graph node: (kind, positive op or None)."""
    where = f"{node.op} {node.target!r}"
    if node.op == "call_module":
        m = gm.get_submodule(str(node.target))
        if isinstance(m, _WEIGHTED):
            wp = m.weight.detach().clamp_min(0)
            if isinstance(m, nn.Linear):
                return "eb", lambda t: F.linear(t, wp)
            return "eb", lambda t: m._conv_forward(t, wp, None)
        if isinstance(m, _POSITIVE_LINEAR):
            return "eb", None
        if isinstance(m, _ROUTE):
            return "route", None
        if isinstance(m, _PASS):
            return "pass", None
        where = f"{type(m).__name__} layer {node.target!r}"
    elif node.op == "call_function":
        if node.target in _ADD:
            return "add", None
        if node.target in _FN_ROUTE:
            return "route", None
        if node.target in _FN_PASS:
            return "pass", None
        if node.target in _FN_POSITIVE:
            return "eb", None
        where = f"function {getattr(node.target, '__name__', node.target)}"
    elif node.op == "call_method":
        if node.target in _METHOD_ROUTE:
            return "route", None
        if node.target == "relu":
            return "pass", None
        if node.target == "mean":
            return "eb", None
        if node.target == "add":
            return "add", None
        where = f"method Tensor.{node.target}"
    raise TypeError(
        f"excitation backprop does not support the {where} between heatmap_layer "
        f"and layer; supported: {_SUPPORTED}"
    )


def _output_node(nodes: list[fx.Node], path: str) -> fx.Node | None:
    """The last graph node computed inside the module at ``path``."""
    found = None
    for node in nodes:
        stack = node.meta.get("nn_module_stack") or {}
        paths = {v[0] if isinstance(v, tuple) else k for k, v in stack.items()}
        if path in paths or (node.op == "call_module" and node.target == path):
            found = node
    return found


class _Graph:
    """A traced model, evaluated node by node up to the explained layer."""

    def __init__(self, model: nn.Module) -> None:
        try:
            self.gm = fx.symbolic_trace(model)
        except Exception as exc:  # fx raises many error types
            raise TypeError(
                "excitation backprop to a heatmap_layer below the explained layer "
                f"needs a torch.fx-traceable forward_func; tracing "
                f"{type(model).__name__} failed: {exc}"
            ) from exc
        self.nodes = list(self.gm.graph.nodes)

    def evaluate(self, values: tuple, stop: fx.Node) -> dict[fx.Node, Any]:
        env: dict[fx.Node, Any] = {}
        queue = list(values)
        for node in self.nodes:
            if node.op == "placeholder":
                if queue:
                    env[node] = queue.pop(0)
                elif node.args:
                    env[node] = node.args[0]
                else:
                    raise ValueError(f"no input for the argument {node.target!r}")
            elif node.op == "get_attr":
                env[node] = operator.attrgetter(str(node.target))(self.gm)
            elif node.op != "output":
                env[node] = self._call(node, env, {})
            if node is stop:
                return env
        raise ValueError("layer was not reached in the traced model")

    def _call(self, node: fx.Node, env: dict, replace: dict[fx.Node, Tensor]) -> Any:
        def value(n: fx.Node) -> Any:
            if n in replace:
                return replace[n]
            v = env[n]  # clone: an in-place op must not change stored values
            return v.clone() if isinstance(v, Tensor) and not replace else v

        args = fx.node.map_arg(node.args, value)
        kwargs = fx.node.map_arg(node.kwargs, value)
        if node.op == "call_module":
            return self.gm.get_submodule(str(node.target))(*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)  # type: ignore[operator]
        return getattr(args[0], str(node.target))(*args[1:], **kwargs)

    def backward(
        self, env: dict, top: fx.Node, p_top: Tensor, bottom: fx.Node
    ) -> Tensor | None:
        probs: dict[fx.Node, Tensor] = {top: p_top}
        stop = self.nodes.index(bottom)
        for node in reversed(self.nodes[stop + 1 : self.nodes.index(top) + 1]):
            p = probs.pop(node, None)
            if p is None or not isinstance(env[node], Tensor):
                continue
            srcs = [n for n in node.all_input_nodes if isinstance(env[n], Tensor)]
            kind, op = _rule(node, self.gm)
            if kind == "add":
                kind, op = ("eb", operator.add) if len(srcs) == 2 else ("pass", None)
            if kind == "pass":
                out = [p.reshape(p.shape[:1] + env[srcs[0]].shape)]
                srcs = srcs[:1]
            else:

                def call(*ts: Tensor, node: fx.Node = node, srcs: list = srcs) -> Any:
                    return self._call(node, env, dict(zip(srcs, ts, strict=True)))

                fn = op if op is not None else call
                vals = [env[n] for n in srcs]
                rule = _route if kind == "route" else excitation_rule
                out = rule(fn, vals, p)
            for src, p_src in zip(srcs, out, strict=True):
                probs[src] = probs[src] + p_src if src in probs else p_src
        return probs.get(bottom)


def excitation_maps(
    forward_func: Callable[..., Any],
    layer: nn.Module,
    srae: SRAE,
    inputs: tuple[Tensor, ...],
    additional_forward_args: tuple = (),
    *,
    heatmap_layer: nn.Module | None = None,
    pooling: str = "avg",
    concepts: Sequence[int] | None = None,
    contrastive: bool = False,
    activation: Tensor | None = None,
) -> Tensor:
    r"""Excitation Backprop maps of x-features, summed over channels.

    Args:
        forward_func (Callable): the explained model (an ``nn.Module`` when
            ``heatmap_layer`` is below ``layer``).
        layer (nn.Module): the explained layer (outputs assumed nonnegative,
            e.g. after a ReLU).
        srae (SRAE): the explanation network.
        inputs (tuple[Tensor, ...]): the model's inputs.
        additional_forward_args (tuple, optional): passed after the inputs.
            Default: ()
        heatmap_layer (nn.Module, optional): where to read ``P``; a spatial
            layer at or below ``layer``. Default: None (``layer``)
        pooling (str, optional): ``"avg"`` or ``"flatten"``. Default: "avg"
        concepts (Sequence[int], optional): the x-features. Default: None (all)
        contrastive (bool, optional): contrastive Excitation Backprop
            ``P(e_k) − P(dual of e_k)``. Default: False
        activation (Tensor, optional): the layer's output for ``inputs``, if
            already computed; it saves a forward pass when ``heatmap_layer``
            is the layer. Default: None

    Returns:
        *Tensor*: maps of shape ``(N, n, *spatial)`` of the heatmap layer.

    Raises:
        ValueError: for a token ``pooling`` (``"cls"``, ``"mean"``,
            ``"mean_patches"``).

    Examples::

        >>> maps = excitation_maps(net, net.layer4, srae, (x,))
        >>> maps.shape  # (N, n_concepts, 7, 7)
    """
    if pooling not in ("avg", "flatten"):
        raise ValueError(
            f"pooling must be 'avg' or 'flatten' for Excitation Backprop, got "
            f"{pooling!r}; use method='gradcam' for a token layer"
        )
    ks = list(range(srae.n_concepts)) if concepts is None else list(concepts)
    below = None
    if heatmap_layer is None or heatmap_layer is layer:
        if activation is None:
            activation = capture_layers(
                forward_func, {"layer": layer}, inputs, additional_forward_args
            )[0]["layer"]
    else:
        values = tuple(inputs) + tuple(additional_forward_args)
        below = _Below(forward_func, layer, heatmap_layer, values)
        activation = below.activation
    a = activation.detach().to(srae.z_mean.dtype)
    z = pool_activations(a, pooling)
    p_z = encoder_excitation(srae, z, ks)
    if contrastive:
        p_z = torch.cat([p_z, encoder_excitation(srae, z, ks, contrastive=True)])
    p = _pool_excitation(a, p_z, pooling)
    if below is not None:
        p = below.backward(p)
    if contrastive:
        p = p[: len(ks)] - p[len(ks) :]
    p = p.sum(dim=2) if p.ndim >= 4 else p
    return p.transpose(0, 1)


class _Below:
    """The traced path from a lower ``heatmap_layer`` up to ``layer``."""

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: nn.Module,
        heatmap_layer: nn.Module,
        values: tuple,
    ) -> None:
        if not isinstance(forward_func, nn.Module):
            raise TypeError("forward_func must be an nn.Module for a heatmap_layer")
        graph = _Graph(forward_func)
        names = {m: n for n, m in forward_func.named_modules()}
        top = _output_node(graph.nodes, names.get(layer, ""))
        bottom = _output_node(graph.nodes, names.get(heatmap_layer, ""))
        if top is None or bottom is None:
            which = "layer" if top is None else "heatmap_layer"
            raise ValueError(f"{which} was not reached in the traced model")
        if graph.nodes.index(bottom) >= graph.nodes.index(top):
            raise ValueError("heatmap_layer must come before layer in the model")
        with torch.no_grad():  # the pass stops at the layer (the graph's node)
            self.env = run_model(lambda *v: graph.evaluate(v, top), values, ())
        self.graph, self.top, self.bottom = graph, top, bottom
        self.activation: Tensor = self.env[top]

    def backward(self, p: Tensor) -> Tensor:
        """``P`` at the heatmap layer from ``P`` at the layer."""
        top = self.top
        found = self.graph.backward(
            self.env, top, p.to(self.env[top].dtype), self.bottom
        )
        if found is None:
            raise ValueError(
                "heatmap_layer is not on the path from the inputs to layer"
            )
        return found
