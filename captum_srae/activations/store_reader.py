#!/usr/bin/env python3
"""Reading a store folder (see :mod:`captum_srae.activations.store`):
:class:`ActivationStore` opens the shards read-only through memory maps and
serves rows, batches, a ``torch.utils.data.Dataset`` and the per-dimension
mean and standard deviation in one streaming pass."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from captum_srae.activations.store_files import MANIFEST, PathLike, read_manifest
from captum_srae.utils.validation import check_int

__all__ = ["ActivationStore"]


class ActivationStore:
    r"""Read-only access to activations written by
    :func:`~captum_srae.activations.store.collect_activations_to_disk` or
    :func:`~captum_srae.activations.store.write_activations_to_disk`
    (memory-mapped ``.npy`` shards).

    Attributes:
        path (Path): the folder.
        dim (int): the activation dimension ``D``.
        n_outputs (int): the number of scores ``K``.

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
            if (root / MANIFEST).exists()
            else sorted(root.glob("part-*"))
            if root.is_dir()
            else []
        )
        if not folders:
            raise ValueError(f"path {str(root)!r} holds no collected activations")
        self._z: list[np.ndarray] = []
        self._y: list[np.ndarray] = []
        for folder in folders:
            manifest = read_manifest(folder)
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
        """``(z, y)`` of the rows ``index`` (any order), as float32 tensors.

        Args:
            index (Tensor, ndarray or list of int): row numbers.

        Returns:
            *tuple[Tensor, Tensor]*: ``z`` ``(n, D)`` and ``y`` ``(n, K)``.

        Raises:
            IndexError: for a row outside the store.
        """
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
        """Yield ``(z, y)`` batches in store order, or shuffled.

        Args:
            batch_size (int): rows per batch (the last may be smaller).
            shuffle (bool, optional): follow a seeded permutation of the rows.
                Default: False
            seed (int, optional): the permutation's seed. Default: 0

        Yields:
            *tuple[Tensor, Tensor]*: ``z`` ``(B, D)`` and ``y`` ``(B, K)``.

        Raises:
            TypeError: if ``batch_size`` is not an int.
            ValueError: if ``batch_size`` is below 1.
        """
        check_int(batch_size, "batch_size")
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
