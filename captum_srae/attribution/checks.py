#!/usr/bin/env python3
r"""Argument checks of :class:`~captum_srae.attribution.SRAEAttribution`.

Free functions that turn the user's ``layer``, ``inputs``, ``target`` (every
form of Captum's ``TargetType``) and the options of ``attribute`` into what the
explainer computes with, and raise clear ``TypeError``/``ValueError`` messages
naming the argument otherwise.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Sequence
from typing import Any

import captum.attr
import torch
from captum.attr import LayerGradCam
from torch import Tensor, nn

from captum_srae.activations import resolve_layer
from captum_srae.attribution.smoothing import check_smoothing
from captum_srae.utils.captum_compat import TargetType
from captum_srae.utils.validation import check_int

__all__ = [
    "captum_method",
    "RELU_DEFAULT",
    "MapOptions",
    "check_concepts",
    "check_inputs",
    "map_options",
    "model_device",
    "parse_target",
    "resolve_module",
]


def resolve_module(
    forward_func: Callable[..., Tensor], layer: nn.Module | str, arg: str
) -> nn.Module:
    """The module ``layer`` names in ``forward_func``, or ``layer`` itself.

    Args:
        forward_func (nn.Module or Callable): the explained model.
        layer (nn.Module or str): a module or its dotted name.
        arg (str): the argument's name, for error messages.

    Returns:
        *nn.Module*: the resolved layer.

    Raises:
        ValueError: if ``forward_func`` has no such layer.
        TypeError: if ``layer`` is a name but ``forward_func`` is no module.
    """
    if isinstance(forward_func, nn.Module):
        try:
            return resolve_layer(forward_func, layer)
        except ValueError as exc:
            raise ValueError(f"{arg}: {exc}") from None
    if isinstance(layer, nn.Module):
        return layer
    raise TypeError(
        f"{arg} is a name ({layer!r}) but forward_func is not an nn.Module; "
        "pass the module itself"
    )


def model_device(forward_func: Callable[..., Tensor]) -> torch.device | None:
    """The device of the first parameter of ``forward_func``, if it has one.

    Args:
        forward_func (nn.Module or Callable): the explained model.

    Returns:
        *torch.device* or *None*: None for plain callables and parameterless
        modules.
    """
    if isinstance(forward_func, nn.Module):
        p = next(forward_func.parameters(), None)
        return None if p is None else p.device
    return None


def check_inputs(inputs: Any, device: torch.device | None) -> tuple[Tensor, ...]:
    """The inputs as a tuple of tensors sharing a batch dimension.

    Args:
        inputs (Tensor or tuple[Tensor, ...]): the model's inputs.
        device (torch.device, optional): the model's device; the inputs must
            be on it unless None.

    Returns:
        *tuple[Tensor, ...]*: the inputs.

    Raises:
        TypeError: if ``inputs`` holds something other than tensors.
        ValueError: on differing or zero batch sizes or a wrong device.
    """
    tup = inputs if isinstance(inputs, tuple) else (inputs,)
    if not tup or not all(isinstance(t, Tensor) for t in tup):
        raise TypeError("inputs must be a Tensor or a tuple of Tensors")
    if any(t.ndim == 0 for t in tup) or len({t.shape[0] for t in tup}) > 1:
        raise ValueError("inputs must share a batch dimension (dim 0)")
    if tup[0].shape[0] == 0:
        raise ValueError("inputs must hold at least one example, got batch size 0")
    if device is not None and any(t.device != device for t in tup):
        raise ValueError(
            f"inputs are on device {tup[0].device} but forward_func's parameters "
            f"are on device {device}; move them with inputs.to({str(device)!r})"
        )
    return tup


def _target_index(item: Any, target: Any) -> int:
    """One class index of ``target``: an int, or a 1-tuple of an int."""
    if isinstance(item, tuple):
        if len(item) != 1:
            raise ValueError(
                f"target {target!r}: a tuple of {len(item)} indices selects an "
                "output of a model with more than 2 dimensions; SRAEAttribution "
                "explains scores of shape (N, C), so a tuple target must hold "
                "one index, e.g. (3,)"
            )
        item = item[0]
    if isinstance(item, bool):
        raise TypeError(f"target must hold class indices (int), got {item!r}")
    try:
        return operator.index(item)
    except TypeError:
        raise TypeError(
            f"target must hold class indices (int), got {type(item).__name__} "
            f"{item!r} in {target!r}"
        ) from None


def parse_target(target: TargetType, n: int) -> list[int] | None:
    """Captum's ``TargetType`` as one class index per example.

    The forms of ``captum._utils.typing.TargetType`` for a model with scores
    ``(N, C)``: an int (every example), a 1-tuple ``(c,)`` (Captum's index
    into the output, the same as ``c``), a tensor with one element (0-d or
    ``(1,)``) or of shape ``(N,)``, a list of ``N`` ints or of ``N``
    1-tuples.

    Args:
        target (int, tuple, Tensor, list or None): the user's target.
        n (int): the number of examples.

    Returns:
        *list[int]* or *None*: ``n`` class indices; None for None.

    Raises:
        TypeError: if ``target`` is of another type, or holds something else
            than integers (floats, bools).
        ValueError: if a list or tensor does not hold one class per example,
            or a tuple holds more than one index.

    Examples::

        >>> parse_target(torch.tensor([2, 0]), 2)
        [2, 0]
        >>> parse_target((1,), 3)
        [1, 1, 1]
    """
    if target is None:
        return None
    if isinstance(target, Tensor):
        if (
            target.is_floating_point()
            or target.is_complex()
            or target.dtype == torch.bool
        ):
            raise TypeError(
                f"target must be a tensor of integers, got dtype {target.dtype}"
            )
        if target.numel() == 1:
            return [int(target.item())] * n
        if target.ndim != 1 or target.numel() != n:
            raise ValueError(
                f"target as a tensor must have one element or shape ({n},) (one "
                f"per example), got shape {tuple(target.shape)}"
            )
        return [int(t) for t in target.tolist()]
    if isinstance(target, list):
        if len(target) != n:
            raise ValueError(
                f"target as a list must hold one per example ({n} examples), "
                f"got {len(target)} items: {target!r}"
            )
        return [_target_index(t, target) for t in target]
    if (
        isinstance(target, tuple)
        or isinstance(target, int)
        or hasattr(target, "__index__")
    ):
        return [_target_index(target, target)] * n
    raise TypeError(
        "target must be None, an int, a tuple, a Tensor or a list of ints or "
        f"tuples (Captum's TargetType), got {type(target).__name__}"
    )


def check_concepts(concepts: Sequence[int] | int | None, n: int) -> list[int]:
    """The x-feature indices to map, in order.

    Args:
        concepts (Sequence[int], int or None): indices, one index, or None
            for all.
        n (int): the number of x-features.

    Returns:
        *list[int]*: the indices.

    Raises:
        ValueError: if ``concepts`` is empty or holds a bad index.
    """
    if concepts is None:
        return list(range(n))
    ks = [concepts] if isinstance(concepts, int) else list(concepts)
    bad = [k for k in ks if isinstance(k, bool) or not isinstance(k, int)]
    bad += [k for k in ks if isinstance(k, int) and not 0 <= k < n]
    if not ks or bad:
        raise ValueError(
            f"concepts must be indices in [0, {n}) of the {n} x-features, got "
            f"{concepts!r}"
        )
    return ks


def captum_method(name: str) -> type:
    """The Captum attribution class named ``name`` in ``captum.attr``.

    Args:
        name (str): a class name such as ``"LayerGradientXActivation"``.

    Returns:
        *type*: the class.

    Raises:
        ValueError: if ``captum.attr`` has no attribution class of that name.

    Examples::

        >>> captum_method("IntegratedGradients").__name__
        'IntegratedGradients'
    """
    cls = getattr(captum.attr, name, None) if name.isidentifier() else None
    usable = isinstance(cls, type) and issubclass(cls, captum.attr.Attribution)
    # not the abstract bases of captum.attr, nor NoiseTunnel (a wrapper)
    base = usable and cls.__module__ == "captum.attr._utils.attribution"
    if not usable or base or name == "NoiseTunnel":
        raise ValueError(
            "method must be 'gradcam', 'excitation', a Captum attribution "
            f"class or its name in captum.attr, got {name!r}"
        )
    return cls


def check_map_method(method: Any, name: str = "map_method") -> str | type:
    """A map method: ``"gradcam"``, ``"excitation"``, a Captum attribution
    class or its name (checked now, so that a misspelt name fails before
    any fit).

    Args:
        method (Any): the value to check.
        name (str, optional): the argument's name in errors.
            Default: "map_method"

    Returns:
        *str or type*: ``method`` as given.

    Raises:
        TypeError: if it is neither a str nor a Captum attribution class.
        ValueError: if it is a name that ``captum.attr`` does not have.

    Examples::

        >>> check_map_method("LayerGradientXActivation")
        'LayerGradientXActivation'
    """
    if isinstance(method, str):
        if method not in ("gradcam", "excitation"):
            try:
                captum_method(method)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return method
    if isinstance(method, type) and issubclass(method, captum.attr.Attribution):
        return method
    raise TypeError(
        f"{name} must be 'gradcam', 'excitation', a Captum attribution class or "
        f"its name, got {type(method).__name__}"
    )


#: methods whose maps are ReLU-clipped by default, as Grad-CAM's
RELU_DEFAULT = ("gradcam", "excitation", LayerGradCam)


@dataclasses.dataclass(frozen=True)
class MapOptions:
    """The checked options of :meth:`SRAEAttribution.attribute`.

    Attributes:
        method (str or type): ``"gradcam"``, ``"excitation"`` or a Captum
            attribution class.
        output (str): ``"concepts"`` or ``"class"``.
        concepts (list[int]): the x-features to map, in order.
        interpolate (bool, str or tuple[int, ...]): True, False, ``"layer"``,
            ``"tokens"`` or a size.
        relu (bool): whether each x-feature map is clipped at zero.
        batch_size (int or None): examples per forward pass (None: all).
        attribution_kwargs (dict[str, Any]): extra arguments of the method.
        smoothing (float): standard deviation of the Gaussian blur of the
            maps, in their cells (0: none).
    """

    method: str | type
    output: str
    concepts: list[int]
    interpolate: bool | str | tuple[int, ...]
    relu: bool
    batch_size: int | None
    attribution_kwargs: dict[str, Any]
    smoothing: float = 0.0


def map_options(
    n_concepts: int,
    *,
    method: Any,
    output: Any,
    concepts: Sequence[int] | int | None,
    interpolate: Any,
    relu_attributions: bool | None,
    internal_batch_size: int | None,
    attribution_kwargs: dict[str, Any] | None,
    attribute_to_layer_input: bool,
    smoothing: Any = 0.0,
) -> MapOptions:
    """Check the keyword options of ``attribute``; see :class:`MapOptions`.

    Args:
        n_concepts (int): the number of x-features of the fitted XNN(s).
        method (str or type): see :meth:`SRAEAttribution.attribute`; the
            name of a class of ``captum.attr`` is replaced by the class (see
            :func:`captum_method`); a class is checked when used.
        output (str): ``"concepts"`` or ``"class"``.
        concepts (Sequence[int], int or None): see :func:`check_concepts`.
        interpolate (bool, str or Sequence[int]): True, False, ``"layer"``,
            ``"tokens"`` or a size of positive ints.
        relu_attributions (bool, optional): None for the default (see attribute).
        internal_batch_size (int, optional): a positive int or None.
        attribution_kwargs (dict, optional): extra arguments of the method.
        attribute_to_layer_input (bool): only False is supported.
        smoothing (float, optional): the blur's sigma (``smooth_maps``). Default: 0.0

    Returns:
        *MapOptions*: the options.

    Raises:
        ValueError: if one of them is invalid.
        TypeError: if ``internal_batch_size`` or ``attribution_kwargs`` has the
            wrong type.
    """
    if attribute_to_layer_input:
        raise ValueError(
            "attribute_to_layer_input=True is not supported: the SRAE was "
            "fitted on the layer's output"
        )
    if output not in ("concepts", "class"):
        raise ValueError(f"output must be 'concepts' or 'class', got {output!r}")
    if isinstance(method, str) and method not in ("gradcam", "excitation"):
        method = captum_method(method)
    if interpolate not in (True, False, "layer", "tokens") and not (
        isinstance(interpolate, (tuple, list))
        and all(isinstance(s, int) and s > 0 for s in interpolate)
    ):
        raise ValueError(
            "interpolate must be True, False, 'layer', 'tokens' or a size, got "
            f"{interpolate!r}"
        )
    if attribution_kwargs is not None and not isinstance(attribution_kwargs, dict):
        raise TypeError(
            "attribution_kwargs must be a dict, got "
            f"{type(attribution_kwargs).__name__}"
        )
    sigma = check_smoothing(smoothing)
    relu = relu_attributions
    if relu is None:
        relu = sigma > 0 or any(method is m or method == m for m in RELU_DEFAULT)
    return MapOptions(
        method=method,
        output=output,
        concepts=check_concepts(concepts, n_concepts),
        interpolate=tuple(interpolate)
        if isinstance(interpolate, list)
        else interpolate,
        relu=bool(relu),
        batch_size=(
            None
            if internal_batch_size is None
            else check_int(internal_batch_size, "internal_batch_size")
        ),
        attribution_kwargs=dict(attribution_kwargs or {}),
        smoothing=sigma,
    )
