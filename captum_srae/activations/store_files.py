#!/usr/bin/env python3
"""The files of an activation store (see :mod:`captum_srae.activations.store`):
``.npy`` shards written atomically, ``manifest.json`` listing the finished
ones, and :class:`ShardWriter`, the one writer of both, used by
:func:`~captum_srae.activations.store.collect_activations_to_disk` and
:func:`~captum_srae.activations.store.write_activations_to_disk`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from captum_srae.utils.atomic import PathLike, atomic_write_bytes

__all__ = [
    "FORMAT",
    "MANIFEST",
    "PathLike",
    "ShardWriter",
    "new_manifest",
    "read_manifest",
    "save_npy",
    "write_manifest",
]

MANIFEST = "manifest.json"
FORMAT = "captum-srae-activations/1"


def save_npy(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` atomically (temporary file, fsync, rename).

    Args:
        path (Path): the ``.npy`` file.
        array (ndarray): the data.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Replace ``folder/manifest.json`` atomically.

    Args:
        folder (Path): the store folder.
        manifest (dict): the manifest (JSON-serialisable).
    """
    atomic_write_bytes(folder / MANIFEST, json.dumps(manifest, indent=1).encode())


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of ``folder``, or None when it has none.

    Args:
        folder (Path): the store folder.

    Returns:
        *dict or None*: the parsed manifest.

    Raises:
        ValueError: if the file is not valid JSON or not an activation
            manifest of this format.
    """
    file = folder / MANIFEST
    if not file.exists():
        return None
    try:
        manifest = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file} is not a valid activation manifest: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{file} is not a captum-srae activation manifest")
    return manifest


def new_manifest(
    layer: str | None,
    target: int | list[int] | None,
    pooling: str | None,
    rank: int = 0,
    world_size: int = 1,
) -> dict[str, Any]:
    """The manifest of a collection not started yet.

    Args:
        layer (str or None): the collected layer (None for activations
            computed elsewhere).
        target (int, list of int or None): the kept scores.
        pooling (str or None): the pooling.
        rank (int, optional): the writing process. Default: 0
        world_size (int, optional): the number of writing processes.
            Default: 1

    Returns:
        *dict*: the settings, ``complete`` False, no batches and no shards.
    """
    return {
        "format": FORMAT,
        "layer": layer,
        "target": target,
        "pooling": pooling,
        "rank": rank,
        "world_size": world_size,
        "complete": False,
        "batches": 0,
        "shards": [],
    }


class ShardWriter:
    """Buffers rows and writes them as shards ``z-<i>.npy``/``y-<i>.npy`` of a
    store folder, recording each finished shard in its manifest.

    Args:
        folder (Path): the store folder (existing).
        manifest (dict): its manifest (new or of an unfinished collection,
            whose shards are kept); updated in place.

    Attributes:
        rows (int): the buffered rows not written yet.
        widths (tuple[int, int] or None): ``(D, K)`` of the rows so far.
    """

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder, self.manifest = folder, manifest
        self.rows = 0
        self.widths: tuple[int, int] | None = None
        if "dim" in manifest:
            self.widths = (int(manifest["dim"]), int(manifest["n_outputs"]))
        self._z: list[np.ndarray] = []
        self._y: list[np.ndarray] = []

    @property
    def shards(self) -> int:
        """The number of shards written."""
        return len(self.manifest["shards"])

    def add(self, z: np.ndarray, y: np.ndarray) -> None:
        """Buffer rows ``z`` ``(B, D)`` and their scores ``y`` ``(B, K)``.

        Args:
            z (ndarray): activations, float32.
            y (ndarray): scores, float32.
        """
        self._z.append(z)
        self._y.append(y)
        self.rows += z.shape[0]
        if self.widths is None:
            self.widths = (int(z.shape[1]), int(y.shape[1]))

    def flush(self, batches: int, rows: int | None = None) -> None:
        """Write the first ``rows`` buffered rows as one shard.

        Args:
            batches (int): the input batches consumed so far (a resumed
                collection skips them).
            rows (int, optional): how many rows; the rest stays buffered.
                Default: None (all; nothing is written when none are buffered)
        """
        if not self._z:
            return
        z, y = np.concatenate(self._z), np.concatenate(self._y)
        self._z.clear()
        self._y.clear()
        if rows is not None and z.shape[0] > rows:  # the rest: a later shard
            self._z.append(z[rows:])
            self._y.append(y[rows:])
            z, y = z[:rows], y[:rows]
        self.rows -= z.shape[0]
        index, manifest = self.shards, self.manifest
        save_npy(self.folder / f"z-{index:05d}.npy", np.ascontiguousarray(z))
        save_npy(self.folder / f"y-{index:05d}.npy", np.ascontiguousarray(y))
        manifest["shards"].append({"rows": int(z.shape[0])})
        manifest["batches"] = batches
        manifest["dim"], manifest["n_outputs"] = int(z.shape[1]), int(y.shape[1])
        write_manifest(self.folder, manifest)

    def finish(self, batches: int) -> None:
        """Write the buffered rows and mark the collection complete.

        Args:
            batches (int): the input batches consumed in all.
        """
        self.flush(batches)
        self.manifest["batches"] = batches
        self.manifest["complete"] = True
        write_manifest(self.folder, self.manifest)
