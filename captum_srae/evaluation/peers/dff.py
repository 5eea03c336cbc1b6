#!/usr/bin/env python3
r"""pytorch-grad-cam's Deep Feature Factorization (DFF) as a concept method.

DFF (Collins, Achanta, Süsstrunk, ECCV 2018) factorises the spatial
activations of a layer, one row per pixel of every image and one column per
channel, with nonnegative matrix factorisation: ``A - o ≈ H W^T``, with
``A`` ``(pixels, C)``, ``o`` the per-channel minimum (an offset that makes
``A - o`` nonnegative), ``W`` ``(C, k)`` the concept vectors and ``H``
``(pixels, k)`` the per-pixel concept values, which are DFF's heatmaps.

:class:`DFF` follows the concept-method protocol of
:mod:`captum_srae.evaluation.compare.protocol` (``spatial = True``):
``fit`` runs pytorch-grad-cam's ``dff`` (scikit-learn ``NMF(init="random",
random_state=0)``) on the fit images' activations and returns a
:class:`DFFConcepts`:

- ``encode(z) = argmin_{e >= 0} ||(z - o) - W e||²`` on pooled activations
  ``z`` ``(N, C)``: nonnegative codes on the concept vectors, differentiable
  (:class:`~captum_srae.evaluation.baselines.NonnegativeLeastSquares`);
- ``decode(e) = e W^T + o``;
- ``concept_maps(model, layer, x)``: the same codes for every pixel of the
  layer, DFF's per-image explanations on the fitted concepts, upsampled to
  the input with Captum's ``LayerAttribution.interpolate`` (DFF's own
  display scales each map to ``[0, 1]``; the part association is unchanged
  by that scaling).

The concept scores come from the library's least-squares head (DFF has none
that is fitted on data). When the layer is followed by global average
pooling and a linear classifier ``fc``, DFF's own ``computation_on_concepts``
head is ``fc`` applied to the concept vectors: :meth:`DFFConcepts.classify_concepts`.

The factorisation ignores the class scores and, like pytorch-grad-cam's,
uses ``random_state=0`` whatever the seed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from captum.attr import LayerActivation, LayerAttribution
from torch import Tensor, nn

from captum_srae.evaluation.baselines.nmf import NonnegativeLeastSquares
from captum_srae.evaluation.peers.requirements import import_peer
from captum_srae.utils.validation import check_int

__all__ = ["DFF", "DFFConcepts", "spatial_activations"]


class DFFConcepts(nn.Module):
    r"""Fitted DFF concepts: concept vectors ``W`` ``(C, k)`` and offset ``o``.

    Args:
        concepts (Tensor): DFF's concept vectors ``W + o`` ``(C, k)`` (what
            pytorch-grad-cam's ``dff`` returns).
        offset (Tensor): the per-channel offset ``o`` ``(C,)``.
        n_iter (int, optional): projected-gradient steps of the NNLS codes.
            Default: 300
    """

    def __init__(self, concepts: Tensor, offset: Tensor, n_iter: int = 300) -> None:
        super().__init__()
        self.register_buffer("offset", offset.float().clone())
        basis = (concepts.double() - offset.double()[:, None]).T  # (k, C)
        self.codes = NonnegativeLeastSquares(basis.float(), n_iter)

    @property
    def n_concepts(self) -> int:
        """Number ``k`` of concepts."""
        return int(self.codes.components.shape[0])

    @property
    def concepts(self) -> Tensor:
        """DFF's concept vectors ``W + o`` as rows, ``(k, C)``."""
        return self.codes.components + self.offset

    def encode(self, z: Tensor) -> Tensor:
        """Nonnegative codes ``(N, k)`` of pooled activations ``z`` ``(N, C)``."""
        return self.codes(z - self.offset)

    def decode(self, e: Tensor) -> Tensor:
        """Rebuilt activations ``e W^T + o``, ``(N, C)``."""
        return e @ self.codes.components + self.offset

    def concept_maps(self, model: nn.Module, layer: nn.Module, x: Tensor) -> Tensor:
        r"""Per-pixel codes of ``layer``'s activations, ``(N, k, H, W)``.

        Args:
            model (nn.Module): the classifier.
            layer (nn.Module): the layer DFF was fitted on.
            x (Tensor): images ``(N, C_in, H, W)``.

        Returns:
            *Tensor*: nonnegative maps upsampled (bilinear) to ``x``'s size.

        Raises:
            ValueError: if the layer's activations are not 4-D.
        """
        a = spatial_activations(model, layer, x)
        n, c, h, w = a.shape
        with torch.no_grad():
            codes = self.encode(a.permute(0, 2, 3, 1).reshape(-1, c))
        maps = codes.reshape(n, h, w, -1).permute(0, 3, 1, 2)
        size = (int(x.shape[-2]), int(x.shape[-1]))
        return LayerAttribution.interpolate(maps, size, "bilinear")

    def classify_concepts(self, classifier: Callable[[Tensor], Tensor]) -> Tensor:
        r"""DFF's ``computation_on_concepts``: ``classifier`` on the concept
        vectors, ``(k, n_classes)``, e.g. the linear layer after global
        average pooling (the class scores of each concept)."""
        with torch.no_grad():
            return classifier(self.concepts)


def spatial_activations(
    model: nn.Module,
    layer: nn.Module,
    x: Tensor,
    *,
    batch_size: int = 64,
    method: str = "DFF",
    layer_name: str | None = None,
) -> Tensor:
    r"""``layer``'s activations on ``x`` (Captum's ``LayerActivation``).

    Args:
        model (nn.Module): the model.
        layer (nn.Module): the layer.
        x (Tensor): inputs.
        batch_size (int, optional): inputs per forward pass. Default: 64
        method (str, optional): the method that needs them, for the error
            message. Default: "DFF"
        layer_name (str, optional): the layer's name, for the error message.
            Default: None (its class name)

    Returns:
        *Tensor*: ``(N, C, h, w)``, detached.

    Raises:
        ValueError: if the activations are not 4-D (a spatial layer).
    """
    act = LayerActivation(model, layer)
    with torch.no_grad():
        a = torch.cat(
            [act.attribute(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        )
    if a.ndim != 4:
        name = layer_name or type(layer).__name__
        raise ValueError(
            f"{method} needs a spatial layer with (N, C, h, w) activations, but "
            f"layer {name!r} gives {tuple(a.shape)}"
        )
    return a.detach()


class DFF:
    r"""Deep Feature Factorization (pytorch-grad-cam) as a concept method.

    Args:
        n_concepts (int, optional): NMF components ``k``. Default: 5
        n_iter (int, optional): projected-gradient steps of the NNLS codes.
            Default: 300

    Examples::

        >>> from captum_srae.evaluation.peers.dff import DFF, spatial_activations
        >>> concepts = DFF(4).fit(spatial_activations(cnn, cnn.conv4, x), y, 0)
        >>> concepts.concept_maps(cnn, cnn.conv4, x).shape  # (N, 4, H, W)
    """

    #: ``fit`` takes the unpooled ``(N, C, h, w)`` activations.
    spatial = True

    def __init__(self, n_concepts: int = 5, *, n_iter: int = 300) -> None:
        self.n_concepts = check_int(n_concepts, "n_concepts")
        self.n_iter = check_int(n_iter, "n_iter")
        self._cache: tuple[Tensor, DFFConcepts] | None = None

    def __repr__(self) -> str:
        return f"DFF({self.n_concepts})"

    def fit(self, z: Tensor, y: Tensor | None = None, seed: int = 0) -> DFFConcepts:
        r"""Factorise spatial activations with pytorch-grad-cam's ``dff``.

        Args:
            z (Tensor): activations ``(N, C, h, w)`` of the fit images.
            y (Tensor, optional): class scores (unused: DFF ignores them).
            seed (int, optional): unused (DFF's NMF has ``random_state=0``).

        Returns:
            *DFFConcepts*: the same object for the same ``z`` (one fit serves
            every class).

        Raises:
            ValueError: if ``z`` is not 4-D, has fewer pixels than
                ``n_concepts``, or grad-cam is missing.
        """
        if not isinstance(z, Tensor) or z.ndim != 4:
            shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(
                f"DFF needs spatial activations (N, C, h, w) of the explained "
                f"layer, got {shape}"
            )
        if self._cache is not None and self._cache[0] is z:
            return self._cache[1]
        pixels = z.shape[0] * z.shape[2] * z.shape[3]
        if pixels < self.n_concepts or z.shape[1] < self.n_concepts:
            raise ValueError(
                f"DFF: n_concepts={self.n_concepts} needs at least as many "
                f"pixels and channels, got activations {tuple(z.shape)}"
            )
        module = "pytorch_grad_cam.feature_factorization.deep_feature_factorization"
        factorise = import_peer("grad-cam", module).dff
        a = z.detach().cpu().float().numpy().copy()  # dff writes into its input
        offset = a.transpose(1, 0, 2, 3).reshape(a.shape[1], -1).min(axis=1)
        concepts, _ = factorise(a, n_components=self.n_concepts)
        fitted = DFFConcepts(
            torch.from_numpy(np.asarray(concepts, dtype=np.float64)),
            torch.from_numpy(offset.astype(np.float64)),
            self.n_iter,
        ).to(z.device)
        self._cache = (z, fitted)
        return fitted
