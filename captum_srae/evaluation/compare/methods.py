#!/usr/bin/env python3
r"""The methods a comparison can run: concept methods and single-map methods.

Concept methods fit ``n_concepts`` concepts per class on the layer's pooled
activations and explain through :class:`~captum_srae.SRAEAttribution`
(closed-form Grad-CAM of each concept); single-map methods are Captum
attributions of the class score (and, with the ``peers`` extra,
pytorch-grad-cam's Grad-CAM).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from captum.attr import (
    GuidedGradCam,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    Saliency,
)
from torch import Tensor, nn

from captum_srae.core.config import SRAEConfig
from captum_srae.evaluation.baselines import fit_baseline
from captum_srae.training import fit_srae

__all__ = [
    "CONCEPT_METHODS",
    "DEFAULT_METHODS",
    "MAP_METHODS",
    "class_maps",
    "fit_concepts",
    "method_kind",
]

#: Concept methods: display name → baseline name (``"srae"`` for the SRAE).
CONCEPT_METHODS: dict[str, str] = {
    "SRAE": "srae",
    "Autoencoder": "autoencoder",
    "PCA": "pca",
    "NMF": "nmf",
    "TopK SAE": "topk_sae",
    "Random basis": "random",
}
#: Single-map methods (the last needs the ``peers`` extra).
MAP_METHODS: tuple[str, ...] = (
    "LayerGradCam",
    "GuidedGradCam",
    "IntegratedGradients",
    "Saliency",
    "pytorch-grad-cam",
)
#: What :func:`~captum_srae.evaluation.compare.compare` runs by default.
DEFAULT_METHODS: tuple[str, ...] = (*CONCEPT_METHODS, *MAP_METHODS[:4])


def method_kind(name: str) -> str:
    """``"concept"`` or ``"map"``; a ValueError lists the known names."""
    if name in CONCEPT_METHODS:
        return "concept"
    if name in MAP_METHODS:
        return "map"
    known = ", ".join([*CONCEPT_METHODS, *MAP_METHODS])
    raise ValueError(f"methods: unknown method {name!r}; known methods: {known}")


def fit_concepts(
    name: str, z: Tensor, y: Tensor, config: SRAEConfig, seed: int
) -> nn.Module:
    """Fit concept method ``name`` on activations ``z`` and scores ``y`` (N,)."""
    cfg = config.replace(seed=seed)
    kind = CONCEPT_METHODS[name]
    if kind == "srae":
        return fit_srae(z, y, cfg, show_progress=False)[0]
    options: dict[str, Any] = {"pooling": cfg.pooling}
    if kind == "autoencoder":
        options["config"] = cfg
    return fit_baseline(kind, z, y, cfg.n_concepts, seed=seed, **options)


def _interpolated(maps: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(maps.shape[-2:]) == size:
        return maps
    return LayerAttribution.interpolate(maps, size, "bilinear")


def _pytorch_grad_cam(
    model: nn.Module, layer: nn.Module, x: Tensor, t: Tensor
) -> Tensor:
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ValueError(
            "methods: 'pytorch-grad-cam' needs the peers extra "
            "(pip install 'captum-srae[peers]')"
        ) from exc
    targets = [ClassifierOutputTarget(int(c)) for c in t]
    with GradCAM(model=model, target_layers=[layer]) as cam:
        maps = cam(input_tensor=x, targets=targets)
    return torch.as_tensor(maps, dtype=x.dtype)


def class_maps(
    name: str,
    model: nn.Module,
    layer: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    ig_steps: int = 32,
) -> Tensor:
    """Input-sized maps ``(N, H, W)`` of the class ``target[i]`` of each image.

    Args:
        name (str): one of :data:`MAP_METHODS`.
        model (nn.Module): the classifier.
        layer (nn.Module): the layer of the Grad-CAM variants.
        x (Tensor): images ``(N, C, H, W)``.
        target (Tensor): class per image ``(N,)``.
        ig_steps (int, optional): Integrated Gradients steps (zero baseline).
            Default: 32

    Returns:
        *Tensor*: ``(N, H, W)``; channel attributions are summed.
    """
    size = (int(x.shape[-2]), int(x.shape[-1]))
    tgt = target.tolist()
    runs: dict[str, Callable[[], Tensor]] = {
        "LayerGradCam": lambda: _interpolated(
            LayerGradCam(model, layer).attribute(x, tgt, relu_attributions=True), size
        ),
        "GuidedGradCam": lambda: GuidedGradCam(model, layer).attribute(x, tgt),
        "IntegratedGradients": lambda: IntegratedGradients(model).attribute(
            x, target=tgt, n_steps=ig_steps, internal_batch_size=len(tgt) * 8
        ),
        "Saliency": lambda: Saliency(model).attribute(x, target=tgt, abs=True),
        "pytorch-grad-cam": lambda: _pytorch_grad_cam(model, layer, x, target),
    }
    maps = runs[name]().detach()
    return maps.sum(dim=1) if maps.ndim == 4 else maps
