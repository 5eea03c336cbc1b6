#!/usr/bin/env python3
"""Safe saving and loading of :class:`~captum_srae.SRAE` models.

A save is a folder holding two files:

- ``config.json``: the format name and version, the architecture
  (:class:`~captum_srae.SRAEConfig`, ``in_features``, ``n_outputs``,
  ``decoder_relu``), the SHA-256 of the weights file and user metadata;
- ``weights.safetensors``: every parameter and buffer in the safetensors format.

Loading reads JSON and safetensors only: nothing is ever unpickled, so a save
from an untrusted source cannot run code. The folder is written through
:func:`~captum_srae.utils.atomic.atomic_directory`, so an interrupted save leaves a
previous save at the same path intact. The file format itself is
:mod:`captum_srae.core.save_format`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from captum_srae.core.model import SRAE
from captum_srae.core.save_format import (
    FORMAT_VERSION,
    SRAEFormatError,
    read_json_file,
    sha256_bytes,
)
from captum_srae.utils.atomic import PathLike

__all__ = [
    "FORMAT_VERSION",
    "SRAEFormatError",
    "load_srae",
    "read_json_file",
    "save_srae",
    "sha256_bytes",
]


def save_srae(
    srae: SRAE, path: PathLike, metadata: Mapping[str, Any] | None = None
) -> None:
    """Save ``srae`` to the folder ``path`` (``config.json`` + safetensors).

    Args:
        srae (SRAE): Model to save.
        path (str or PathLike): Folder to write; an existing save there is
            replaced atomically.
        metadata (dict, optional): Extra JSON-serialisable information stored
            under ``"metadata"`` in ``config.json`` (tuples come back as lists).
            Default: None

    Raises:
        TypeError: if ``srae`` is not an SRAE or ``metadata`` is not a
            JSON-serialisable dictionary.
        ValueError: if ``path`` exists and is not a directory.
        OSError: if writing fails.
    """
    if not isinstance(srae, SRAE):
        raise TypeError(f"srae must be an SRAE, got {type(srae).__name__}")
    srae.save(path, metadata=metadata)


def load_srae(path: PathLike, map_location: str | torch.device = "cpu") -> SRAE:
    """Load a model written by :func:`save_srae`, without unpickling anything.

    Args:
        path (str or PathLike): Folder written by :func:`save_srae`.
        map_location (str or torch.device, optional): Device to move the model
            to. Default: "cpu"

    Returns:
        *SRAE*: the model, in eval mode.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        SRAEFormatError: (a ValueError) if ``path`` is not a folder, a file is
            missing or corrupt, the format version is newer than
            :data:`FORMAT_VERSION`, or the tensors do not match the
            architecture (names, shapes) or hold non-finite values.
    """
    return SRAE.load(path, map_location=map_location)
