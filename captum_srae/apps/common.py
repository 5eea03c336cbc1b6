#!/usr/bin/env python3
r"""What the ``fit``, ``explain`` and ``report`` commands and the demo share.

Building the user's model (a torchvision name or ``module:callable``, with a
weights file), the side file ``fit.json`` that records how to rebuild the
model and the image transform, reading images, and parsing ``--config``,
``--target`` and ``--device``. Every problem of the user's input raises a
``ValueError``/``TypeError``/``FileNotFoundError`` with a one-line message.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import captum.attr
import torch
from torch import Tensor, nn

from captum_srae.utils.json_data import parse_json_object

__all__ = [
    "SIDE_FILE",
    "FitRecord",
    "MAP_KEYS",
    "build_model",
    "check_out_dir",
    "denormalize",
    "dump_json",
    "file_sha256",
    "fit_record",
    "load_images",
    "map_record",
    "parse_config",
    "parse_device",
    "read_record",
    "rebuild_model",
    "resolve_targets",
    "save_fitted",
    "transform_from_record",
    "transform_record",
]

SIDE_FILE = "fit.json"
FORMAT_NAME = "captum-srae/cli-fit"
FORMAT_VERSION = 1

FitRecord = dict[str, Any]
#: The map defaults of an explainer that ``fit.json`` records (``"maps"``),
#: passed to :meth:`~captum_srae.SRAEAttribution.load` by ``explain``/``report``.
MAP_KEYS = ("heatmap_layer", "map_method", "map_smoothing")


# ------------------------------------------------------------------- generic
def dump_json(data: Any) -> str:
    """JSON text of ``data``, non-finite floats written as ``null``."""

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    return json.dumps(clean(data), indent=2, sort_keys=True, allow_nan=False) + "\n"


def file_sha256(path: Path) -> str:
    """Hexadecimal SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_out_dir(out: str, marker: str, command: str) -> Path:
    """``out`` as a Path, refusing a non-empty folder this command did not write.

    The commands replace ``--out`` as a whole (atomically), so a folder
    holding anything else than an earlier output (recognised by ``marker``)
    is refused rather than deleted.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {out!r} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not (path / marker).is_file():
        raise ValueError(
            f"--out {out!r} is a non-empty folder not written by captum-srae "
            f"{command}; give a new or empty folder (it is replaced as a whole)"
        )
    return path


def parse_device(text: str | None) -> torch.device:
    """``--device``: None picks ``cuda`` when available, else ``cpu``."""
    if text is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ValueError(
            f"--device {text!r} is not a device (e.g. cpu, cuda, cuda:1)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {text!r}: CUDA is not available on this machine")
    return device


def parse_config(text: str | None) -> Any:
    """``--config``: a preset name, an inline JSON object or a JSON file.

    The JSON object holds :class:`~captum_srae.SRAEConfig` fields, over the
    ``"default"`` preset or the one named by an optional ``"preset"`` key.
    """
    from captum_srae.core.config import SRAEConfig

    if text is None:
        return SRAEConfig()
    if text in ("default", "qi2021"):
        return SRAEConfig.preset(text)
    data = parse_json_object(
        text, "--config", neither="a preset (default, qi2021), a JSON object"
    )
    preset = data.pop("preset", "default")
    try:
        base = SRAEConfig.preset(str(preset)).to_dict()
        return SRAEConfig.from_dict({**base, **data})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--config: {exc}") from None


# ---------------------------------------------------------------------- model
def _callable_model(spec: str, num_classes: int | None) -> nn.Module:
    """Import ``module:callable`` and call it (with ``num_classes=`` if given)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--model {spec!r}: expected NAME or module:callable")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(
            f"--model {spec!r}: cannot import module {module_name!r} ({exc}); "
            "is it on PYTHONPATH?"
        ) from None
    except Exception as exc:  # the user's module failed while importing
        raise ValueError(
            f"--model {spec!r}: importing {module_name!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"--model {spec!r}: {module_name} has no {attr!r}{hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"--model {spec!r}: {attr} is not callable")
    try:
        model = obj() if num_classes is None else obj(num_classes=num_classes)
    except Exception as exc:
        call = "()" if num_classes is None else f"(num_classes={num_classes})"
        raise ValueError(
            f"--model {spec!r}: {attr}{call} failed: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"--model {spec!r}: {attr}() returned {type(model).__name__}, "
            "not a torch.nn.Module"
        )
    return model


def build_model(
    spec: str,
    num_classes: int | None,
    weights: str | os.PathLike[str] | None,
    seed: int = 0,
) -> nn.Module:
    """The user's model in eval mode, on CPU.

    Args:
        spec (str): a torchvision model name, or ``module:callable``.
        num_classes (int, optional): outputs of a torchvision model (required
            for a name); passed as ``num_classes=`` to a callable when given.
        weights (str or PathLike, optional): a state dict file.
        seed (int): seeds the random initialisation, so that a model without
            weights is rebuilt identically.

    Raises:
        ValueError: unknown name, failing import or call, weights that do not
            fit the architecture.
        FileNotFoundError: if ``weights`` does not exist.
    """
    from captum_srae.datasets.weights import (
        load_torchvision_model,
        read_state_dict,
        state_dict_mismatch,
    )

    torch.manual_seed(seed)
    if ":" in spec:
        model = _callable_model(spec, num_classes)
        if weights is not None:
            state = read_state_dict(Path(weights))
            problem = state_dict_mismatch(model.state_dict(), state)
            if problem:
                raise ValueError(f"weights in {weights} do not fit {spec}: {problem}")
            model.load_state_dict(state)
        return model.eval()
    if num_classes is None:
        raise ValueError(f"--model {spec!r}: a torchvision model needs --num-classes")
    try:
        return load_torchvision_model(spec, num_classes, weights)
    except ValueError as exc:
        if str(exc).startswith("unknown torchvision model"):
            hint = " (or give module:callable for your own model)"
            raise ValueError(f"{exc}{hint}") from None
        raise


def model_record(
    spec: str, num_classes: int | None, weights: str | None, seed: int
) -> dict[str, Any]:
    """The ``"model"`` entry of ``fit.json``: enough to rebuild the model."""
    path = None if weights is None else Path(weights).resolve()
    return {
        "spec": spec,
        "kind": "callable" if ":" in spec else "torchvision",
        "num_classes": num_classes,
        "weights": None if path is None else str(path),
        "weights_sha256": None if path is None else file_sha256(path),
        "seed": seed,
    }


def rebuild_model(record: FitRecord, device: torch.device) -> nn.Module:
    """Rebuild the fitted model from ``fit.json``, checking the weights' hash."""
    m = record["model"]
    weights = m.get("weights")
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"the model weights recorded in {SIDE_FILE} are missing: {path}"
            )
        digest = file_sha256(path)
        if digest != m.get("weights_sha256"):
            raise ValueError(
                f"the weights file {path} changed since the explainer was fitted "
                f"(sha256 {digest[:12]}..., expected "
                f"{str(m.get('weights_sha256'))[:12]}...); fit again"
            )
    return build_model(m["spec"], m.get("num_classes"), weights, m["seed"]).to(device)


# ------------------------------------------------------------ the side file
def read_record(folder: str | os.PathLike[str]) -> FitRecord:
    """Read and check ``<folder>/fit.json`` written by ``captum-srae fit``."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"--explainer {str(folder)!r}: no such folder")
    path = root / SIDE_FILE
    if not path.is_file():
        raise ValueError(
            f"--explainer {str(folder)!r} has no {SIDE_FILE}; give a folder "
            "written by captum-srae fit"
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is corrupt: {exc}") from None
    ok = (
        isinstance(record, dict)
        and record.get("format") == FORMAT_NAME
        and isinstance(record.get("format_version"), int)
    )
    if not ok:
        raise ValueError(f"{path} is not a captum-srae fit record")
    if record["format_version"] > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format version {record['format_version']}; this "
            f"captum-srae reads versions up to {FORMAT_VERSION}"
        )
    need = {"model": dict, "layer": str, "targets": list, "transform": dict}
    need |= {"class_names": list}
    for key, kind in need.items():
        if not isinstance(record.get(key), kind):
            raise ValueError(f"{path} is corrupt: {key!r} is missing or invalid")
    m = record["model"]
    if not isinstance(m.get("spec"), str) or not isinstance(m.get("seed"), int):
        raise ValueError(f"{path} is corrupt: invalid 'model' entry")
    if not _valid_maps(record.get("maps", {})):  # absent before 0.2: {}
        raise ValueError(f"{path} is corrupt: invalid 'maps' entry")
    return record


def _valid_maps(maps: Any) -> bool:
    """Whether ``maps`` is a ``"maps"`` entry that :func:`map_record` writes."""
    if not isinstance(maps, dict) or not set(maps) <= set(MAP_KEYS):
        return False
    sigma = maps.get("map_smoothing", 0.0)
    return (
        isinstance(maps.get("heatmap_layer", ""), str)
        and isinstance(maps.get("map_method", ""), str)
        and isinstance(sigma, (int, float))
        and not isinstance(sigma, bool)
        and math.isfinite(sigma)
        and sigma >= 0
    )


def map_record(explainer: Any) -> dict[str, Any]:
    """The map defaults of ``explainer`` that ``fit.json`` holds (``"maps"``).

    A ``heatmap_layer`` given by name is kept (a module is not: ``fit.json``
    holds names only), a ``map_method`` class of ``captum.attr`` becomes its
    name, and ``map_smoothing`` a float.

    Args:
        explainer (SRAEAttribution): the fitted explainer.

    Returns:
        *dict[str, Any]*: the entries of :data:`MAP_KEYS` that can be written.
    """
    out: dict[str, Any] = {}
    if isinstance(explainer.heatmap_layer, str):
        out["heatmap_layer"] = explainer.heatmap_layer
    method = explainer.map_method
    if (
        isinstance(method, type)
        and getattr(captum.attr, method.__name__, None) is method
    ):
        method = method.__name__
    if isinstance(method, str):
        out["map_method"] = method
    out["map_smoothing"] = float(explainer.map_smoothing)
    return out


def fit_record(
    explainer: Any,
    *,
    model_record: dict[str, Any],
    n_outputs: int,
    layer: str,
    class_names: list[str],
    transform: dict[str, Any],
    data: dict[str, Any],
    config: Any,
) -> dict[str, Any]:
    """The content of ``fit.json`` for a fitted explainer (with its history)."""
    from captum_srae.utils.version import __version__

    faith = {}
    for t in explainer.targets_:
        h = explainer.history_[t]
        faith[str(t)] = {
            "class_name": class_names[t] if t < len(class_names) else None,
            "val_r2": h.val_r2,
            "train_r2": h.train_r2,
            "val_rmse": h.val_rmse,
            "n_train": h.n_train,
            "n_val": h.n_val,
            "accepted": h.accepted,
        }
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "created_with": f"captum-srae {__version__}",
        "model": model_record,
        "n_outputs": n_outputs,
        "layer": layer,
        "layer_shape": list(explainer.layer_shape_),
        "targets": list(explainer.targets_),
        "class_names": class_names,
        "transform": transform,
        "data": data,
        "config": config.to_dict(),
        "faithfulness": faith,
        "maps": map_record(explainer),
    }


def save_fitted(folder: Path, explainer: Any, record: dict[str, Any]) -> None:
    """Write the explainer, ``fit.json`` and ``history.json`` into ``folder``
    (a fresh folder, e.g. the one of an ``atomic_directory``)."""
    explainer.save(folder)
    (folder / SIDE_FILE).write_text(dump_json(record), "utf-8")
    histories = {str(t): explainer.history_[t].to_dict() for t in explainer.targets_}
    (folder / "history.json").write_text(dump_json(histories), "utf-8")


def transform_record(
    size: int, normalize: bool = True, resize: int | None = None
) -> dict[str, Any]:
    """The ``"transform"`` entry of ``fit.json``: what
    :func:`~captum_srae.datasets.folders.image_transform` does at evaluation
    (without normalisation: mean 0 and std 1, pixels stay in ``[0, 1]``;
    ``resize`` defaults to ``size * 256 / 224``)."""
    from captum_srae.datasets.folders import IMAGENET_MEAN, IMAGENET_STD

    return {
        "image_size": size,
        "resize": round(size * 256 / 224) if resize is None else resize,
        "center_crop": size,
        "mean": list(IMAGENET_MEAN) if normalize else [0.0, 0.0, 0.0],
        "std": list(IMAGENET_STD) if normalize else [1.0, 1.0, 1.0],
    }


def transform_from_record(record: dict[str, Any]) -> Any:
    """The evaluation transform ``fit.json`` describes: resize, crop, normalise."""
    from torchvision import transforms

    try:
        steps = [
            transforms.Resize(int(record["resize"])),
            transforms.CenterCrop(int(record["center_crop"])),
            transforms.ToTensor(),
            transforms.Normalize(record["mean"], record["std"]),
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{SIDE_FILE} has an invalid 'transform': {exc}") from None
    return transforms.Compose(steps)


def denormalize(x: Tensor, record: dict[str, Any]) -> Tensor:
    """Undo the normalisation of ``x`` ``(N, 3, H, W)``, clipped to ``[0, 1]``."""
    mean = torch.tensor(record["mean"], dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(record["std"], dtype=x.dtype).view(1, -1, 1, 1)
    return (x.cpu() * std + mean).clamp(0, 1)


def load_images(files: Sequence[str], transform: Any) -> Tensor:
    """Read image files as RGB and transform them, ``(N, 3, H, W)``."""
    from PIL import Image, UnidentifiedImageError

    out = []
    for name in files:
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"image file not found: {name}")
        try:
            with Image.open(path) as img:
                img.load()
                rgb = img.convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ValueError(f"cannot read image {name}: {exc}") from None
        out.append(transform(rgb))
    return torch.stack(out)


# -------------------------------------------------------------------- targets
def resolve_targets(
    tokens: Sequence[str], class_names: Sequence[str], n_outputs: int | None
) -> list[int]:
    """``--target`` tokens (indices or folder class names) as class indices.

    Raises:
        ValueError: for an unknown name, a negative index, an index not below
            ``n_outputs``, a repeated class, or a number that is also the name
            of a class folder with another index (folders are sorted as text:
            "10" comes before "2").
    """
    out: list[int] = []
    names = list(class_names)
    for token in tokens:
        if token.lstrip("-").isdigit():
            t = int(token)
            if token in names and names.index(token) != t:
                raise ValueError(
                    f"--target {token} is ambiguous: output {t}, or the class "
                    f"folder {token!r}, which is output {names.index(token)} "
                    "(folders are numbered in sorted text order); rename the "
                    "folders or give the output index of the folder you mean"
                )
        elif token in class_names:
            t = list(class_names).index(token)
        else:
            close = difflib.get_close_matches(token, list(class_names), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            known = ", ".join(class_names[:10]) or "none"
            raise ValueError(
                f"--target {token!r} is neither a class index nor a class name "
                f"(classes: {known}){hint}"
            )
        if t < 0 or (n_outputs is not None and t >= n_outputs):
            raise ValueError(
                f"--target {t} is out of range: the model has {n_outputs} "
                f"outputs (classes 0 to {(n_outputs or 1) - 1})"
            )
        if t in out:
            raise ValueError(f"--target repeats class {t}")
        out.append(t)
    return out


def class_label(t: int, class_names: Sequence[str]) -> str:
    """``3 'dog'`` when the folder has a name for class ``t``, else ``3``."""
    return f"{t} {class_names[t]!r}" if 0 <= t < len(class_names) else str(t)
