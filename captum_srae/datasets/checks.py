#!/usr/bin/env python3
"""Argument checks shared by the procedural data set generators."""

from __future__ import annotations


def check_generator_args(n: int, seed: int, size: int, min_size: int) -> None:
    """Raise a clear error unless ``n``, ``seed`` and ``size`` are usable.

    Raises:
        TypeError: if one of them is not an int (bools are refused).
        ValueError: if ``n < 1``, ``seed < 0`` or ``size < min_size``.
    """
    for name, value in (("n", n), ("seed", seed), ("size", size)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if seed < 0:
        raise ValueError(f"seed must be nonnegative, got {seed}")
    if size < min_size:
        raise ValueError(f"size must be at least {min_size}, got {size}")
