#!/usr/bin/env python3
"""Every private Captum name used by ``captum_srae``, imported in one place.

Captum's helpers (``captum._utils``) are not public API and may be renamed in a
later release (``_format_input`` became ``_format_tensor_into_tuples``); keeping
the imports here makes such a rename a one-file fix. Public Captum names
(``captum.attr``, ``captum.log``) are imported directly where they are used.
"""

from __future__ import annotations

from captum._utils.common import (
    _format_additional_forward_args,
    _format_output,
    _format_tensor_into_tuples,
    _is_tuple,
)
from captum._utils.typing import TargetType

__all__ = [
    "TargetType",
    "_format_additional_forward_args",
    "_format_output",
    "_format_tensor_into_tuples",
    "_is_tuple",
]
