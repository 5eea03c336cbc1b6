#!/usr/bin/env python3
r"""All x-feature maps of a gradient method from one shared forward pass.

A Captum gradient method (``IntegratedGradients``, ``Saliency``,
``InputXGradient``) run once per x-feature evaluates the model ``n`` times at
the same points. Instead the inputs are repeated ``n`` times along the batch
(copy ``j`` targets x-feature ``j``) and Captum runs once; the x-feature model
then sees ``S`` blocks of ``n`` identical copies of the ``N`` examples (one
block per integration step), rows ordered ``(step, copy, example)``.
:class:`SharedCopies` runs the network on copy 0 only and, in the backward
pass, takes one vector-Jacobian product per copy through that single graph:

``cost ≈ F + n·B`` instead of ``n·(F + B)``

(``F``: a forward pass, ``B``: a backward pass to the inputs). The result
equals the per-x-feature loop up to float rounding. When the copies are not
identical (a method that perturbs each row at random) :func:`copies_identical`
is False and the rows are run as they are: still right, only not faster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["SharedCopies", "copies_identical", "repeat_copies"]


def repeat_copies(value: Any, n: int, rows: int) -> Any:
    """Repeat tensors with ``rows`` rows ``n`` times along dim 0 (copy-major).

    Tuples and lists are handled element-wise; other values (numbers, tensors
    with another number of rows, e.g. a broadcasting baseline of one row) are
    returned as they are.
    """
    if isinstance(value, Tensor):
        if value.ndim and value.shape[0] == rows and rows > 1:
            return value.repeat(n, *([1] * (value.ndim - 1)))
        return value
    if isinstance(value, (tuple, list)):
        return type(value)(repeat_copies(v, n, rows) for v in value)
    return value


def copies_identical(x: Tensor, n: int, rows: int) -> bool:
    """Whether ``x`` (rows ``(step, copy, example)``) holds ``n`` equal copies."""
    if x.ndim == 0 or x.shape[0] % (n * rows):
        return False
    view = x.detach().reshape(-1, n, rows, *x.shape[1:])
    return all(torch.equal(view[:, j], view[:, 0]) for j in range(1, n))


def _first_copy(x: Tensor, n: int, rows: int) -> Tensor:
    view = x.detach().reshape(-1, n, rows, *x.shape[1:])
    return view[:, 0].reshape(-1, *x.shape[1:])


class SharedCopies(torch.autograd.Function):
    """``apply(fn, n, rows, *xs)``: ``fn`` on copy 0 of each input, the result
    repeated to every copy; the backward pass takes one VJP per copy.

    ``fn`` maps tensors of ``S·rows`` rows to outputs ``(S·rows, K)``. Only
    gradients with respect to ``xs`` are produced (the parameters of the
    network receive none), which is what attribution methods ask for.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, fn: Callable[..., Tensor], n: int, rows: int, *xs: Tensor
    ) -> Tensor:
        firsts = [
            _first_copy(x, n, rows).requires_grad_(
                x.requires_grad and x.is_floating_point()
            )
            for x in xs
        ]
        with torch.enable_grad():
            e = fn(*firsts)
        ctx.graph = (firsts, e)
        ctx.n, ctx.rows = n, rows
        k = e.shape[1]
        blocks = e.detach().reshape(-1, 1, rows, k)
        return blocks.expand(-1, n, rows, k).reshape(-1, k).clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Any:  # type: ignore[override]
        firsts, e = ctx.graph
        n, rows = ctx.n, ctx.rows
        wanted = [f for f in firsts if f.requires_grad]
        per_input: list[list[Tensor]] = [[] for _ in wanted]
        g = grad.reshape(-1, n, rows, e.shape[1])
        if wanted and e.requires_grad:
            for j in range(n):
                parts = torch.autograd.grad(
                    e,
                    wanted,
                    g[:, j].reshape(e.shape),
                    retain_graph=j < n - 1,
                    allow_unused=True,
                )
                for acc, part, f in zip(per_input, parts, wanted, strict=True):
                    acc.append(torch.zeros_like(f) if part is None else part)
        ctx.graph = None
        grads: list[Tensor | None] = []
        found = iter(per_input)
        for f in firsts:
            if not f.requires_grad:
                grads.append(None)
                continue
            copies = next(found) or [torch.zeros_like(f)] * n
            # n × (S·rows, ...) → (S, n, rows, ...) → (S·n·rows, ...)
            stacked = torch.stack(
                [c.reshape(-1, rows, *f.shape[1:]) for c in copies], dim=1
            )
            grads.append(stacked.reshape(-1, *f.shape[1:]))
        return (None, None, None, *grads)
