#!/usr/bin/env python3
r"""The grid of a study: axes of :class:`~captum_srae.SRAEConfig` settings.

A grid maps an axis name to either

- a sequence of values of the SRAEConfig field of that name
  (``{"alpha_pred": [1, 10, 50]}``), or
- a mapping from level names to dicts of SRAEConfig fields (a named axis,
  ``{"retune": {"off": {"retune_rounds": 1}, "on": {"retune_rounds": 5}}}``).

:func:`expand_grid` turns it into the list of :class:`GridPoint`\ s, the
product of the axes in their order, each named like
``"reconstruction=log,pull_away=images,alpha_pred=50,retune=on"``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from captum_srae.core.config import SRAEConfig

__all__ = [
    "PAPER_GRID",
    "QUICK_GRID",
    "Grid",
    "GridPoint",
    "canonical_grid",
    "expand_grid",
    "point_config",
    "point_levels",
]

Grid = Mapping[str, Sequence[Any] | Mapping[str, Mapping[str, Any]]]

_FIELDS = frozenset(f.name for f in dataclasses.fields(SRAEConfig))

_PULL_AWAY = {
    "off": {"alpha_pt": 0.0},
    "images": {"pull_away_axis": "images"},
    "features": {"pull_away_axis": "features"},
}

#: The ablation grid of the paper's design choices: the sparse (log) or plain
#: (MSE) reconstruction, the pull-away term off or along images or features,
#: the prediction weight, and the automatic re-tuning off (one round) or on.
PAPER_GRID: dict[str, Any] = {
    "reconstruction": ["log", "mse"],
    "pull_away": _PULL_AWAY,
    "alpha_pred": [1, 10, 50, 200, 1000],
    "retune": {"off": {"retune_rounds": 1}, "on": {"retune_rounds": 5}},
}

#: A small grid (4 points) for a first look and for tests.
QUICK_GRID: dict[str, Any] = {
    "reconstruction": ["log", "mse"],
    "pull_away": {k: _PULL_AWAY[k] for k in ("off", "images")},
}


class GridPoint(NamedTuple):
    """One point of a grid.

    Attributes:
        name (str): ``"axis=level,..."`` in the order of the axes.
        overrides (dict): the SRAEConfig fields this point sets.
    """

    name: str
    overrides: dict[str, Any]


def _token(value: Any) -> str:
    """How a value appears in a point name: strings as they are, the rest as
    compact JSON (``50``, ``0.001``, ``true``, ``[16,8]``)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _check_fields(fields: Mapping[str, Any], axis: str, level: str) -> None:
    if not isinstance(fields, Mapping):
        raise ValueError(
            f"grid axis {axis!r}: level {level!r} must map SRAEConfig fields to "
            f"values, got {type(fields).__name__}"
        )
    for field in fields:
        if field == "seed":
            raise ValueError(
                f"grid axis {axis!r} sets 'seed'; the seeds of a study are "
                "given separately (seeds)"
            )
        if field not in _FIELDS:
            raise ValueError(
                f"grid axis {axis!r} sets unknown SRAEConfig field {field!r}"
            )


def _axis_levels(axis: str, spec: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(level name, overrides)`` of every level of one axis."""
    if not isinstance(axis, str) or not axis:
        raise ValueError(f"grid axis names must be non-empty strings, got {axis!r}")
    if isinstance(spec, Mapping):
        levels = []
        for level, fields in spec.items():
            _check_fields(fields, axis, level)
            levels.append((str(level), dict(fields)))
    elif isinstance(spec, Sequence) and not isinstance(spec, (str, bytes)):
        _check_fields({axis: None}, axis, axis)
        levels = [(_token(v), {axis: v}) for v in spec]
    else:
        raise ValueError(
            f"grid axis {axis!r} must be a sequence of values or a mapping of "
            f"named levels, got {type(spec).__name__}"
        )
    if not levels:
        raise ValueError(f"grid axis {axis!r} has no values")
    names = [name for name, _ in levels]
    if len(set(names)) != len(names):
        raise ValueError(f"grid axis {axis!r} repeats a value: {names}")
    return levels


def expand_grid(
    grid: Grid, base_config: Mapping[str, Any] | None = None
) -> list[GridPoint]:
    """Every point of ``grid``, the product of its axes in their order.

    Args:
        grid (Mapping): axis name to a sequence of values of the SRAEConfig
            field of that name, or to a mapping from level names to dicts of
            SRAEConfig fields (see the module docstring).
        base_config (Mapping, optional): SRAEConfig fields shared by every
            point (the point's own fields win); only used to check each
            point's configuration. Default: None (the SRAEConfig defaults)

    Returns:
        *list[GridPoint]*: the points, the last axis varying fastest.

    Raises:
        ValueError: if ``grid`` is empty or not a mapping; if an axis has no
            values or repeats one; if an axis sets an unknown SRAEConfig
            field (naming the field and the axis), ``seed``, or a field
            another axis of the same point sets; or if SRAEConfig rejects a
            point's values (its message, prefixed with the point's name).

    Examples::

        >>> [p.name for p in expand_grid({"alpha_pred": [1, 10],
        ...                               "retune": {"on": {"retune_rounds": 5}}})]
        ['alpha_pred=1,retune=on', 'alpha_pred=10,retune=on']
    """
    if not isinstance(grid, Mapping) or not grid:
        got = "an empty mapping" if isinstance(grid, Mapping) else type(grid).__name__
        raise ValueError(f"grid must be a non-empty mapping of axes, got {got}")
    base = {} if base_config is None else dict(base_config)
    axes = [(axis, _axis_levels(axis, spec)) for axis, spec in grid.items()]
    points = []
    for combo in itertools.product(*(levels for _, levels in axes)):
        name = ",".join(
            f"{axis}={level}" for (axis, _), (level, _) in zip(axes, combo, strict=True)
        )
        overrides: dict[str, Any] = {}
        for (axis, _), (_, fields) in zip(axes, combo, strict=True):
            for field in set(fields) & set(overrides):
                raise ValueError(
                    f"grid point {name}: axis {axis!r} sets {field!r}, which an "
                    "earlier axis already sets"
                )
            overrides.update(fields)
        point = GridPoint(name, overrides)
        point_config(point, base, 0)
        points.append(point)
    return points


def point_levels(grid: Grid) -> dict[str, dict[str, str]]:
    """The level of every axis at every point of ``grid``.

    Args:
        grid (Mapping): a grid, as for :func:`expand_grid`.

    Returns:
        *dict[str, dict[str, str]]*: point name to ``{axis: level name}``, in
        the order of :func:`expand_grid`.

    Raises:
        ValueError: as :func:`expand_grid` for a malformed grid.

    Examples::

        >>> point_levels({"alpha_pred": [1, 10]})["alpha_pred=10"]
        {'alpha_pred': '10'}
    """
    if not isinstance(grid, Mapping) or not grid:
        got = "an empty mapping" if isinstance(grid, Mapping) else type(grid).__name__
        raise ValueError(f"grid must be a non-empty mapping of axes, got {got}")
    axes = [
        (axis, [n for n, _ in _axis_levels(axis, spec)]) for axis, spec in grid.items()
    ]
    out = {}
    for combo in itertools.product(*(levels for _, levels in axes)):
        levels = dict(zip([axis for axis, _ in axes], combo, strict=True))
        out[",".join(f"{k}={v}" for k, v in levels.items())] = levels
    return out


def point_config(point: GridPoint, base: Mapping[str, Any], seed: int) -> SRAEConfig:
    """The configuration of one fit: ``base``, then the point's fields, then
    ``seed``.

    Args:
        point (GridPoint): the grid point.
        base (Mapping): SRAEConfig fields shared by every point.
        seed (int): the fit's seed.

    Returns:
        *SRAEConfig*

    Raises:
        ValueError, TypeError: SRAEConfig's error, prefixed with the point's name.
    """
    fields = {**base, **point.overrides, "seed": seed}
    try:
        return SRAEConfig.from_dict(fields)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"grid point {point.name}: {exc}") from None


def canonical_grid(grid: Grid) -> dict[str, Any]:
    """``grid`` as plain JSON data (axes and levels in their order, the fields
    of a level sorted), as a study's results file records it.

    Args:
        grid (Mapping): a grid :func:`expand_grid` accepts.

    Returns:
        *dict*: JSON data; two grids with the same points in the same order
        give equal JSON text.

    Raises:
        ValueError: if ``grid`` is not a mapping or a value is not JSON data.
    """
    if not isinstance(grid, Mapping):
        raise ValueError(f"grid must be a mapping of axes, got {type(grid).__name__}")
    out: dict[str, Any] = {}
    for axis, spec in grid.items():
        if isinstance(spec, Mapping):
            out[axis] = {
                str(level): dict(sorted(fields.items()))
                for level, fields in spec.items()
            }
        else:
            out[axis] = list(spec)
    try:
        return json.loads(json.dumps(out, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"grid must hold JSON values only: {exc}") from None
