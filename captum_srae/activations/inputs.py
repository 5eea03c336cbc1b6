#!/usr/bin/env python3
"""The data forms accepted by the collection functions, normalised to one
tuple of input tensors per batch (:func:`iter_input_batches`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from torch import Tensor

from captum_srae.utils.validation import check_int

__all__ = ["fold_row_arguments", "iter_input_batches"]


def _batch_inputs(batch: Any, index: int) -> tuple[Tensor, ...]:
    """The input tensors of one batch drawn from an iterable (see below)."""
    if isinstance(batch, dict):
        raise TypeError(
            f"batch {index} is a dict; dict batches are not supported: map them to "
            "tensors or (inputs, labels), e.g. (b['pixel_values'] for b in loader)"
        )
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise ValueError(f"batch {index} is an empty {type(batch).__name__}")
        batch = batch[0]
    inputs = tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
    if not inputs or not all(isinstance(t, Tensor) for t in inputs):
        raise TypeError(
            f"batch {index}: the input must be a Tensor or a tuple of Tensors, got "
            f"{type(batch).__name__}"
        )
    _check_lengths(inputs, f"batch {index}")
    return inputs


def _check_lengths(inputs: tuple[Tensor, ...], where: str) -> int:
    if any(t.ndim == 0 for t in inputs):
        raise ValueError(f"{where}: inputs must have a batch dimension, got 0-D")
    lengths = {int(t.shape[0]) for t in inputs}
    if len(lengths) > 1:
        raise ValueError(f"{where}: inputs differ in length along dim 0: {lengths}")
    return lengths.pop()


def iter_input_batches(data: Any, batch_size: int = 64) -> Iterator[tuple[Tensor, ...]]:
    r"""Normalise the data forms accepted by :func:`collect_activations`.

    Args:
        data: one of

            - a Tensor ``(N, ...)``: split into chunks of ``batch_size``;
            - a tuple of Tensors of equal length (inputs of a multi-input
              model): chunked together;
            - a DataLoader or any other iterable of batches (``batch_size`` is
              then ignored). A batch is a Tensor, or a tuple/list whose first
              element is the input (a Tensor, or a tuple of Tensors for a
              multi-input model) and whose other elements (labels) are dropped.
              A ``DataLoader(TensorDataset(x, labels))`` thus gives ``x``.
        batch_size (int, optional): chunk size for Tensor data. Default: 64

    Returns:
        Iterator of tuple[Tensor, ...]: the inputs of each batch, as a tuple.

    Raises:
        ValueError: if ``data`` has no batches, ``batch_size < 1``, or the
            inputs differ in length.
        TypeError: for dict batches, batches/data of another type, or a
            ``batch_size`` that is not an int.

    Examples::

        >>> [b[0].shape[0] for b in iter_input_batches(torch.zeros(5, 3), 2)]
        [2, 2, 1]
    """
    batch_size = check_int(batch_size, "batch_size")
    if isinstance(data, Tensor) or (
        isinstance(data, tuple) and data and all(isinstance(t, Tensor) for t in data)
    ):
        tensors = (data,) if isinstance(data, Tensor) else tuple(data)
        n = _check_lengths(tensors, "data")
        if n == 0:
            raise ValueError("data yielded no batches")
        return (
            tuple(t[i : i + batch_size] for t in tensors)
            for i in range(0, n, batch_size)
        )
    if isinstance(data, (str, bytes, dict)) or not isinstance(data, Iterable):
        raise TypeError(
            "data must be a Tensor, a tuple of Tensors or an iterable of batches, "
            f"got {type(data).__name__}"
        )
    return _iter_batches(data)


def _iter_batches(data: Iterable[Any]) -> Iterator[tuple[Tensor, ...]]:
    index = -1
    for index, batch in enumerate(data):
        yield _batch_inputs(batch, index)
    if index < 0:
        raise ValueError("data yielded no batches")


def fold_row_arguments(
    data: Any, extra: tuple[Any, ...]
) -> tuple[Any, tuple[Any, ...]]:
    r"""Chunk per-example extra arguments (an attention mask) with Tensor data.

    ``model(*inputs, *extra)`` is called per batch. When ``data`` is a Tensor
    or a tuple of Tensors with ``N`` rows, the leading entries of ``extra``
    that are Tensors with ``N`` rows become inputs of ``data`` (the call is
    the same), so that each batch gets its own rows; the other entries stay
    the same for every batch. Other data (a DataLoader) is left as it is: its
    batches must then carry such tensors as inputs, ``((ids, mask), labels)``.

    Args:
        data (Any): the data of :func:`iter_input_batches`.
        extra (tuple): the extra model arguments.

    Returns:
        *tuple[Any, tuple]*: the data and the remaining extra arguments.

    Examples::

        >>> data, extra = fold_row_arguments(ids, (mask, 0.5))
        >>> len(data), extra  # (ids, mask)
        (2, (0.5,))
    """
    if isinstance(data, Tensor):
        tensors: tuple[Any, ...] = (data,)
    elif isinstance(data, tuple) and data and all(isinstance(t, Tensor) for t in data):
        tensors = data
    else:
        return data, extra
    if tensors[0].ndim == 0:
        return data, extra
    n, lead = int(tensors[0].shape[0]), 0
    while lead < len(extra) and isinstance(extra[lead], Tensor):
        if extra[lead].ndim == 0 or int(extra[lead].shape[0]) != n:
            break
        lead += 1
    if lead == 0:
        return data, extra
    return (*tensors, *extra[:lead]), tuple(extra[lead:])
