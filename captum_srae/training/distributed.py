#!/usr/bin/env python3
r"""Several processes (GPUs, machines): sharded activation collection and
SRAE fitting with ``DistributedDataParallel``.

Launch one process per GPU (or per CPU worker) with ``torchrun``; every
process calls the same functions:

- :func:`collect_activations_distributed`: rank ``r`` of ``W`` runs the model
  on the batches ``i`` with ``i % W == r`` and writes them to
  ``path/part-<r>`` (:func:`~captum_srae.activations.store.collect_activations_to_disk`:
  resumable, bounded memory); after a barrier every rank opens the whole
  :class:`~captum_srae.activations.store.ActivationStore`.
- :func:`fit_srae_distributed`: every rank runs :func:`~captum_srae.fit_srae`
  on the same activations, but each minibatch of ``config.batch_size`` rows is
  cut into ``W`` chunks and rank ``r`` backpropagates chunk ``r`` only;
  ``DistributedDataParallel`` averages the gradients, so every rank takes the
  same optimizer step. The result equals the single-process fit whose
  minibatches are cut the same way
  (``fit_srae_distributed(z, y, config, world_size=W)`` without a process
  group) up to float rounding, when ``config.dropout == 0`` (with dropout the
  ranks draw their own masks, which changes the run as another seed would).
  The steps outside the minibatches (held-out evaluation, dead-unit checks,
  early stopping) run on every rank on the same data, so all ranks take the
  same decisions (with ``config.epoch_samples`` set, every rank draws the
  same seeded subsets of training and held-out rows for them). Given an
  :class:`~captum_srae.activations.store.ActivationStore`, every rank
  streams it (:func:`~captum_srae.training.fit_srae_streaming`: memory
  independent of the number of rows) and reads the same minibatches.

Command line (``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT`` and ``LOCAL_RANK``)::

    torchrun --nproc_per_node=4 -m captum_srae.training.distributed fit acts/ out/ \
        --n-concepts 5

fits an SRAE on the activations collected in ``acts/`` and saves it (rank 0)
to ``out/``. See ``docs/scaling.rst`` for several machines.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from captum_srae.activations.store import ActivationStore, collect_activations_to_disk
from captum_srae.core.config import SRAEConfig
from captum_srae.core.model import SRAE
from captum_srae.training.fit import ArrayLike, fit_in_memory
from captum_srae.training.history import TrainingHistory
from captum_srae.training.parallel import Parallel
from captum_srae.training.streaming import fit_store
from captum_srae.utils.validation import check_int

__all__ = [
    "collect_activations_distributed",
    "fit_srae_distributed",
    "init_from_env",
    "main",
]


def init_from_env(backend: str | None = None) -> tuple[int, int, torch.device]:
    r"""Join the process group described by the ``torchrun`` environment.

    Args:
        backend (str, optional): ``"nccl"`` or ``"gloo"``. Default: ``"nccl"``
            when CUDA is available, else ``"gloo"``.

    Returns:
        *tuple[int, int, torch.device]*: rank, world size and this process's
        device (``cuda:LOCAL_RANK`` with CUDA, else CPU).
    """
    cuda = torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if cuda else "gloo"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def collect_activations_distributed(
    model: nn.Module, layer: str | nn.Module, data: Any, path: str, **kwargs: Any
) -> ActivationStore:
    r"""Collect activations with every rank taking its share of the batches.

    Args:
        model (nn.Module): the explained model (on this rank's device).
        layer (str or nn.Module): the explained layer.
        data: the same batches on every rank (a DataLoader without shuffling);
            rank ``r`` of ``W`` runs the batches ``i`` with ``i % W == r``.
        path (str): a folder every rank can reach (a shared file system when
            the ranks are on several machines).
        **kwargs: passed to
            :func:`~captum_srae.activations.store.collect_activations_to_disk`
            (``target``, ``pooling``, ``batch_size``, ``shard_size``, ...).

    Returns:
        *ActivationStore*: all ranks' activations (after a barrier).
    """
    rank, world = _rank_world()
    collect_activations_to_disk(
        model, layer, data, path, rank=rank, world_size=world, **kwargs
    )
    if world > 1:
        dist.barrier()
    return ActivationStore(path)


class _Objective(nn.Module):
    """The module DDP wraps: ``forward(fn, rows)`` computes ``fn(rows)`` with
    the SRAE's parameters."""

    def __init__(self, srae: SRAE) -> None:
        super().__init__()
        self.srae = srae

    def forward(self, fn: Any, rows: Tensor) -> Any:
        return fn(rows)


def _global_mean(values: list[float]) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)  # gloo and nccl both sum float64 on CPU/GPU tensors
    return (t / dist.get_world_size()).tolist()


def fit_srae_distributed(
    z: ArrayLike | ActivationStore,
    y: ArrayLike | None = None,
    config: SRAEConfig | None = None,
    *,
    world_size: int | None = None,
    device: str | torch.device | None = None,
    show_progress: bool = False,
) -> tuple[SRAE, TrainingHistory]:
    r"""Fit an SRAE with the minibatch work split over the ranks (DDP).

    Every rank must pass the same data and config. Each minibatch is cut into
    ``W`` chunks (``torch.tensor_split``), rank ``r`` computes the loss of
    chunk ``r``, and ``DistributedDataParallel`` averages the gradients:

    ``g = (1/W) Σ_r ∇ L(chunk_r)``

    Without a process group, ``world_size=W`` computes the same updates in
    one process (the reference the distributed fit equals).

    Args:
        z (Tensor, ndarray or ActivationStore): activations ``(N, D)``, or a
            store (then ``y`` is taken from it and the store is streamed as
            in :func:`~captum_srae.training.fit_srae_streaming`, never
            loaded in memory).
        y (Tensor or ndarray, optional): scores ``(N,)`` or ``(N, K)``.
        config (SRAEConfig, optional): as in :func:`~captum_srae.fit_srae`.
        world_size (int, optional): only without a process group: the number
            of chunks to simulate. Default: the process group's size, else 1
        device (str or torch.device, optional): this rank's device.
            Default: CPU
        show_progress (bool, optional): progress bars (rank 0 only).
            Default: False

    Returns:
        *tuple[SRAE, TrainingHistory]*: the same network on every rank.

    Raises:
        TypeError: if ``world_size`` is not an int.
        ValueError: if ``world_size`` is below 1 or disagrees with the process
            group, ``y`` is missing for in-memory ``z`` or given with a store.
    """
    streaming = isinstance(z, ActivationStore)
    if streaming and y is not None:
        raise ValueError("y must be None when z is an ActivationStore")
    if not streaming and y is None:
        raise ValueError("y must be given unless z is an ActivationStore")
    rank, world = _rank_world()
    if world > 1:
        if world_size not in (None, world):
            raise ValueError(
                f"world_size={world_size} but the process group has {world} ranks"
            )
        dev = torch.device("cpu") if device is None else torch.device(device)
        ids = [dev.index] if dev.type == "cuda" else None

        def wrap(srae: SRAE) -> nn.Module:
            return nn.parallel.DistributedDataParallel(
                _Objective(srae),
                device_ids=ids,
                find_unused_parameters=True,  # pretraining trains 2 layers a stage
                broadcast_buffers=False,
            )

        parallel = Parallel(parts=world, rank=rank, mean=_global_mean, wrap=wrap)
    else:
        parts = 1 if world_size is None else check_int(world_size, "world_size")
        parallel = Parallel(parts=parts)
    show = show_progress and rank == 0
    if isinstance(z, ActivationStore):
        return fit_store(z, config, show, device, parallel)
    assert y is not None  # checked above
    return fit_in_memory(z, y, config, show, device, None, parallel)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m captum_srae.training.distributed fit STORE OUT`` under torchrun."""
    parser = argparse.ArgumentParser(
        prog="python -m captum_srae.training.distributed",
        description="Fit an SRAE on collected activations with DDP (torchrun).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit on an ActivationStore folder")
    fit.add_argument("store", help="folder written by collect_activations_to_disk")
    fit.add_argument("out", help="folder for the fitted SRAE (written by rank 0)")
    fit.add_argument("--n-concepts", type=int, default=5)
    fit.add_argument(
        "--epoch-samples", type=int, default=None, help="default: SRAEConfig's"
    )
    fit.add_argument(
        "--batch-size", type=int, default=None, help="default: SRAEConfig's"
    )
    fit.add_argument("--backend", default=None, help="nccl or gloo")
    args = parser.parse_args(argv)
    rank, _, device = init_from_env(args.backend)
    given = {"epoch_samples": args.epoch_samples, "batch_size": args.batch_size}
    config = SRAEConfig(
        n_concepts=args.n_concepts,
        **{k: v for k, v in given.items() if v is not None},
    )
    srae, history = fit_srae_distributed(
        ActivationStore(args.store), config=config, device=device
    )
    if rank == 0:
        srae.save(args.out)
        print(f"held-out R^2 {history.val_r2:.4f}; saved to {args.out}")
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
