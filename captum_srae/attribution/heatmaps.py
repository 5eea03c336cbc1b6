#!/usr/bin/env python3
r"""Heatmaps of x-features: Grad-CAM in closed form and any Captum method.

The SRAE encoder takes one vector per image (the explained layer's output,
pooled), so a heatmap of x-feature ``k`` comes from attributing ``e_k`` back
to a spatial layer:

- :func:`gradcam_maps` is Grad-CAM at the explained layer in closed form: with
  ``z = GAP(A)``, ``∂e_k/∂A_c,hw = (1/HW)·∂e_k/∂z_c`` for every location, so the
  Grad-CAM weights are ``α_kc = (1/HW)·∂e_k/∂z_c`` and
  ``map_k = ReLU(Σ_c α_kc A_c)``. One forward pass to the layer and the small
  encoder's Jacobian give all ``n`` maps.
- :class:`XFeatureModel` wraps "model up to the layer → pooling → encoder" as a
  module whose outputs are the x-features, so any Captum attribution class
  (``IntegratedGradients``, ``Saliency``, ``LayerGradCam`` at another layer)
  explains x-feature ``k`` with ``target=k`` (:func:`captum_maps`; gradient
  methods run once for all x-features, sharing the forward passes).

Passes whose model output is not needed stop right after the explained layer
(early exit, :mod:`captum_srae.activations.early_exit`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from captum.attr import (
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    NeuronAttribution,
    Saliency,
)
from torch import Tensor, nn

from captum_srae.activations import pool_activations
from captum_srae.activations.early_exit import run_hooked
from captum_srae.attribution.shared_forward import (
    SharedCopies,
    copies_identical,
    repeat_copies,
)
from captum_srae.core.model import SRAE

__all__ = [
    "check_method",
    "XFeatureModel",
    "capture_layers",
    "captum_maps",
    "encoder_jacobian",
    "gradcam_maps",
    "resize_maps",
]


def capture_layers(
    forward_func: Callable[..., Any],
    modules: dict[str, nn.Module],
    inputs: tuple[Tensor, ...],
    additional_forward_args: tuple = (),
    need_output: bool = True,
    early_exit: bool = True,
) -> tuple[dict[str, Tensor], Any]:
    r"""Run the model once under ``no_grad``; return the outputs of some layers
    and the model output.

    The forward hooks are removed before returning, also when the model raises.
    If a layer runs several times, its last output is returned (as in
    :func:`~captum_srae.collect_activations`); it is cloned inside the hook, so
    later in-place operations of the model do not change it.

    With ``need_output=False`` (and ``early_exit``) the pass stops right after
    the last needed layer output: the layers after it do not run. The number of
    calls of each layer per pass is learned on its first, complete pass (see
    :mod:`captum_srae.activations.early_exit`), so the first call runs the whole model.

    Args:
        forward_func (Callable): the model.
        modules (dict[str, nn.Module]): the layers to read, keyed by the name
            that errors use (e.g. ``{"layer": m1, "heatmap_layer": m2}``).
        inputs (tuple[Tensor, ...]): the model's inputs.
        additional_forward_args (tuple, optional): passed after the inputs.
            Default: ()
        need_output (bool, optional): whether the model output is needed;
            False allows the early exit and returns None as the output.
            Default: True
        early_exit (bool, optional): with ``need_output=False``, stop the
            pass after the last needed layer; False runs the whole model
            (for a forward with side effects). Default: True

    Returns:
        *tuple[dict[str, Tensor], Any]*: each layer's output (detached) under
        its key, and the model output (None when it was not needed).

    Raises:
        ValueError: if a layer is not reached.
        TypeError: if a layer output is not a single Tensor.
        Exception: whatever the model raises, unchanged (see
            :func:`~captum_srae.activations.early_exit.run_model`).

    Examples::

        >>> acts, logits = capture_layers(net, {"layer": net.layer4}, (x,))
        >>> acts["layer"].shape
        torch.Size([8, 512, 7, 7])
    """
    store: dict[str, Tensor] = {}

    def record(key: str, output: Any) -> None:
        if not isinstance(output, Tensor):
            raise TypeError(
                f"{key} must return a single Tensor, got {type(output).__name__}"
            )
        store[key] = output.detach().clone()

    with torch.no_grad():
        out, _ = run_hooked(
            forward_func,
            inputs,
            additional_forward_args,
            modules,
            record,
            early_exit=early_exit and not need_output,
        )
    for key in modules:
        if key not in store:
            raise ValueError(f"{key} was not reached in the forward pass of the model")
    return store, (None if not need_output else out)


class XFeatureModel(nn.Module):
    r"""The x-features as a model: inputs → ``forward_func`` → layer → pooling
    → SRAE encoder, with outputs ``e`` of shape ``(N, n_concepts)``.

    Any Captum attribution method run on this module with ``target=k``
    explains x-feature ``k``. The forward pass runs ``forward_func`` up to the
    explained layer (its output is never needed; see ``early_exit``) and reads
    the layer through a forward hook that exists only during the call; the
    x-features are computed inside the hook, so in-place operations after the
    layer do not affect them.

    Args:
        forward_func (Callable): the explained model.
        layer (nn.Module): the explained layer (a module of ``forward_func``).
        srae (SRAE): the fitted explanation network.
        pooling (str, optional): ``"avg"`` or ``"flatten"``, as at fitting time.
            Default: "avg"
        concepts (Sequence[int], optional): keep only these x-features, in this
            order. Default: None (all)
        early_exit (bool, optional): stop each forward pass right after the
            explained layer's last call (the layers after it cannot change
            the x-features); the first pass runs the whole model to count the
            calls. Default: True

    Examples::

        >>> from captum.attr import LayerGradCam
        >>> xm = XFeatureModel(net, net.layer4, srae)
        >>> maps = LayerGradCam(xm, net.layer3).attribute(x, target=2)
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: nn.Module,
        srae: SRAE,
        pooling: str = "avg",
        concepts: Sequence[int] | None = None,
        early_exit: bool = True,
    ) -> None:
        super().__init__()
        self.early_exit = bool(early_exit)
        # (n copies, rows per copy) while captum_maps shares one forward pass
        self._copies: tuple[int, int] | None = None
        self.forward_func = forward_func
        self.layer = layer
        self.srae = srae
        self.pooling = pooling
        self.concepts = None if concepts is None else list(concepts)

    def forward(self, *args: Any) -> Tensor:
        """Return the x-features ``(N, n_concepts)`` of the inputs ``args``."""
        copies = self._copies
        if copies is not None:
            n, rows = copies
            tensors = [a for a in args if isinstance(a, Tensor)]
            big = tensors[0].shape[0] if tensors else 0
            if tensors and all(
                t.ndim and t.shape[0] == big and copies_identical(t, n, rows)
                for t in tensors
            ):
                where = [i for i, a in enumerate(args) if isinstance(a, Tensor)]

                def on_first(*firsts: Tensor) -> Tensor:
                    full = list(args)
                    for i, f in zip(where, firsts, strict=True):
                        full[i] = f
                    return self._features(*full)

                return SharedCopies.apply(on_first, n, rows, *tensors)
        return self._features(*args)

    def _features(self, *args: Any) -> Tensor:
        store: dict[str, Tensor] = {}
        srae = self.srae

        def record(_key: str, output: Any) -> None:
            if not isinstance(output, Tensor):
                raise TypeError(
                    f"layer must return a single Tensor, got {type(output).__name__}"
                )
            z = pool_activations(output, self.pooling).to(srae.z_mean.dtype)
            store["e"] = srae.encode(z)

        run_hooked(
            self.forward_func, args, (), {"layer": self.layer}, record, self.early_exit
        )
        if "e" not in store:
            raise ValueError("layer was not reached in the forward pass of the model")
        e = store["e"]
        return e if self.concepts is None else e[:, self.concepts]


def gradcam_maps(
    activation: Tensor, srae: SRAE, concepts: Sequence[int] | None = None
) -> Tensor:
    r"""Grad-CAM maps of every x-feature at a globally average-pooled layer.

    ``map_k = Σ_c α_kc A_c`` with ``α_kc = (1/HW)·∂e_k/∂z_c`` evaluated at
    ``z = GAP(A)`` (method.md §5); no ReLU is applied here.

    Args:
        activation (Tensor): the layer output ``A``, shape ``(N, C, *spatial)``.
        srae (SRAE): the explanation network (``in_features == C``).
        concepts (Sequence[int], optional): the x-features to map.
            Default: None (all)

    Returns:
        *Tensor*: the maps, shape ``(N, n, *spatial)``.

    Examples::

        >>> a = torch.rand(2, 8, 4, 4)
        >>> gradcam_maps(a, SRAE(8, config=SRAEConfig(n_concepts=3))).shape
        torch.Size([2, 3, 4, 4])
    """
    a = activation.detach().to(srae.z_mean.dtype)
    spatial = tuple(range(2, a.ndim))
    z = a.mean(dim=spatial)
    n_loc = a[0, 0].numel()
    alpha = encoder_jacobian(srae, z, concepts) / n_loc
    return torch.einsum("nkc,nc...->nk...", alpha, a)


def encoder_jacobian(
    srae: SRAE, z: Tensor, concepts: Sequence[int] | None = None
) -> Tensor:
    r"""The Jacobian of the x-features with respect to the pooled activations,
    ``J[i, k, d] = ∂e_k/∂z_d`` at ``z_i``: the Grad-CAM weights of every map.

    Args:
        srae (SRAE): the explanation network.
        z (Tensor): pooled activations ``(N, D)`` in the SRAE's dtype.
        concepts (Sequence[int], optional): the x-features (rows ``k``).
            Default: None (all)

    Returns:
        *Tensor*: the Jacobians ``(N, n, D)``.

    Examples::

        >>> srae = SRAE(8, config=SRAEConfig(n_concepts=3))
        >>> encoder_jacobian(srae, torch.rand(2, 8)).shape
        torch.Size([2, 3, 8])
    """

    def encode_one(zi: Tensor) -> Tensor:
        e = srae.encode(zi[None])[0]
        return e if concepts is None else e[list(concepts)]

    with torch.enable_grad():
        return torch.func.vmap(torch.func.jacrev(encode_one))(z)


#: primary methods whose forward passes are shared between x-features
_SHARED_METHODS = (IntegratedGradients, Saliency, InputXGradient)


def captum_maps(
    method: type,
    xmodel: XFeatureModel,
    inputs: tuple[Tensor, ...],
    additional_forward_args: tuple,
    n_maps: int,
    heatmap_layer: nn.Module,
    attribution_kwargs: dict[str, Any] | None = None,
    batched: bool = True,
) -> tuple[tuple[Tensor, ...], bool]:
    r"""Run a Captum attribution class on :class:`XFeatureModel` for every x-feature.

    A layer method (a subclass of ``LayerAttribution``) is built as
    ``method(xmodel, heatmap_layer)`` and gives one map per example, a primary
    method as ``method(xmodel)`` and gives one attribution per input tensor,
    which is summed over its channel dimension (dim 1) when it has one.

    With ``batched`` (the default) the gradient methods ``IntegratedGradients``,
    ``Saliency`` and ``InputXGradient`` (and their subclasses) run once for all
    x-features: the inputs are repeated ``n_maps`` times with one target per
    copy, and the network runs once per integration step for all copies with
    one backward pass per x-feature (:mod:`captum_srae.attribution.shared_forward`);
    cost ``F + n·B`` instead of ``n·(F + B)``. An ``internal_batch_size`` in
    ``attribution_kwargs`` counts rows of the *network's* forward passes, as
    in Captum (it is multiplied by ``n_maps`` for the repeated batch). Other
    methods run once per x-feature.

    Args:
        method (type): a Captum attribution class.
        xmodel (XFeatureModel): the x-feature model.
        inputs (tuple[Tensor, ...]): the inputs.
        additional_forward_args (tuple): passed after the inputs.
        n_maps (int): number of x-features output by ``xmodel``.
        heatmap_layer (nn.Module): the layer of layer methods.
        attribution_kwargs (dict, optional): extra arguments of the method's
            ``attribute`` (e.g. ``n_steps``, ``baselines``). Default: None
        batched (bool, optional): share forward passes between x-features
            where the method allows it. Default: True

    Returns:
        *tuple[tuple[Tensor, ...], bool]*: maps of shape ``(N, n_maps, ...)``,
        one per attribution the method returns, and whether the method is a
        layer method.
    """
    kwargs = check_method(method, attribution_kwargs)
    is_layer = issubclass(method, LayerAttribution)
    explainer = method(xmodel, heatmap_layer) if is_layer else method(xmodel)
    if not is_layer:  # primary methods warn on inputs without gradients
        inputs = tuple(_grad_leaf(t) for t in inputs)
    if batched and n_maps > 1 and issubclass(method, _SHARED_METHODS):
        return _shared_maps(
            explainer, xmodel, inputs, additional_forward_args, n_maps, kwargs
        ), is_layer
    extra = additional_forward_args if additional_forward_args else None
    args = inputs if len(inputs) > 1 else inputs[0]
    per_k: list[tuple[Tensor, ...]] = []
    with torch.enable_grad():
        for k in range(n_maps):
            attr = explainer.attribute(
                args, target=k, additional_forward_args=extra, **kwargs
            )
            attr = attr if isinstance(attr, tuple) else (attr,)
            # layer maps (N, 1 or C, *spatial) and input attributions with a
            # channel dimension are summed over dim 1
            per_k.append(tuple(_channel_sum(t) for t in attr))
    maps = tuple(
        torch.stack([p[i] for p in per_k], dim=1) for i in range(len(per_k[0]))
    )
    return maps, is_layer


def check_method(method: Any, attribution_kwargs: dict | None) -> dict[str, Any]:
    """Check a Captum class and its ``attribution_kwargs``; return a copy."""
    if not isinstance(method, type):
        raise TypeError(
            f"method must be 'gradcam', 'excitation' or a Captum attribution "
            f"class, got {method!r}"
        )
    if issubclass(method, NeuronAttribution):
        raise TypeError(
            f"method {method.__name__} is a neuron method; pass a primary or "
            "layer Captum attribution class"
        )
    kwargs = dict(attribution_kwargs or {})
    for key in ("target", "additional_forward_args", "return_convergence_delta"):
        if key in kwargs:
            raise ValueError(f"attribution_kwargs must not set {key!r}")
    return kwargs


def _grad_leaf(t: Tensor) -> Tensor:
    """A floating tensor as a leaf that requires gradients (others as they are)."""
    return t.detach().requires_grad_() if t.is_floating_point() else t


def _channel_sum(t: Tensor) -> Tensor:
    return t.detach().sum(dim=1) if t.ndim >= 3 else t.detach()


def _shared_maps(
    explainer: Any,
    xmodel: XFeatureModel,
    inputs: tuple[Tensor, ...],
    extra: tuple,
    n: int,
    kwargs: dict[str, Any],
) -> tuple[Tensor, ...]:
    """One attribution call for ``n`` x-features on inputs repeated ``n`` times."""
    rows = inputs[0].shape[0]
    big = tuple(_grad_leaf(t.repeat(n, *([1] * (t.ndim - 1)))) for t in inputs)
    big_extra = tuple(
        a.repeat(n, *([1] * (a.ndim - 1))) if isinstance(a, Tensor) and a.ndim else a
        for a in extra
    )
    kwargs = {key: repeat_copies(val, n, rows) for key, val in kwargs.items()}
    if kwargs.get("internal_batch_size") is not None:
        kwargs["internal_batch_size"] = int(kwargs["internal_batch_size"]) * n
    target = torch.arange(n).repeat_interleave(rows).tolist()
    xmodel._copies = (n, rows)
    try:
        with torch.enable_grad():
            attr = explainer.attribute(
                big if len(big) > 1 else big[0],
                target=target,
                additional_forward_args=big_extra if big_extra else None,
                **kwargs,
            )
    finally:
        xmodel._copies = None
    attr = attr if isinstance(attr, tuple) else (attr,)
    out = []
    for t in attr:
        t = _channel_sum(t)
        out.append(t.reshape(n, rows, *t.shape[1:]).transpose(0, 1))
    return tuple(out)


_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def resize_maps(maps: Tensor, size: Sequence[int]) -> Tensor:
    r"""Resize maps ``(N, n, *spatial)`` to ``size`` with
    ``LayerAttribution.interpolate`` (linear, bilinear or trilinear).

    Args:
        maps (Tensor): maps with 1 to 3 spatial dimensions.
        size (Sequence[int]): the new spatial size.

    Returns:
        *Tensor*: the resized maps ``(N, n, *size)``.

    Raises:
        ValueError: if ``size`` does not have one entry per spatial dimension.
    """
    n_spatial = maps.ndim - 2
    size = tuple(int(s) for s in size)
    if n_spatial not in _MODES or len(size) != n_spatial:
        raise ValueError(
            f"cannot interpolate maps of shape {tuple(maps.shape)} to size {size}; "
            "pass interpolate='layer' to keep the layer's size"
        )
    if tuple(maps.shape[2:]) == size:
        return maps
    return LayerAttribution.interpolate(maps, size, _MODES[n_spatial])
