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
previous save at the same path intact.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors.torch as _st
import torch

from captum_srae.core.config import SRAEConfig
from captum_srae.core.model import SRAE
from captum_srae.utils.atomic import PathLike, atomic_directory

FORMAT_NAME = "captum-srae/srae"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
_REQUIRED_KEYS = ("config", "in_features", "n_outputs", "decoder_relu")
_REQUIRED_KEYS += ("weights_sha256",)

__all__ = ["FORMAT_VERSION", "SRAEFormatError", "load_srae", "save_srae"]


class SRAEFormatError(ValueError):
    """A saved SRAE folder is missing, corrupt, or not readable by this version."""


def sha256_bytes(data: bytes) -> str:
    """Return the hexadecimal SHA-256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def read_json_file(path: PathLike) -> Any:
    """Read and parse a UTF-8 JSON file.

    Args:
        path (str or PathLike): File to read.

    Returns:
        The parsed JSON value.

    Raises:
        SRAEFormatError: if the file is missing, unreadable or not valid JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise SRAEFormatError(f"{path} is missing (or is not a file)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SRAEFormatError(f"{path} is not valid JSON: {exc}") from exc


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
    from captum_srae.utils.version import __version__

    if not isinstance(srae, SRAE):
        raise TypeError(f"srae must be an SRAE, got {type(srae).__name__}")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        meta: dict[str, Any] = json.loads(json.dumps(dict(metadata)))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metadata must be JSON-serialisable: {exc}") from exc
    tensors = {
        name: t.detach().to("cpu").contiguous() for name, t in srae.state_dict().items()
    }
    with atomic_directory(path) as tmp:
        weights = _st.save(tensors)
        (tmp / WEIGHTS_FILE).write_bytes(weights)
        doc = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "config": srae.config.to_dict(),
            "in_features": int(srae.in_features),
            "n_outputs": int(srae.n_outputs),
            "decoder_relu": bool(srae.decoder_relu),
            "weights_sha256": sha256_bytes(weights),
            "metadata": meta,
        }
        text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
        (tmp / CONFIG_FILE).write_text(text, encoding="utf-8")


def _check_header(doc: Any, where: Path) -> None:
    if not isinstance(doc, dict):
        raise SRAEFormatError(f"{where} must hold a JSON object")
    if doc.get("format") != FORMAT_NAME:
        raise SRAEFormatError(
            f"{where} is not a captum-srae SRAE save: format is "
            f"{doc.get('format')!r}, expected {FORMAT_NAME!r}"
        )
    version = doc.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SRAEFormatError(
            f"{where} has an invalid format_version {version!r} "
            "(expected a positive integer)"
        )
    if version > FORMAT_VERSION:
        raise SRAEFormatError(
            f"{where} was written by a newer version of captum-srae "
            f"(package {doc.get('package_version', 'unknown')}, format version "
            f"{version}); this version reads format version {FORMAT_VERSION} "
            "or older: upgrade captum-srae to load it"
        )
    missing = [key for key in _REQUIRED_KEYS if key not in doc]
    if missing:
        raise SRAEFormatError(f"{where} is missing the keys {missing}")
    for key in ("in_features", "n_outputs"):
        if isinstance(doc[key], bool) or not isinstance(doc[key], int):
            raise SRAEFormatError(f"{where}: {key} must be an integer")
    if not isinstance(doc["decoder_relu"], bool):
        raise SRAEFormatError(f"{where}: decoder_relu must be a boolean")
    if not isinstance(doc["weights_sha256"], str):
        raise SRAEFormatError(f"{where}: weights_sha256 must be a string")


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
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"no saved SRAE at {root}: the path does not exist")
    if not root.is_dir():
        raise SRAEFormatError(
            f"{root} is not a directory; an SRAE save is a folder holding "
            f"{CONFIG_FILE} and {WEIGHTS_FILE}"
        )
    config_path, weights_path = root / CONFIG_FILE, root / WEIGHTS_FILE
    doc = read_json_file(config_path)
    _check_header(doc, config_path)
    if not weights_path.is_file():
        raise SRAEFormatError(f"{weights_path} is missing (or is not a file)")
    data = weights_path.read_bytes()
    if sha256_bytes(data) != doc["weights_sha256"].lower():
        raise SRAEFormatError(
            f"checksum mismatch: {weights_path} does not match the SHA-256 "
            f"recorded in {config_path}; the file is corrupt or was modified"
        )
    try:
        tensors = _st.load(data)
    except Exception as exc:  # the Rust parser raises its own error types
        raise SRAEFormatError(
            f"{weights_path} is not a valid safetensors file (truncated or "
            f"corrupt): {exc}"
        ) from exc
    try:
        config = SRAEConfig.from_dict(doc["config"])
        srae = SRAE(
            doc["in_features"],
            doc["n_outputs"],
            config,
            decoder_relu=doc["decoder_relu"],
        )
    except (TypeError, ValueError) as exc:
        raise SRAEFormatError(
            f"{config_path} describes an invalid SRAE: {exc}"
        ) from exc
    _check_tensors(tensors, srae.state_dict(), weights_path)
    dtypes = {t.dtype for t in tensors.values()}
    if len(dtypes) == 1:  # keep e.g. float64 models in float64
        srae = srae.to(dtypes.pop())
    srae.load_state_dict(tensors, strict=True)
    return srae.to(map_location).eval()


def _check_tensors(
    tensors: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    where: Path,
) -> None:
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise SRAEFormatError(
            f"{where} does not match the architecture in {CONFIG_FILE}: "
            f"missing tensors {missing}, unexpected tensors {unexpected}"
        )
    bad_shape = [
        f"{name}: expected {tuple(expected[name].shape)}, got {tuple(t.shape)}"
        for name, t in tensors.items()
        if tuple(t.shape) != tuple(expected[name].shape)
    ]
    if bad_shape:
        raise SRAEFormatError(f"{where} has tensors of the wrong shape: {bad_shape}")
    not_float = sorted(n for n, t in tensors.items() if not t.is_floating_point())
    if not_float:
        raise SRAEFormatError(f"{where} has non-floating tensors: {not_float}")
    non_finite = sorted(
        n for n, t in tensors.items() if not bool(torch.isfinite(t).all())
    )
    if non_finite:
        raise SRAEFormatError(f"{where} has non-finite values in {non_finite}")
