#!/usr/bin/env python3
r"""Argument types of the ``captum-srae`` parsers (no heavy imports)."""

from __future__ import annotations

import argparse

__all__ = ["nonnegative_int", "positive_int"]


def _int_at_least(text: str, minimum: int, words: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {words}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An int of at least 1, else an argparse usage error."""
    return _int_at_least(text, 1, "at least 1")


def nonnegative_int(text: str) -> int:
    """An int of at least 0, else an argparse usage error."""
    return _int_at_least(text, 0, "nonnegative")
