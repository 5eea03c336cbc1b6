#!/usr/bin/env python3
r"""Checks of text inputs: token ids ``(N, T)`` of a classifier that starts
with an embedding.

:class:`~captum_srae.attribution.SRAEAttribution` calls both checks on the
data of ``fit`` (a Tensor or a tuple of Tensors; a DataLoader's batches are
not checked, the embedding raises PyTorch's ``IndexError`` there) and on the
inputs of ``attribute``, ``contributions``, ``concepts`` and ``explain``,
before any forward pass.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

__all__ = ["check_sequences", "check_token_ids", "input_embedding"]


def input_embedding(model: Any) -> nn.Embedding | None:
    r"""The model's input embedding: its first leaf module (in registration
    order) when that is an ``nn.Embedding``.

    Args:
        model (nn.Module or Callable): the explained model.

    Returns:
        *nn.Embedding or None*: the embedding, None for a plain callable or a
        model whose first leaf module is something else.

    Examples::

        >>> input_embedding(nn.Sequential(nn.Embedding(30, 8), nn.Linear(8, 2)))
        Embedding(30, 8)
    """
    if not isinstance(model, nn.Module):
        return None
    for module in model.modules():
        if not any(True for _ in module.children()):
            return module if isinstance(module, nn.Embedding) else None
    return None


def check_token_ids(model: Any, ids: Any, arg: str = "inputs") -> None:
    r"""Raise if integer inputs of a model starting with an embedding hold
    ids outside the embedding (before the forward pass).

    Args:
        model (nn.Module or Callable): the explained model (see
            :func:`input_embedding`).
        ids (Any): the model's first input; only integer Tensors are checked.
        arg (str, optional): the argument's name, for the message.
            Default: "inputs"

    Raises:
        ValueError: if an id is negative or ``>= num_embeddings``.

    Examples::

        >>> check_token_ids(net, torch.tensor([[3, 30]]))  # 30 embeddings
        Traceback (most recent call last):
        ValueError: inputs: token ids must lie in [0, 30) ...
    """
    emb = input_embedding(model)
    if emb is None or not isinstance(ids, Tensor) or ids.numel() == 0:
        return
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == bool:
        return
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= emb.num_embeddings:
        raise ValueError(
            f"{arg}: token ids must lie in [0, {emb.num_embeddings}) for the "
            f"model's embedding ({emb.num_embeddings} rows), got ids from {low} "
            f"to {high}; map unknown tokens to an id of the vocabulary"
        )


def _is_sequence(item: Any) -> bool:
    return (
        isinstance(item, (list, tuple))
        and bool(item)
        and all(isinstance(i, int) and not isinstance(i, bool) for i in item)
    )


def check_sequences(value: Any, arg: str = "inputs") -> None:
    r"""Raise if ``value`` is a Python list of token sequences of different
    lengths (lists or tuples of Python ints).

    Such a list is neither a batch (a Tensor ``(N, T)``) nor an iterable of
    batches; padding it is the caller's choice (pad id, side, mask).

    Args:
        value (Any): the inputs or data.
        arg (str, optional): the argument's name, for the message.
            Default: "inputs"

    Raises:
        ValueError: for a list or tuple of two or more such sequences whose
            lengths differ.

    Examples::

        >>> check_sequences([[3, 4, 5], [6, 7]], "data")
        Traceback (most recent call last):
        ValueError: data: 2 token sequences of different lengths ...
    """
    if not isinstance(value, (list, tuple)) or len(value) < 2:
        return
    if not all(_is_sequence(item) for item in value):
        return
    lengths = {len(item) for item in value}
    if len(lengths) > 1:
        raise ValueError(
            f"{arg}: {len(value)} token sequences of different lengths "
            f"({min(lengths)} to {max(lengths)}) and no attention mask; pad them "
            "to one length T into a Tensor (N, T) with a pad id and pass the "
            "attention mask as additional_forward_args=(mask,)"
        )
