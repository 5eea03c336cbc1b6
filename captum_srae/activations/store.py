#!/usr/bin/env python3
r"""Disk-backed activations for data sets larger than memory.

:func:`collect_activations_to_disk` runs the model over a data set once (as
:func:`~captum_srae.collect_activations` does, through
:func:`~captum_srae.activation_batches`) and writes the pooled activations
``z`` and scores ``y`` to ``.npy`` shards of at most ``shard_size`` rows, so
memory stays bounded by one shard whatever the number of images. Every shard
is written to a temporary file and renamed into place, and ``manifest.json``
(also replaced atomically) lists the finished shards: a collection killed at
any point resumes after its last finished shard (the data must then come in
the same order, e.g. a DataLoader without shuffling).

:class:`ActivationStore` opens such a folder read-only through memory maps and
serves rows, batches, a ``torch.utils.data.Dataset`` and the per-dimension
mean and standard deviation in one streaming pass.

With ``world_size > 1`` (see :mod:`captum_srae.training.distributed`) rank ``r`` takes
the batches ``i`` with ``i % world_size == r`` and writes them under
``path/part-<r>``; :class:`ActivationStore` on ``path`` reads the parts in
rank order.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from captum_srae.activations.collect import (
    TargetLike,
    activation_batches,
    iter_input_batches,
    layer_name,
    resolve_layer,
)
from captum_srae.activations.store_files import (
    _FORMAT,
    _MANIFEST,
    PathLike,
    _read_manifest,
    _save_npy,
    _write_manifest,
    write_activations_to_disk,
)

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
            collection resumes after the last finished shard; a finished one
            is returned as it is. On a resume the finished batches are read
            from ``data`` again but not run through the model.
        target (int or list of int, optional): the scores to keep, as in
            :func:`~captum_srae.collect_activations`. Default: None
        pooling (str, optional): ``"avg"`` or ``"flatten"``. Default: "avg"
        additional_forward_args (Any, optional): extra model arguments.
            Default: None
        batch_size (int, optional): chunk size for Tensor data. Default: 64
        device (str or torch.device, optional): device of the inputs; None
            uses the model's. On CUDA the batches are copied from pinned
            memory with ``non_blocking=True``. Default: None
        shard_size (int, optional): rows per shard file; peak memory is about
            one shard of activations. Default: 8192
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
        ValueError: on bad ``shard_size``/``rank``/``world_size``, or when
            ``path`` holds a collection made with other settings; as
            :func:`~captum_srae.activation_batches` otherwise.

    Examples::

        >>> store = collect_activations_to_disk(net, "layer4", loader, "acts/",
        ...                                     target=3)
        >>> len(store), store.dim
        (50000, 512)
    """
    for name, value, low in (
        ("shard_size", shard_size, 1),
        ("world_size", world_size, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if (
        isinstance(rank, bool)
        or not isinstance(rank, int)
        or not 0 <= rank < world_size
    ):
        raise ValueError(f"rank must be in [0, {world_size}), got {rank!r}")
    module = resolve_layer(model, layer)
    folder = Path(path) / f"part-{rank:05d}" if world_size > 1 else Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "format": _FORMAT,
        "layer": layer_name(model, module) or type(module).__name__,
        "target": target if target is None or isinstance(target, int) else list(target),
        "pooling": pooling,
        "rank": rank,
        "world_size": world_size,
    }
    manifest = _read_manifest(folder)
    if manifest is not None:
        old = {k: manifest.get(k) for k in settings}
        if old != settings:
            raise ValueError(
                f"path {str(folder)!r} holds activations collected with {old}, "
                f"not {settings}; choose another folder"
            )
        if manifest["complete"]:
            return ActivationStore(path) if world_size == 1 else None
    else:
        manifest = {**settings, "complete": False, "batches": 0, "shards": []}
    dev = _device(model, device)
    done = int(manifest["batches"])
    batches = _my_batches(data, batch_size, rank, world_size, done, dev)
    buf_z: list[Tensor] = []
    buf_y: list[Tensor] = []
    rows = 0
    consumed = done

    def flush() -> None:
        nonlocal rows
        if not buf_z:
            return
        index = len(manifest["shards"])
        z = torch.cat(buf_z).numpy().astype(np.float32, copy=False)
        y = torch.cat(buf_y).numpy().astype(np.float32, copy=False)
        _save_npy(folder / f"z-{index:05d}.npy", z)
        _save_npy(folder / f"y-{index:05d}.npy", y)
        manifest["shards"].append({"rows": int(z.shape[0])})
        manifest["batches"] = consumed
        manifest["dim"], manifest["n_outputs"] = int(z.shape[1]), int(y.shape[1])
        _write_manifest(folder, manifest)
        buf_z.clear()
        buf_y.clear()
        rows = 0

    with activation_batches(
        model,
        module,
        batches,
        target,
        pooling=pooling,
        additional_forward_args=additional_forward_args,
        batch_size=batch_size,
        device=dev,
    ) as it:
        for z, y in it:
            buf_z.append(z.to("cpu", dtype=torch.float32))
            buf_y.append(y.to("cpu", dtype=torch.float32))
            rows += z.shape[0]
            consumed = done + batches.seen
            if rows >= shard_size:
                flush()
    consumed = done + batches.seen
    flush()
    manifest["batches"] = consumed
    manifest["complete"] = True
    _write_manifest(folder, manifest)
    return ActivationStore(path) if world_size == 1 else None


class _MyBatches:
    """This rank's batches after ``skip`` of them, wrapped for
    ``activation_batches``; counts the batches handed out (``seen``)."""

    def __init__(
        self, source: Iterator[tuple[Tensor, ...]], dev: torch.device | None
    ) -> None:
        self.source, self.dev, self.seen = source, dev, 0

    def __iter__(self) -> Iterator[tuple[tuple[Tensor, ...]]]:
        cuda = self.dev is not None and self.dev.type == "cuda"
        for inputs in self.source:
            self.seen += 1
            if cuda:  # pinned host memory lets the copy overlap the compute
                inputs = tuple(
                    t.pin_memory().to(self.dev, non_blocking=True) for t in inputs
                )
            yield (inputs,)


def _my_batches(
    data: Any,
    batch_size: int,
    rank: int,
    world_size: int,
    skip: int,
    dev: torch.device | None,
) -> _MyBatches:
    mine = itertools.islice(
        iter_input_batches(data, batch_size), rank, None, world_size
    )
    return _MyBatches(itertools.islice(mine, skip, None), dev)


def _device(model: nn.Module, device: Any) -> torch.device | None:
    if device is not None:
        return torch.device(device)
    return next((p.device for p in model.parameters()), None)


class ActivationStore:
    r"""Read-only access to activations written by
    :func:`collect_activations_to_disk` (memory-mapped ``.npy`` shards).

    Args:
        path (str or PathLike): the folder (or the parent of ``part-*``
            folders written by several ranks).

    Raises:
        ValueError: if the folder holds no finished collection.

    Examples::

        >>> store = ActivationStore("acts/")
        >>> for z, y in store.batches(1024):
        ...     ...
        >>> mean, std = store.stats()
    """

    def __init__(self, path: PathLike) -> None:
        root = Path(path)
        folders = (
            [root]
            if (root / _MANIFEST).exists()
            else sorted(root.glob("part-*"))
            if root.is_dir()
            else []
        )
        if not folders:
            raise ValueError(f"path {str(root)!r} holds no collected activations")
        self._z: list[np.ndarray] = []
        self._y: list[np.ndarray] = []
        for folder in folders:
            manifest = _read_manifest(folder)
            if manifest is None or not manifest["complete"]:
                raise ValueError(
                    f"{str(folder)!r} holds an unfinished collection; run "
                    "collect_activations_to_disk again to resume it"
                )
            for i in range(len(manifest["shards"])):  # a part may be empty
                self._z.append(np.load(folder / f"z-{i:05d}.npy", mmap_mode="r"))
                self._y.append(np.load(folder / f"y-{i:05d}.npy", mmap_mode="r"))
        if not self._z:
            raise ValueError(f"path {str(root)!r} holds an empty collection")
        self.path = root
        self._ends = np.cumsum([a.shape[0] for a in self._z])
        self.dim = int(self._z[0].shape[1])
        self.n_outputs = int(self._y[0].shape[1])

    def __len__(self) -> int:
        return int(self._ends[-1])

    def rows(self, index: Tensor | np.ndarray | list[int]) -> tuple[Tensor, Tensor]:
        """``(z, y)`` of the rows ``index`` (any order), as float32 tensors."""
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"row index out of range for a store of {len(self)}")
        shard = np.searchsorted(self._ends, idx, side="right")
        starts = np.concatenate([[0], self._ends[:-1]])
        z = np.empty((idx.size, self.dim), np.float32)
        y = np.empty((idx.size, self.n_outputs), np.float32)
        for s in np.unique(shard):
            sel = shard == s
            local = idx[sel] - starts[s]
            z[sel], y[sel] = self._z[s][local], self._y[s][local]
        return torch.from_numpy(z), torch.from_numpy(y)

    def batches(
        self, batch_size: int, *, shuffle: bool = False, seed: int = 0
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(z, y)`` batches; with ``shuffle`` a seeded permutation."""
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, int)
            or batch_size < 1
        ):
            raise ValueError(
                f"batch_size must be a positive integer, got {batch_size!r}"
            )
        if shuffle:
            order = np.random.default_rng(seed).permutation(len(self))
            for i in range(0, len(self), batch_size):
                yield self.rows(order[i : i + batch_size])
            return
        for i in range(0, len(self), batch_size):
            yield self.rows(np.arange(i, min(i + batch_size, len(self))))

    def stats(self, chunk: int = 65536) -> tuple[Tensor, Tensor]:
        r"""Per-dimension mean and standard deviation of ``z`` in one pass.

        Chunked sums in float64: ``mean = Σz / N``,
        ``std = sqrt((Σz² − N·mean²) / (N − 1))``.

        Returns:
            *tuple[Tensor, Tensor]*: mean and std, float64, shape ``(D,)``.
        """
        total = np.zeros(self.dim)
        squares = np.zeros(self.dim)
        for z, _ in self.batches(chunk):
            z64 = z.double().numpy()
            total += z64.sum(0)
            squares += (z64**2).sum(0)
        n = len(self)
        mean = total / n
        var = np.maximum(squares - n * mean**2, 0.0) / max(n - 1, 1)
        return torch.from_numpy(mean), torch.from_numpy(np.sqrt(var))

    def load(self) -> tuple[Tensor, Tensor]:
        """All rows in memory: ``(z, y)`` of shapes ``(N, D)`` and ``(N, K)``."""
        return (
            torch.from_numpy(np.concatenate(self._z)),
            torch.from_numpy(np.concatenate(self._y)),
        )

    def dataset(self) -> torch.utils.data.Dataset:
        """A map-style ``Dataset`` of ``(z, y)`` rows (for a ``DataLoader``)."""
        return _StoreDataset(self)


class _StoreDataset(torch.utils.data.Dataset):
    def __init__(self, store: ActivationStore) -> None:
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        z, y = self.store.rows([i])
        return z[0], y[0]
