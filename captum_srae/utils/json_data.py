"""Plain JSON data from the package's results (tensors, arrays, NaN)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON data, for ``json.dumps(..., allow_nan=False)``.

    Tensors and arrays become (nested) lists, mapping keys strings, tuples
    lists, non-finite floats ``None``; anything else that is not a JSON
    scalar becomes its ``str``.

    Args:
        value (Any): the data.

    Returns:
        *Any*: dicts, lists, strings, finite numbers, booleans and None only.

    Examples::

        >>> to_jsonable({"r2": torch.tensor([0.5, float("nan")]), 1: (2, 3)})
        {'r2': [0.5, None], '1': [2, 3]}
    """
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)
