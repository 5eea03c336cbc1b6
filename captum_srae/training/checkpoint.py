#!/usr/bin/env python3
"""Crash-safe training checkpoints of :func:`~captum_srae.fit_srae`.

A checkpoint is a folder ``<checkpoint_dir>/srae_checkpoint`` holding

- ``tensors.safetensors``: every tensor of the training state (model,
  optimizer moments, RNG states, best and pretrained weights);
- ``state.json``: every scalar, the training history so far, the config, a
  fingerprint of the data and the SHA-256 of the tensor file.

Nested Python state (dicts, lists, tensors, numbers) is flattened: each tensor
is stored in safetensors under a generated key and replaced in the JSON by
``{"__tensor__": key}``. Nothing is ever pickled or unpickled. The folder is
replaced through :func:`~captum_srae.utils.atomic.atomic_directory`, so a process
killed while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import safetensors.torch as _st
import torch
from torch import Tensor

from captum_srae.core.config import SRAEConfig
from captum_srae.utils.atomic import PathLike, atomic_directory

FORMAT_NAME = "captum-srae/fit-checkpoint"
FORMAT_VERSION = 1
FOLDER = "srae_checkpoint"
STATE_FILE = "state.json"
TENSOR_FILE = "tensors.safetensors"


def data_fingerprint(z: Tensor, y: Tensor) -> dict[str, Any]:
    """Shapes and SHA-256 of the (float32, contiguous) training data."""
    digest = hashlib.sha256()
    for t in (z, y):
        digest.update(t.detach().to("cpu", torch.float32).contiguous().numpy().data)
    return {
        "z_shape": list(z.shape),
        "y_shape": list(y.shape),
        "sha256": digest.hexdigest(),
    }


def _flatten(obj: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().to("cpu").contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if not all(isinstance(k, (str, int)) for k in obj):
            raise TypeError("checkpoint dict keys must be str or int")
        # JSON keys are strings: remember which were integers.
        return {"__dict__": [[k, _flatten(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, tensors) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint a {type(obj).__name__}")


def _unflatten(obj: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        return {k: _unflatten(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


class Checkpointer:
    """Save and restore the training state of one :func:`fit_srae` call.

    Args:
        directory (str or PathLike): Folder that holds the checkpoint.
        config (SRAEConfig): Configuration of the fit; a checkpoint written
            with another configuration is refused.
        fingerprint (dict): :func:`data_fingerprint` of the data.
    """

    def __init__(
        self, directory: PathLike, config: SRAEConfig, fingerprint: dict[str, Any]
    ) -> None:
        self.path = Path(directory) / FOLDER
        self.config = config.to_dict()
        self.fingerprint = fingerprint

    def save(self, state: dict[str, Any]) -> None:
        """Atomically replace the checkpoint with ``state``."""
        tensors: dict[str, Tensor] = {}
        flat = _flatten(state, tensors)
        blob = _st.save(tensors)
        doc = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "config": self.config,
            "data": self.fingerprint,
            "tensors_sha256": hashlib.sha256(blob).hexdigest(),
            "state": flat,
        }
        with atomic_directory(self.path) as tmp:
            (tmp / TENSOR_FILE).write_bytes(blob)
            (tmp / STATE_FILE).write_text(json.dumps(doc), encoding="utf-8")

    def load(self) -> dict[str, Any] | None:
        """Return the saved state, or None when there is no checkpoint.

        Raises:
            ValueError: if the checkpoint is corrupt or was written for another
                configuration or other data.
        """
        if not self.path.exists():
            return None
        where = f"checkpoint {self.path}"
        try:
            doc = json.loads((self.path / STATE_FILE).read_text(encoding="utf-8"))
            blob = (self.path / TENSOR_FILE).read_bytes()
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{where} is unreadable: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
            raise ValueError(f"{where} is not an SRAE training checkpoint")
        if doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{where} has format_version {doc.get('format_version')!r}; this "
                f"version reads {FORMAT_VERSION}"
            )
        if hashlib.sha256(blob).hexdigest() != doc.get("tensors_sha256"):
            raise ValueError(f"{where} is corrupt: tensor checksum mismatch")
        if doc.get("config") != self.config:
            raise ValueError(
                f"{where} was written with a different config; use another "
                "checkpoint_dir or delete it"
            )
        if doc.get("data") != self.fingerprint:
            raise ValueError(
                f"{where} was written for different data (z, y); use another "
                "checkpoint_dir or delete it"
            )
        try:
            tensors = _st.load(blob)
            return _unflatten(doc["state"], tensors)
        except Exception as exc:  # noqa: BLE001 - SafetensorError, KeyError, ...
            raise ValueError(f"{where} is corrupt: {exc}") from exc

    def remove(self) -> None:
        """Delete the checkpoint (after a successful fit)."""
        shutil.rmtree(self.path, ignore_errors=True)
