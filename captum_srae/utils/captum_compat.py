#!/usr/bin/env python3
"""Every private Captum name used by ``captum_srae``, behind public wrappers.

Captum's helpers (``captum._utils``) are not public API and may be renamed in a
later release (``_format_input`` became ``_format_tensor_into_tuples``); this
module is the only one that imports them, and the rest of the package calls
the public wrappers below, so such a rename is a one-file fix. Public Captum
names (``captum.attr``, ``captum.log``) are imported directly where they are
used.
"""

from __future__ import annotations

from typing import Any

from captum._utils.common import (
    _format_additional_forward_args,
    _format_output,
    _is_tuple,
)
from captum._utils.typing import TargetType

__all__ = [
    "TargetType",
    "format_additional_forward_args",
    "format_output",
    "is_tuple",
]


def format_additional_forward_args(additional_forward_args: Any) -> tuple:
    """Captum's ``additional_forward_args`` as a tuple (``()`` for None).

    A tuple stays as it is; any other value becomes a 1-tuple, as in every
    Captum ``attribute`` method.

    Args:
        additional_forward_args (Any): the user's extra model arguments.

    Returns:
        *tuple*: the arguments passed after the inputs.

    Examples::

        >>> format_additional_forward_args(None)
        ()
        >>> format_additional_forward_args(3)
        (3,)
    """
    formatted = _format_additional_forward_args(additional_forward_args)
    return () if formatted is None else tuple(formatted)


def format_output(was_tuple: bool, output: tuple[Any, ...]) -> Any:
    """Captum's return convention: a tuple for tuple inputs, else the element.

    Args:
        was_tuple (bool): whether the user passed the inputs as a tuple.
        output (tuple): the results, one per returned tensor.

    Returns:
        *Any*: ``output`` itself, or its only element.
    """
    return _format_output(was_tuple, output)


def is_tuple(inputs: Any) -> bool:
    """Whether ``inputs`` is a tuple, as Captum decides its return type.

    Args:
        inputs (Any): the user's inputs.

    Returns:
        *bool*: True for a tuple.
    """
    return bool(_is_tuple(inputs))
