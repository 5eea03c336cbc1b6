#!/usr/bin/env python3
"""Files of an activation store (see :mod:`captum_srae.activations.store`): the shard and
manifest writers and readers, and :func:`write_activations_to_disk` for
activations computed elsewhere."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from captum_srae.utils.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from captum_srae.activations.store import ActivationStore

__all__ = ["write_activations_to_disk"]

PathLike = str | os.PathLike[str]
_MANIFEST = "manifest.json"
_FORMAT = "captum-srae-activations/1"


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    atomic_write_bytes(folder / _MANIFEST, json.dumps(manifest, indent=1).encode())


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    file = folder / _MANIFEST
    if not file.exists():
        return None
    try:
        manifest = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file} is not a valid activation manifest: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise ValueError(f"{file} is not a captum-srae activation manifest")
    return manifest


def write_activations_to_disk(
    batches: Iterable[tuple[Any, Any]],
    path: PathLike,
    *,
    shard_size: int = 8192,
) -> ActivationStore:
    r"""Write activations computed elsewhere to a store folder.

    The folder has the layout of
    :func:`~captum_srae.activations.store.collect_activations_to_disk` (shards
    of at most ``shard_size`` rows, atomic writes, ``manifest.json``), with no
    layer, target or pooling recorded. Memory stays at about one shard.

    Args:
        batches (iterable of (z, y)): activation batches ``(B, D)`` and their
            scores ``(B,)`` or ``(B, K)`` (tensors or arrays), e.g.
            ``[(z, y)]`` for data already in memory.
        path (str or PathLike): a new or empty folder (created if needed).
        shard_size (int, optional): rows per shard file. Default: 8192

    Returns:
        *ActivationStore*: the written activations, opened read-only.

    Raises:
        ValueError: on a bad ``shard_size``, a folder that already holds a
            collection, batches of mismatched shapes, or no rows at all.

    Examples::

        >>> store = write_activations_to_disk([(z, y)], "acts/")
        >>> fit_srae(store, config=config)
    """
    if (
        isinstance(shard_size, bool)
        or not isinstance(shard_size, int)
        or shard_size < 1
    ):
        raise ValueError(f"shard_size must be an integer >= 1, got {shard_size!r}")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    if _read_manifest(folder) is not None:
        raise ValueError(f"path {str(folder)!r} already holds a collection")
    manifest: dict[str, Any] = {
        "format": _FORMAT,
        "layer": None,
        "target": None,
        "pooling": None,
        "rank": 0,
        "world_size": 1,
        "complete": False,
        "batches": 0,
        "shards": [],
    }
    buf_z: list[np.ndarray] = []
    buf_y: list[np.ndarray] = []

    def flush(rows: int) -> None:
        z, y = np.concatenate(buf_z), np.concatenate(buf_y)
        buf_z.clear()
        buf_y.clear()
        if z.shape[0] > rows:  # keep the rest for the next shard
            buf_z.append(z[rows:])
            buf_y.append(y[rows:])
            z, y = z[:rows], y[:rows]
        index = len(manifest["shards"])
        _save_npy(folder / f"z-{index:05d}.npy", np.ascontiguousarray(z))
        _save_npy(folder / f"y-{index:05d}.npy", np.ascontiguousarray(y))
        manifest["shards"].append({"rows": int(z.shape[0])})
        manifest["dim"], manifest["n_outputs"] = int(z.shape[1]), int(y.shape[1])
        _write_manifest(folder, manifest)

    pending = 0
    for i, (z, y) in enumerate(batches):
        z_np = np.asarray(z.detach().cpu() if isinstance(z, Tensor) else z)
        y_np = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y)
        y_np = y_np.reshape(-1, 1) if y_np.ndim == 1 else y_np
        if z_np.ndim != 2 or y_np.ndim != 2 or z_np.shape[0] != y_np.shape[0]:
            raise ValueError(
                f"batch {i}: expected z (B, D) and y (B,) or (B, K), got shapes "
                f"{z_np.shape} and {np.shape(y)}"
            )
        if buf_z and (
            z_np.shape[1] != buf_z[0].shape[1] or y_np.shape[1] != buf_y[0].shape[1]
        ):
            raise ValueError(f"batch {i} has other widths than the first batch")
        buf_z.append(z_np.astype(np.float32, copy=False))
        buf_y.append(y_np.astype(np.float32, copy=False))
        pending += z_np.shape[0]
        manifest["batches"] = i + 1
        while pending >= shard_size:
            flush(shard_size)
            pending -= shard_size
    if pending:
        flush(pending)
    if not manifest["shards"]:
        raise ValueError("batches must hold at least one row")
    manifest["complete"] = True
    _write_manifest(folder, manifest)
    from captum_srae.activations.store import ActivationStore  # noqa: PLC0415 (cycle)

    return ActivationStore(folder)
