#!/usr/bin/env python3
"""Finding the explained layer in the user's model: by dotted name or as a
module (:func:`resolve_layer`), and the name of a module (:func:`layer_name`)."""

from __future__ import annotations

import difflib

from torch import nn

__all__ = ["layer_name", "resolve_layer"]


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    r"""Return the submodule of ``model`` named or given by ``layer``.

    Args:
        model (nn.Module): the explained model.
        layer (str or nn.Module): a dotted name as listed by
            ``model.named_modules()`` (e.g. ``"layer4"``, ``"layer4.1.conv2"``,
            ``"features.3"``) or a module of ``model``.

    Returns:
        nn.Module: the layer.

    Raises:
        ValueError: if no submodule has that name (close matches are suggested)
            or the module is not part of ``model``.
        TypeError: if ``layer`` is neither a string nor a module.

    Examples::

        >>> conv = resolve_layer(resnet, "layer4.1.conv2")
    """
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer in modules:
            return modules[layer]
        names = [name for name in modules if name]
        close = difflib.get_close_matches(layer, names, n=3)
        hint = f"did you mean {' or '.join(map(repr, close))}?" if close else ""
        if not close:
            hint = f"available names: {', '.join(map(repr, names[:8]))}, ..."
        raise ValueError(
            f"layer {layer!r} is not a submodule of {type(model).__name__}; {hint}"
        )
    if isinstance(layer, nn.Module):
        if any(module is layer for module in model.modules()):
            return layer
        raise ValueError(
            f"layer {type(layer).__name__} is not a submodule of "
            f"{type(model).__name__}; pass one of its modules or a dotted name"
        )
    raise TypeError(
        f"layer must be a dotted name (str) or an nn.Module, got {type(layer).__name__}"
    )


def layer_name(model: nn.Module, module: nn.Module) -> str | None:
    r"""Return the dotted name of ``module`` inside ``model`` (``""`` for the model).

    Args:
        model (nn.Module): the model.
        module (nn.Module): a module, possibly of ``model``.

    Returns:
        str or None: its name as in ``model.named_modules()``, or None if
        ``module`` is not part of ``model``.

    Examples::

        >>> layer_name(resnet, resnet.layer4[1].conv2)
        'layer4.1.conv2'
    """
    for name, candidate in model.named_modules():
        if candidate is module:
            return name
    return None
