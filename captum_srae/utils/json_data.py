"""Plain JSON data from the package's results (tensors, arrays, NaN)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["parse_json_object", "to_jsonable"]


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


def parse_json_object(
    text: str, option: str, neither: str = "a JSON object"
) -> dict[str, Any]:
    """An option's value: an inline JSON object or a JSON file holding one
    (``neither`` names what else the option takes, for the error).

    Raises:
        ValueError: naming ``option``, if it is neither.
    """
    if text.lstrip().startswith("{"):
        source, raw = "inline JSON", text
    else:
        path = Path(text)
        if not path.is_file():
            raise ValueError(
                f"{option}: {text!r} is neither {neither} nor an existing JSON file"
            )
        source, raw = str(path), path.read_text(encoding="utf-8")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{option}: {source} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{option}: {source} must hold a JSON object")
    return data
