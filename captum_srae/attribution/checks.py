#!/usr/bin/env python3
r"""Argument checks of :class:`~captum_srae.attribution.SRAEAttribution`.

Free functions that turn the user's ``layer``, ``inputs``, ``target`` and
``concepts`` into what the explainer computes with, and raise clear
``TypeError``/``ValueError``/:class:`NotFittedError` messages otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from captum_srae.activations import resolve_layer
from captum_srae.attribution.explanation import NotFittedError
from captum_srae.core.model import SRAE
from captum_srae.utils.captum_compat import TargetType

__all__ = [
    "check_attribute_options",
    "check_concepts",
    "check_fitted",
    "check_inputs",
    "check_targets",
    "group_targets",
    "model_device",
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


def check_fitted(explainer: object) -> None:
    """Raise :class:`NotFittedError` unless ``explainer`` has ``sraes_``.

    Args:
        explainer (SRAEAttribution): the explainer.

    Raises:
        NotFittedError: if :meth:`SRAEAttribution.fit` was not called.
    """
    if not hasattr(explainer, "sraes_"):
        raise NotFittedError(
            "this SRAEAttribution is not fitted yet: call fit(data, target) "
            "before attribute, contributions, concepts or explain"
        )


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


def check_targets(
    target: TargetType,
    n: int,
    fitted: list[int],
    sraes: Mapping[int, SRAE],
    n_outputs: int | None,
) -> Tensor:
    """The fitted class explained for each of the ``n`` examples.

    Args:
        target (int, list[int], Tensor or None): one class, one per example,
            or None for the only fitted class.
        n (int): the number of examples.
        fitted (list[int]): the fitted classes (``targets_``).
        sraes (Mapping[int, SRAE]): the fitted SRAE of each class.
        n_outputs (int, optional): the model's number of classes, if known.

    Returns:
        *Tensor*: the classes, ``(n,)`` of dtype ``long``.

    Raises:
        TypeError: if a target is not an int.
        ValueError: if ``target`` is missing, has the wrong length, is out of
            range or was not fitted.
    """
    if target is None:
        if len(fitted) != 1:
            raise ValueError(
                f"target is required: this explainer was fitted for {fitted}"
            )
        target = fitted[0]
    if isinstance(target, Tensor):
        target = target.tolist()
    if isinstance(target, (list, tuple)):
        if isinstance(target, tuple) or len(target) != n:
            raise ValueError(
                f"target must be an int or a list/1-D tensor of {n} ints (one "
                f"per example), got {target!r}"
            )
        items = list(target)
    else:
        items = [target] * n
    for t in items:
        if isinstance(t, bool) or not isinstance(t, int):
            raise TypeError(f"target must hold ints, got {t!r}")
        if n_outputs is not None and not 0 <= t < n_outputs:
            raise ValueError(
                f"target {t} is out of range for a model with {n_outputs} outputs"
            )
        if t not in sraes:
            raise ValueError(
                f"target {t} was not fitted; fitted targets: {fitted} "
                "(fit again with this target)"
            )
    return torch.tensor(items, dtype=torch.long)


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


def check_attribute_options(output: str, method: Any, interpolate: Any) -> None:
    """Check ``output``, ``method`` and ``interpolate`` of ``attribute``.

    Args:
        output (str): ``"concepts"`` or ``"class"``.
        method (str or type): ``"gradcam"``, ``"excitation"`` or a class
            (classes are checked when used).
        interpolate (bool, str or Sequence[int]): True, False, ``"layer"`` or
            a size of positive ints.

    Raises:
        ValueError: if one of them is invalid.
    """
    if output not in ("concepts", "class"):
        raise ValueError(f"output must be 'concepts' or 'class', got {output!r}")
    if isinstance(method, str) and method not in ("gradcam", "excitation"):
        raise ValueError(
            f"method must be 'gradcam', 'excitation' or a Captum attribution "
            f"class, got {method!r}"
        )
    if interpolate not in (True, False, "layer") and not (
        isinstance(interpolate, (tuple, list))
        and all(isinstance(s, int) and s > 0 for s in interpolate)
    ):
        raise ValueError(
            f"interpolate must be True, False, 'layer' or a size, got {interpolate!r}"
        )


def group_targets(
    tgt: Tensor, sraes: Mapping[int, SRAE], fitted: list[int], per_class: bool
) -> list[tuple[Tensor, SRAE, int]]:
    """(example indices, SRAE, output column) per explained class.

    Args:
        tgt (Tensor): the class of each example, from :func:`check_targets`.
        sraes (Mapping[int, SRAE]): the fitted SRAE of each class.
        fitted (list[int]): the fitted classes (``targets_``), whose order
            gives the columns of a shared SRAE.
        per_class (bool): whether each class has its own SRAE (column 0).

    Returns:
        *list[tuple[Tensor, SRAE, int]]*: one entry per class, in increasing
        class order.
    """
    out = []
    for t in sorted(set(tgt.tolist())):
        srae = sraes[t]
        column = fitted.index(t) if not per_class else 0
        out.append(((tgt == t).nonzero().flatten(), srae, column))
    return out
