#!/usr/bin/env python3
r"""Persistence of :class:`~captum_srae.attribution.SRAEAttribution`.

The bodies of :meth:`SRAEAttribution.save` and :meth:`SRAEAttribution.load`:
a folder holding ``attribution.json`` and one SRAE save per class (or
``shared``), written atomically, without pickle. They read and write a
:class:`~captum_srae.attribution.fitted.FittedXNNs`; the explainer is built
around it by the caller.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from captum_srae.attribution.fitted import FittedXNNs
from captum_srae.core.model import SRAE
from captum_srae.core.serialization import SRAEFormatError, read_json_file
from captum_srae.utils.atomic import PathLike, atomic_directory

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "load_xnns", "save_xnns"]

FORMAT_NAME = "captum-srae/attribution"
FORMAT_VERSION = 1
_FILE = "attribution.json"


def save_xnns(fitted: FittedXNNs, path: PathLike) -> None:
    """Write the fitted XNN(s) to the folder ``path``, atomically.

    Args:
        fitted (FittedXNNs): the fitted state of an explainer.
        path (str or PathLike): the folder; a previous save is replaced.
    """
    doc = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "targets": fitted.targets,
        "per_class": fitted.per_class,
        "layer": fitted.layer_name,
        "layer_shape": list(fitted.layer_shape),
        "n_outputs": fitted.n_outputs,
    }
    with atomic_directory(path) as tmp:
        if fitted.per_class:
            for t in fitted.targets:
                fitted.sraes[t].save(tmp / f"class_{t}")
        else:
            fitted.sraes[fitted.targets[0]].save(tmp / "shared")
        text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
        (tmp / _FILE).write_text(text, encoding="utf-8")


def _read_document(root: Path) -> dict:
    """The checked ``attribution.json`` of the folder ``root``."""
    where = root / _FILE
    doc = read_json_file(where)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise SRAEFormatError(f"{where} is not a captum-srae attribution save")
    version = doc.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise SRAEFormatError(
            f"{where} has format version {version!r}; this version of "
            f"captum-srae reads versions 1 to {FORMAT_VERSION}"
        )
    targets = doc.get("targets")
    if not isinstance(doc.get("per_class"), bool) or not (
        isinstance(targets, list)
        and targets
        and all(isinstance(t, int) and not isinstance(t, bool) for t in targets)
    ):
        raise SRAEFormatError(f"{where} has invalid targets or per_class")
    return doc


def load_xnns(path: PathLike, device: torch.device | None = None) -> FittedXNNs:
    """Read the fitted XNN(s) written by :func:`save_xnns`.

    Args:
        path (str or PathLike): the folder.
        device (torch.device, optional): where to put the SRAEs.
            Default: None (CPU)

    Returns:
        *FittedXNNs*: the state; ``layer_name`` is the saved layer name
        (None if none was saved).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        SRAEFormatError: if the save is corrupt or of a newer format.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"no saved SRAEAttribution at {root}")
    doc = _read_document(root)
    targets = doc["targets"]
    dev = device or torch.device("cpu")
    if doc["per_class"]:
        sraes: dict[int, SRAE] | SRAE = {
            t: SRAE.load(root / f"class_{t}", map_location=dev) for t in targets
        }
    else:
        sraes = SRAE.load(root / "shared", map_location=dev)
    n_out = doc.get("n_outputs")
    name = doc.get("layer")
    return FittedXNNs.from_sraes(
        sraes,
        None if doc["per_class"] else targets,
        layer_shape=doc.get("layer_shape") or (),
        n_outputs=n_out if isinstance(n_out, int) else None,
        layer_name=name if isinstance(name, str) else None,
    )
