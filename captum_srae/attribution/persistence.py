#!/usr/bin/env python3
r"""Persistence of :class:`~captum_srae.attribution.SRAEAttribution`.

The bodies of :meth:`SRAEAttribution.save`, :meth:`SRAEAttribution.load`
and :meth:`SRAEAttribution.from_sraes`: a folder holding ``attribution.json``
and one SRAE save per class (or ``shared``), written atomically, without
pickle.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from captum_srae.attribution.checks import check_fitted, model_device
from captum_srae.attribution.fitting import set_fitted
from captum_srae.core.model import SRAE
from captum_srae.core.serialization import SRAEFormatError, read_json_file
from captum_srae.utils.atomic import PathLike, atomic_directory

if TYPE_CHECKING:
    from captum_srae.attribution.srae_attribution import SRAEAttribution

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "from_sraes",
    "load_attribution",
    "save_attribution",
]

FORMAT_NAME = "captum-srae/attribution"
FORMAT_VERSION = 1
_FILE = "attribution.json"


def save_attribution(explainer: SRAEAttribution, path: PathLike) -> None:
    """Write a fitted explainer to the folder ``path``; see
    :meth:`SRAEAttribution.save`.

    Args:
        explainer (SRAEAttribution): the fitted explainer.
        path (str or PathLike): the folder; a previous save is replaced.
    """
    check_fitted(explainer)
    doc = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "targets": explainer.targets_,
        "per_class": explainer.per_class_,
        "layer": explainer.layer_name_,
        "layer_shape": list(explainer.layer_shape_),
        "n_outputs": explainer.n_outputs_,
    }
    with atomic_directory(path) as tmp:
        if explainer.per_class_:
            for t in explainer.targets_:
                explainer.sraes_[t].save(tmp / f"class_{t}")
        else:
            explainer.sraes_[explainer.targets_[0]].save(tmp / "shared")
        text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
        (tmp / _FILE).write_text(text, encoding="utf-8")


def load_attribution(
    cls: type[SRAEAttribution],
    path: PathLike,
    forward_func: Callable[..., Tensor],
    layer: nn.Module | str | None = None,
    heatmap_layer: nn.Module | str | None = None,
) -> SRAEAttribution:
    """Read an explainer written by :func:`save_attribution`; see
    :meth:`SRAEAttribution.load`.

    Args:
        cls (type): the explainer class to build.
        path (str or PathLike): the folder.
        forward_func (nn.Module or Callable): the explained model.
        layer (nn.Module or str, optional): the explained layer.
            Default: None (the saved layer name)
        heatmap_layer (nn.Module or str, optional): the heatmap layer.
            Default: None

    Returns:
        *SRAEAttribution*: the fitted explainer, its SRAEs on the model's
        device.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        SRAEFormatError: if the save is corrupt or of a newer format.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"no saved SRAEAttribution at {root}")
    doc = read_json_file(root / _FILE)
    where = root / _FILE
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise SRAEFormatError(f"{where} is not a captum-srae attribution save")
    version = doc.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise SRAEFormatError(
            f"{where} has format version {version!r}; this version of "
            f"captum-srae reads versions 1 to {FORMAT_VERSION}"
        )
    targets = doc.get("targets")
    per_class = doc.get("per_class")
    if not isinstance(per_class, bool) or not (
        isinstance(targets, list)
        and targets
        and all(isinstance(t, int) and not isinstance(t, bool) for t in targets)
    ):
        raise SRAEFormatError(f"{where} has invalid targets or per_class")
    if layer is None:
        if not isinstance(doc.get("layer"), str):
            raise ValueError(f"{where} records no layer name: pass layer")
        layer = doc["layer"]
    dev = model_device(forward_func) or torch.device("cpu")
    if per_class:
        sraes: dict[int, SRAE] | SRAE = {
            t: SRAE.load(root / f"class_{t}", map_location=dev) for t in targets
        }
    else:
        sraes = SRAE.load(root / "shared", map_location=dev)
    n_out = doc.get("n_outputs")
    return cls.from_sraes(
        forward_func,
        layer,
        sraes,
        targets,
        heatmap_layer=heatmap_layer,
        layer_shape=doc.get("layer_shape") or (),
        n_outputs=n_out if isinstance(n_out, int) else None,
    )


def from_sraes(
    cls: type[SRAEAttribution],
    forward_func: Callable[..., Tensor],
    layer: nn.Module | str,
    sraes: dict[int, SRAE] | SRAE,
    targets: Sequence[int] | None,
    heatmap_layer: nn.Module | str | None,
    layer_shape: Sequence[int],
    n_outputs: int | None,
) -> SRAEAttribution:
    """Build a fitted explainer from SRAEs; see :meth:`SRAEAttribution.from_sraes`.

    Args:
        cls (type): the explainer class to build.
        forward_func (nn.Module or Callable): the classifier.
        layer (nn.Module or str): the layer the SRAEs were fitted on.
        sraes (dict[int, SRAE] or SRAE): one SRAE per class, or one shared
            SRAE.
        targets (Sequence[int], optional): the classes of a shared SRAE.
        heatmap_layer (nn.Module or str, optional): the heatmap layer.
        layer_shape (Sequence[int]): the layer's output shape without the
            batch dimension.
        n_outputs (int, optional): the model's number of classes.

    Returns:
        *SRAEAttribution*: the fitted explainer (``history_`` is empty).

    Raises:
        ValueError: if the SRAEs do not fit together or with ``targets``.
    """
    if isinstance(sraes, nn.Module):  # SRAE or another ConceptModel
        ts = list(range(sraes.n_outputs)) if targets is None else list(targets)
        if len(ts) != sraes.n_outputs:
            raise ValueError(
                f"targets has {len(ts)} classes but the shared SRAE has "
                f"{sraes.n_outputs} outputs"
            )
        table, per_class = dict.fromkeys(ts, sraes), False
    else:
        table, ts, per_class = dict(sraes), list(sraes), True
        if not table or any(s.n_outputs != 1 for s in table.values()):
            raise ValueError("sraes must map classes to SRAEs with n_outputs=1")
    dims = {(s.in_features, s.n_concepts) for s in table.values()}
    if len(dims) != 1:
        raise ValueError(f"sraes differ in (in_features, n_concepts): {dims}")
    config = next(iter(table.values())).config
    explainer = cls(forward_func, layer, heatmap_layer, config)
    set_fitted(explainer, table, ts, per_class, layer_shape, n_outputs)
    explainer.history_ = {}
    return explainer
