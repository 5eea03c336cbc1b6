#!/usr/bin/env python3
r"""Disk-backed activations for data sets larger than memory.

:func:`collect_activations_to_disk` runs the model over a data set once (as
:func:`~captum_srae.collect_activations` does, through
:func:`~captum_srae.activation_batches`) and writes the pooled activations
``z`` and scores ``y`` to ``.npy`` shards of about ``shard_size`` rows (a
shard ends with the batch that reaches ``shard_size``), so memory stays
bounded by one shard whatever the number of images. Every shard is written
to a temporary file and renamed into place, and ``manifest.json`` (also
replaced atomically) lists the finished shards: a collection killed at any
point resumes after its last finished shard (the data must then come in the
same order, e.g. a DataLoader without shuffling).
:func:`write_activations_to_disk` writes activations computed elsewhere in
the same layout (shards of exactly ``shard_size`` rows but the last). The
files are those of :mod:`captum_srae.activations.store_files`.

:class:`ActivationStore` (from :mod:`captum_srae.activations.store_reader`)
opens such a folder read-only through memory maps and serves rows, batches, a
``torch.utils.data.Dataset`` and the per-dimension mean and standard
deviation in one streaming pass.

With ``world_size > 1`` (see :mod:`captum_srae.training.distributed`) rank
``r`` takes the batches ``i`` with ``i % world_size == r`` and writes them
under ``path/part-<r>``; :class:`ActivationStore` on ``path`` reads the parts in
rank order.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from captum_srae.activations.collect import (
    TargetLike,
    activation_batches,
    model_device,
)
from captum_srae.activations.inputs import iter_input_batches
from captum_srae.activations.layers import layer_name, resolve_layer
from captum_srae.activations.store_files import (
    PathLike,
    ShardWriter,
    new_manifest,
    read_manifest,
)
from captum_srae.activations.store_reader import ActivationStore
from captum_srae.utils.validation import check_int

__all__ = [
    "ActivationStore",
    "collect_activations_to_disk",
    "write_activations_to_disk",
]


def collect_activations_to_disk(
    model: nn.Module,
    layer: str | nn.Module,
    data: Any,
    path: PathLike,
    target: TargetLike = None,
    *,
    pooling: str = "avg",
    additional_forward_args: Any = None,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    shard_size: int = 8192,
    rank: int = 0,
    world_size: int = 1,
) -> ActivationStore | None:
    r"""Collect pooled activations and scores over ``data`` into a folder.

    Args:
        model (nn.Module): the explained model (see
            :func:`~captum_srae.activation_batches`).
        layer (str or nn.Module): the explained layer.
        data: the inputs, see :func:`~captum_srae.iter_input_batches`; for a
            resumable collection the batches must come in a fixed order.
        path (str or PathLike): the folder (created if needed). If it holds an
            unfinished collection with the same layer, target and pooling, the
            collection resumes after the last finished shard (the finished
            batches are read from ``data`` again but not run through the
            model); a finished one is returned as it is.
        target (int or list of int, optional): the scores to keep, as in
            :func:`~captum_srae.collect_activations`. Default: None
        pooling, additional_forward_args, batch_size, device: as in
            :func:`~captum_srae.activation_batches` (on CUDA the batches are
            copied from pinned memory with ``non_blocking=True``).
        shard_size (int, optional): rows per shard file (a shard ends with the
            batch that reaches it); peak memory is about one shard of
            activations. Default: 8192
        rank (int, optional): this process's rank. Default: 0
        world_size (int, optional): number of processes sharing the data; rank
            ``r`` takes the batches ``i`` with ``i % world_size == r``.
            Default: 1

    Returns:
        *ActivationStore or None*: the collected activations, opened
        read-only; None when ``world_size > 1`` (open ``path`` once every
        rank has finished, as
        :func:`~captum_srae.training.distributed.collect_activations_distributed` does).

    Raises:
        TypeError: if ``shard_size``, ``rank`` or ``world_size`` is not an int.
        ValueError: on ``shard_size``/``world_size`` below 1, a ``rank``
            outside ``[0, world_size)``, or a ``path`` that holds a collection
            made with other settings; as :func:`~captum_srae.activation_batches`
            otherwise.

    Examples::

        >>> store = collect_activations_to_disk(net, "layer4", loader, "acts/",
        ...                                     target=3)
        >>> len(store), store.dim
        (50000, 512)
    """
    _check_sharding(shard_size, rank, world_size)
    module = resolve_layer(model, layer)
    writer = _open_writer(path, model, module, target, pooling, rank, world_size)
    if not writer.manifest["complete"]:
        dev = model_device(model, device)
        batches = _RankBatches(data, batch_size, rank, world_size, writer, dev)
        with activation_batches(
            model,
            module,
            batches,
            target,
            pooling=pooling,
            additional_forward_args=additional_forward_args,
            batch_size=batch_size,
            device=dev,
        ) as pairs:
            _write_pairs(writer, pairs, batches, shard_size)
    return ActivationStore(path) if world_size == 1 else None


def _check_sharding(shard_size: int, rank: int, world_size: int) -> None:
    check_int(shard_size, "shard_size")
    check_int(world_size, "world_size")
    if check_int(rank, "rank", minimum=0) >= world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank!r}")


def _write_pairs(
    writer: ShardWriter,
    pairs: Iterable[tuple[Tensor, Tensor]],
    batches: _RankBatches,
    shard_size: int,
) -> None:
    """Write ``(z, y)`` pairs as shards once ``shard_size`` rows are buffered,
    recording the input batches consumed; complete the collection."""
    for z, y in pairs:
        writer.add(_float32(z), _float32(y))
        if writer.rows >= shard_size:
            writer.flush(batches.consumed)
    writer.finish(batches.consumed)


#: the manifest entries that record progress, not settings
_PROGRESS = ("complete", "batches", "shards")


def _open_writer(
    path: PathLike,
    model: nn.Module,
    module: nn.Module,
    target: TargetLike,
    pooling: str,
    rank: int,
    world_size: int,
) -> ShardWriter:
    """The writer of this rank's folder: a new collection, or the unfinished
    (or finished) one there if it was made with the same settings."""
    folder = Path(path) / f"part-{rank:05d}" if world_size > 1 else Path(path)
    name = layer_name(model, module) or type(module).__name__
    kept = target if target is None or isinstance(target, int) else list(target)
    settings = new_manifest(name, kept, pooling, rank, world_size)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(folder)
    if manifest is None:
        return ShardWriter(folder, settings)
    old = {k: manifest.get(k) for k in settings if k not in _PROGRESS}
    new = {k: v for k, v in settings.items() if k not in _PROGRESS}
    if old != new:
        raise ValueError(
            f"path {str(folder)!r} holds activations collected with {old}, "
            f"not {new}; choose another folder"
        )
    return ShardWriter(folder, manifest)


def _float32(t: Tensor) -> np.ndarray:
    return t.to("cpu", dtype=torch.float32).numpy()


class _RankBatches:
    """This rank's batches after those ``writer`` has written, wrapped for
    ``activation_batches``; counts the batches consumed (``consumed``)."""

    def __init__(
        self,
        data: Any,
        batch_size: int,
        rank: int,
        world_size: int,
        writer: ShardWriter,
        dev: torch.device | None,
    ) -> None:
        mine = itertools.islice(
            iter_input_batches(data, batch_size), rank, None, world_size
        )
        self.consumed = int(writer.manifest["batches"])
        self.source = itertools.islice(mine, self.consumed, None)
        self.dev = dev

    def __iter__(self) -> Iterator[tuple[tuple[Tensor, ...]]]:
        cuda = self.dev is not None and self.dev.type == "cuda"
        for inputs in self.source:
            self.consumed += 1
            if cuda:  # pinned host memory lets the copy overlap the compute
                inputs = tuple(
                    t.pin_memory().to(self.dev, non_blocking=True) for t in inputs
                )
            yield (inputs,)


def write_activations_to_disk(
    batches: Iterable[tuple[Any, Any]],
    path: PathLike,
    *,
    shard_size: int = 8192,
) -> ActivationStore:
    r"""Write activations computed elsewhere to a store folder.

    The folder has the layout of :func:`collect_activations_to_disk` (shards
    of ``shard_size`` rows but the last, atomic writes, ``manifest.json``),
    with no layer, target or pooling recorded. Memory stays at about one
    shard.

    Args:
        batches (iterable of (z, y)): activation batches ``(B, D)`` and their
            scores ``(B,)`` or ``(B, K)`` (tensors or arrays), e.g.
            ``[(z, y)]`` for data already in memory.
        path (str or PathLike): a new or empty folder (created if needed).
        shard_size (int, optional): rows per shard file. Default: 8192

    Returns:
        *ActivationStore*: the written activations, opened read-only.

    Raises:
        TypeError: if ``shard_size`` is not an int.
        ValueError: on a ``shard_size`` below 1, a folder that already holds
            a collection, batches of mismatched shapes, or no rows at all.

    Examples::

        >>> store = write_activations_to_disk([(z, y)], "acts/")
        >>> fit_srae(store, config=config)
    """
    shard_size = check_int(shard_size, "shard_size")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    if read_manifest(folder) is not None:
        raise ValueError(f"path {str(folder)!r} already holds a collection")
    writer = ShardWriter(folder, new_manifest(None, None, None))
    count = 0
    for count, (z, y) in enumerate(batches, start=1):
        writer.add(*_rows(z, y, count - 1, writer.widths))
        while writer.rows >= shard_size:
            writer.flush(count, shard_size)
    if writer.rows:
        writer.flush(count)
    if not writer.shards:
        raise ValueError("batches must hold at least one row")
    writer.finish(count)
    return ActivationStore(folder)


def _rows(
    z: Any, y: Any, index: int, widths: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Batch ``index`` as float32 arrays ``(B, D)`` and ``(B, K)``, checked
    against the ``widths`` of the batches before it."""
    z_np = np.asarray(z.detach().cpu() if isinstance(z, Tensor) else z)
    y_np = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y)
    y_np = y_np.reshape(-1, 1) if y_np.ndim == 1 else y_np
    if z_np.ndim != 2 or y_np.ndim != 2 or z_np.shape[0] != y_np.shape[0]:
        raise ValueError(
            f"batch {index}: expected z (B, D) and y (B,) or (B, K), got shapes "
            f"{z_np.shape} and {np.shape(y)}"
        )
    if widths is not None and (z_np.shape[1], y_np.shape[1]) != widths:
        raise ValueError(f"batch {index} has other widths than the first batch")
    return z_np.astype(np.float32, copy=False), y_np.astype(np.float32, copy=False)
