#!/usr/bin/env python3
"""Argument checks shared by the procedural data set generators."""

from __future__ import annotations

from captum_srae.utils.validation import check_int


def check_generator_args(n: int, seed: int, size: int, min_size: int) -> None:
    """Raise a clear error unless ``n``, ``seed`` and ``size`` are usable.

    Raises:
        TypeError: if one of them is not an int (bools are refused).
        ValueError: if ``n < 1``, ``seed < 0`` or ``size < min_size``.
    """
    check_int(n, "n")
    check_int(seed, "seed", minimum=0)
    check_int(size, "size", minimum=min_size)
