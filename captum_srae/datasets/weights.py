"""A user's model weights: torchvision architectures by name and state-dict files.

:func:`load_torchvision_model` builds a torchvision architecture by name with
a user's weights file; :func:`read_state_dict` reads such a file and
:func:`state_dict_mismatch` says how it differs from a model's own.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from captum_srae.utils.validation import check_int

__all__ = ["load_torchvision_model", "read_state_dict", "state_dict_mismatch"]


def load_torchvision_model(
    name: str,
    num_classes: int,
    weights_path: str | os.PathLike[str] | None = None,
) -> nn.Module:
    r"""A torchvision architecture by name, with a user's weights, in eval mode.

    The network is built with ``torchvision.models.get_model(name,
    weights=None, num_classes=num_classes)`` (nothing is downloaded); a
    ``.safetensors`` file is read with safetensors, any other file with
    ``torch.load(..., weights_only=True)``. A checkpoint dict holding the
    weights under ``"state_dict"`` or ``"model"`` is accepted, and a
    ``"module."`` prefix (from ``DataParallel``) is removed.

    Args:
        name (str): A name of ``torchvision.models.list_models()``, such as
            ``"resnet18"``.
        num_classes (int): Outputs of the classifier head.
        weights_path (str or PathLike, optional): State dict file; None keeps
            the random initialisation. Default: None

    Returns:
        *nn.Module*: the model in eval mode.

    Raises:
        ValueError: for an unknown model name, a file that is not a state dict,
            or weights whose keys or shapes do not match the architecture.
        FileNotFoundError: if ``weights_path`` does not exist.
    """
    import torchvision

    known = torchvision.models.list_models()
    if name not in known:
        close = difflib.get_close_matches(name.lower(), known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown torchvision model {name!r}{hint}")
    check_int(num_classes, "num_classes")
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    if weights_path is not None:
        state = read_state_dict(Path(weights_path))
        problem = state_dict_mismatch(model.state_dict(), state)
        if problem:
            raise ValueError(
                f"weights in {weights_path} do not match {name}"
                f"(num_classes={num_classes}): {problem}"
            )
        model.load_state_dict(state)
    return model.eval()


def state_dict_mismatch(expected: dict[str, Tensor], given: dict[str, Tensor]) -> str:
    """A short description of how ``given`` differs from ``expected``, or ""."""

    def listed(names: list[str]) -> str:
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        return ", ".join(names[:3]) + more

    parts = []
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k} {tuple(given[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in given and given[k].shape != v.shape
    ]
    if missing:
        parts.append(f"missing keys {listed(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {listed(unexpected)}")
    if shapes:
        parts.append(f"shape mismatch (file vs model) {listed(shapes)}")
    return "; ".join(parts)


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """The state dict in the file ``path`` (safetensors or ``torch.load``).

    A ``"state_dict"`` or ``"model"`` wrapper and a ``"module."`` prefix are
    removed.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it is not a readable file holding a state dict.
    """
    if not path.exists():
        raise FileNotFoundError(f"weights file not found: {path}")
    if not path.is_file():
        raise ValueError(f"weights path is not a file: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"cannot read weights file {path}: {exc}") from None
    if isinstance(obj, dict):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    ):
        raise ValueError(
            f"{path} is not a state dict (a mapping of parameter names to "
            f"tensors); got {type(obj).__name__}"
        )
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj
