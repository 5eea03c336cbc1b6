#!/usr/bin/env python3
"""The file format of a saved :class:`~captum_srae.SRAE` (no model code here).

:func:`write_srae_folder` and :func:`read_srae_folder` write and read the two
files of a save, ``config.json`` (format, versions, architecture, SHA-256 of
the weights, metadata) and ``weights.safetensors``, and check what they read
(:func:`check_header`, :func:`check_tensors`); :meth:`SRAE.save
<captum_srae.SRAE.save>` and :meth:`SRAE.load <captum_srae.SRAE.load>` build
on them. The user-facing description of the format is in
:mod:`captum_srae.core.serialization`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors.torch as _st
import torch
from torch import Tensor

from captum_srae.utils.atomic import PathLike, atomic_directory

FORMAT_NAME = "captum-srae/srae"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
_REQUIRED_KEYS = ("config", "in_features", "n_outputs", "decoder_relu")
_REQUIRED_KEYS += ("weights_sha256",)

__all__ = [
    "CONFIG_FILE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "WEIGHTS_FILE",
    "SRAEFormatError",
    "check_header",
    "check_tensors",
    "read_json_file",
    "read_srae_folder",
    "sha256_bytes",
    "write_srae_folder",
]


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


def write_srae_folder(
    tensors: Mapping[str, Tensor], header: Mapping[str, Any], path: PathLike
) -> None:
    """Write ``config.json`` and ``weights.safetensors`` to the folder ``path``.

    Args:
        tensors (Mapping[str, Tensor]): the state dict to store.
        header (Mapping[str, Any]): the JSON fields describing the model
            (``config``, ``in_features``, ``n_outputs``, ``decoder_relu``,
            ``metadata``); the format name, versions and the weights' SHA-256
            are added here.
        path (str or PathLike): Folder to write; an existing save there is
            replaced atomically.

    Raises:
        ValueError: if ``path`` exists and is not a directory.
        OSError: if writing fails.
    """
    from captum_srae.utils.version import __version__

    cpu = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    with atomic_directory(path) as tmp:
        weights = _st.save(cpu)
        (tmp / WEIGHTS_FILE).write_bytes(weights)
        doc = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            **dict(header),
            "weights_sha256": sha256_bytes(weights),
        }
        text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
        (tmp / CONFIG_FILE).write_text(text, encoding="utf-8")


def check_header(doc: Any, where: Path) -> None:
    """Raise :class:`SRAEFormatError` unless ``doc`` is a readable header."""
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


def read_srae_folder(path: PathLike) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Read and check a folder written by :func:`write_srae_folder`.

    Checks the format name and version, the required keys and their types,
    and the SHA-256 of the weights; parses the weights with safetensors
    (never unpickling anything).

    Args:
        path (str or PathLike): the folder.

    Returns:
        *tuple[dict, dict[str, Tensor]]*: the parsed ``config.json`` and the
        tensors on the CPU.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        SRAEFormatError: if ``path`` is not a folder, or a file is missing,
            corrupt or of a newer format version.
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
    check_header(doc, config_path)
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
    return doc, tensors


def check_tensors(
    tensors: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    where: Path,
) -> None:
    """Raise :class:`SRAEFormatError` unless ``tensors`` match ``expected``.

    The names and shapes must be those of ``expected`` (a model's state
    dict), and every tensor floating point and finite; ``where`` names the
    file in the message.
    """
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
