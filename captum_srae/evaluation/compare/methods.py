#!/usr/bin/env python3
r"""The methods a comparison can run: concept methods and single-map methods.

Concept methods fit ``n_concepts`` concepts per class on the layer's pooled
activations and explain through :class:`~captum_srae.SRAEAttribution`
(closed-form Grad-CAM of each concept); single-map methods are Captum
attributions of the class score. With the ``peers`` extra,
:data:`PEER_METHODS` adds pytorch-grad-cam's GradCAM, GradCAM++, ScoreCAM and
EigenCAM (map methods) and its Deep Feature Factorization (``"DFF"``, a
concept method with its own concept maps).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

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
from captum_srae.evaluation.peers.dff import DFF
from captum_srae.evaluation.peers.gradcam import PGC_CAMS, PytorchGradCam
from captum_srae.evaluation.peers.overcomplete import (
    OvercompleteConcepts,
    import_overcomplete,
)
from captum_srae.evaluation.peers.requirements import import_peer
from captum_srae.training import fit_srae

__all__ = [
    "CONCEPT_METHODS",
    "DEMO_PEER_METHODS",
    "IN_PROCESS_KINDS",
    "DEFAULT_METHODS",
    "MAP_METHODS",
    "OVERCOMPLETE_METHODS",
    "PEER_METHODS",
    "class_maps",
    "fit_concepts",
    "installed_peer_methods",
    "method_kind",
    "peer_method",
    "require_peer",
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
#: Baselines whose per-class fit takes well under a second (a closed form or
#: a small factorisation): :func:`~captum_srae.evaluation.compare.compare`
#: fits them in this process, since forking workers costs about a second a
#: call on two cores, more than the fits themselves (docs/performance.rst).
IN_PROCESS_KINDS: frozenset[str] = frozenset({"pca", "nmf", "random"})
#: Single-map methods; ``"pytorch-grad-cam"`` (``peers`` extra) is the old
#: name of ``"pgc-GradCAM"``, kept as an alias.
MAP_METHODS: tuple[str, ...] = (
    "LayerGradCam",
    "GuidedGradCam",
    "IntegratedGradients",
    "Saliency",
    "pytorch-grad-cam",
)
#: overcomplete's dictionaries as concept methods: name → kind of
#: :func:`~captum_srae.evaluation.peers.overcomplete.fit_overcomplete`.
OVERCOMPLETE_METHODS: dict[str, str] = {
    "oc-TopK SAE": "topk",
    "oc-BatchTopK SAE": "batchtopk",
    "oc-JumpReLU SAE": "jump",
    "oc-NMF": "nmf",
    "oc-SemiNMF": "semi_nmf",
}
#: Methods of the peer tools (``peers`` extra): name → ``"map"`` or
#: ``"concept"``. The pytorch-grad-cam CAMs are class maps (EigenCAM's is
#: class-agnostic); ``"DFF"`` is Deep Feature Factorization; the ``oc-``
#: names are overcomplete's sparse autoencoders and NMF-family dictionaries
#: (:data:`OVERCOMPLETE_METHODS`).
PEER_METHODS: dict[str, str] = {
    **{name: "map" for name in PGC_CAMS},
    "DFF": "concept",
    **{name: "concept" for name in OVERCOMPLETE_METHODS},
}
#: The peer methods the demo adds to its comparison when the ``peers`` extra
#: is installed (the fast ones; ``captum-srae compare --methods`` runs any).
DEMO_PEER_METHODS: tuple[str, ...] = (
    "DFF",
    "oc-TopK SAE",
    "pgc-GradCAM++",
    "pgc-EigenCAM",
)
#: What :func:`~captum_srae.evaluation.compare.compare` runs by default.
DEFAULT_METHODS: tuple[str, ...] = (*CONCEPT_METHODS, *MAP_METHODS[:4])


def method_kind(name: str) -> str:
    """``"concept"`` or ``"map"``; a ValueError lists the known names."""
    if name in CONCEPT_METHODS:
        return "concept"
    if name in MAP_METHODS:
        return "map"
    if name in PEER_METHODS:
        return PEER_METHODS[name]
    known = ", ".join([*CONCEPT_METHODS, *MAP_METHODS, *PEER_METHODS])
    raise ValueError(f"methods: unknown method {name!r}; known methods: {known}")


def peer_method(
    name: str, n_concepts: int
) -> DFF | PytorchGradCam | OvercompleteConcepts | None:
    """The method object of a peer method name (None for another name).

    Args:
        name (str): a method name; ``"pytorch-grad-cam"`` is ``"pgc-GradCAM"``.
        n_concepts (int): the number of concepts (DFF, overcomplete).

    Returns:
        *DFF, PytorchGradCam, OvercompleteConcepts or None*
    """
    if name == "DFF":
        return DFF(n_concepts)
    if name in OVERCOMPLETE_METHODS:
        return OvercompleteConcepts(OVERCOMPLETE_METHODS[name], n_concepts)
    if name == "pytorch-grad-cam":
        name = "pgc-GradCAM"
    if name in PGC_CAMS:
        return PytorchGradCam(PGC_CAMS[name])
    return None


def require_peer(name: str) -> None:
    """Import the peer tool behind method ``name`` now, so that a missing or
    unsupported peer is a one-line ValueError before any work (nothing for
    the package's own methods)."""
    if name in OVERCOMPLETE_METHODS:
        import_overcomplete()
    elif name in PEER_METHODS or name == "pytorch-grad-cam":
        import_peer("grad-cam", "pytorch_grad_cam")


def installed_peer_methods(names: Sequence[str] = tuple(PEER_METHODS)) -> list[str]:
    """The peer method names among ``names`` whose peer tool is installed in
    a supported version (see :func:`require_peer`), in order.

    Examples::

        >>> methods = [*DEFAULT_METHODS, *installed_peer_methods(DEMO_PEER_METHODS)]
    """
    out = []
    for name in names:
        method_kind(name)  # a ValueError for an unknown name
        try:
            require_peer(name)
        except ValueError:
            continue
        out.append(name)
    return out


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
        name (str): one of :data:`MAP_METHODS` or a map method of
            :data:`PEER_METHODS`.
        model (nn.Module): the classifier.
        layer (nn.Module): the layer of the Grad-CAM variants.
        x (Tensor): images ``(N, C, H, W)``.
        target (Tensor): class per image ``(N,)``.
        ig_steps (int, optional): Integrated Gradients steps (zero baseline).
            Default: 32

    Returns:
        *Tensor*: ``(N, H, W)``; channel attributions are summed.
    """
    peer = peer_method(name, 1)
    if isinstance(peer, PytorchGradCam):
        return peer(model, layer, x, target).detach()
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
    }
    maps = runs[name]().detach()
    return maps.sum(dim=1) if maps.ndim == 4 else maps
