#!/usr/bin/env python3
"""How :func:`~captum_srae.fit_srae` splits each minibatch: in one process,
or over the ranks of ``DistributedDataParallel``
(see :mod:`captum_srae.training.distributed`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import Tensor

from captum_srae.core.model import SRAE

__all__ = ["Parallel"]


@dataclasses.dataclass
class Parallel:
    """How each minibatch is split (see :mod:`captum_srae.training.distributed`).

    Every minibatch is cut into ``parts`` chunks (``torch.tensor_split``) and
    the gradient is the mean of the chunks' gradients. In one process
    (``ddp`` None) this process computes every chunk; under
    ``DistributedDataParallel`` rank ``r`` computes chunk ``r`` and DDP
    averages the gradients over the ranks, so both give the same updates.
    Minibatches with fewer than ``parts`` samples are skipped.

    Attributes:
        parts (int): chunks per minibatch (the number of ranks).
        rank (int): the chunk this process computes under DDP.
        ddp (nn.Module or None): the DDP-wrapped objective, set by
            :meth:`attach`; None in one process.
        mean (Callable or None): averages a list of floats over the ranks.
        wrap (Callable or None): builds ``ddp`` from the network.
    """

    parts: int = 1
    rank: int = 0
    ddp: torch.nn.Module | None = None
    mean: Callable[[list[float]], list[float]] | None = None  # over ranks
    wrap: Callable[[SRAE], torch.nn.Module] | None = None  # builds ``ddp``

    def attach(self, srae: SRAE) -> None:
        """Wrap the freshly built network (called once by the fit).

        Args:
            srae (SRAE): the network, before any training step.
        """
        if self.wrap is not None:
            self.ddp = self.wrap(srae)

    def losses(
        self, idx: Tensor, compute: Callable[[Tensor], Tensor | tuple[Tensor, ...]]
    ) -> tuple[Tensor, list[float]] | None:
        """The loss to backpropagate and the global mean of each returned term.

        Args:
            idx (Tensor): the rows of one minibatch.
            compute (Callable): maps rows to a loss, or to a tuple whose first
                element is the loss to backpropagate and the rest its terms.

        Returns:
            *tuple[Tensor, list[float]] or None*: the loss of this process's
            share and the mean of every term over the whole minibatch; None
            for a minibatch of fewer than ``parts`` rows (skipped).
        """
        if idx.numel() < self.parts:
            return None
        if self.parts == 1 and self.ddp is None:  # the plain fit
            out = compute(idx)
            terms = out if isinstance(out, tuple) else (out,)
            return terms[0], [float(t.detach()) for t in terms]
        chunks = list(torch.tensor_split(idx, self.parts))
        if self.ddp is not None:
            out = self.ddp(compute, chunks[self.rank])
            terms = out if isinstance(out, tuple) else (out,)
            values = [float(t.detach()) for t in terms]
            return terms[0], self.mean(values) if self.mean else values
        total: Tensor | None = None
        sums: list[float] = []
        for chunk in chunks:
            out = compute(chunk)
            terms = out if isinstance(out, tuple) else (out,)
            total = terms[0] if total is None else total + terms[0]
            values = [float(t.detach()) for t in terms]
            sums = (
                values
                if not sums
                else [a + b for a, b in zip(sums, values, strict=True)]
            )
        assert total is not None
        return total / self.parts, [v / self.parts for v in sums]
