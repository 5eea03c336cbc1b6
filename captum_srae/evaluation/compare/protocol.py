#!/usr/bin/env python3
r"""The open protocol of :func:`~captum_srae.evaluation.compare.compare`: your
own concept or map method, scored like the built-in ones.

A **concept method** is any object with ``fit(z, y, seed)``:

- ``z`` ``(N, D)``: the explained layer's pooled activations on the fit
  images (a method with a class attribute ``spatial = True`` gets the
  unpooled ``(N, C, h, w)`` activations instead, as DFF does);
- ``y`` ``(N,)``: the model's score of the explained class;
- ``seed`` (int): a seed for any randomness.

It is called once per class and seed, and returns a *fitted* object with

- ``encode(z) -> e``: **required**, differentiable in ``z``, from pooled
  activations ``(N, D)`` to concept values ``(N, k)``;
- ``predict(e) -> y_hat`` ``(N,)``: optional, the method's own score head
  (else the library fits a least-squares head with
  :func:`~captum_srae.evaluation.baselines.fit_linear_head`);
- ``decode(e) -> z_hat`` ``(N, D)``: optional (else the reconstruction
  metric is NaN);
- ``concept_maps(model, layer, x) -> (N, k, h, w)``: optional, the method's
  own per-image concept maps (else the library's closed-form Grad-CAM of
  ``encode``, as for the SRAE).

:class:`ConceptMethodModel` turns a fitted object into a
:class:`~captum_srae.evaluation.baselines.ConceptModel`, so every metric,
:class:`~captum_srae.SRAEAttribution` and the plots apply to it.

A **map method** is any callable ``(model, layer, x, target) -> maps`` with
``maps`` of shape ``(N, H, W)`` or ``(N, C, H, W)`` (channels are summed;
other spatial sizes are resized to the input's bilinearly); ``target`` is
the class of each image ``(N,)``.

Examples::

    >>> class Projection:                 # the fitted object
    ...     def __init__(self, mean, v):
    ...         self.mean, self.v = mean, v
    ...     def encode(self, z):
    ...         return (z - self.mean) @ self.v
    >>> class MyPCA:                      # the concept method
    ...     def __init__(self, k):
    ...         self.k = k
    ...     def fit(self, z, y, seed):
    ...         mean = z.mean(0)
    ...         _, _, v = torch.pca_lowrank(z - mean, q=self.k, center=False)
    ...         return Projection(mean, v)
    >>> res = compare(cnn, "conv4", x_fit, x_test, methods=["PCA"],
    ...               extra_methods={"my PCA": MyPCA(5)})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from captum.attr import LayerAttribution
from torch import Tensor, nn

from captum_srae.evaluation.baselines import ConceptBaseline, fit_linear_head

__all__ = [
    "ConceptMethod",
    "ConceptMethodModel",
    "FittedConcepts",
    "MapMethod",
    "check_extra_methods",
    "extra_method_kind",
    "fit_concept_method",
    "map_method_output",
]


@runtime_checkable
class FittedConcepts(Protocol):
    r"""What ``ConceptMethod.fit`` returns: at least a differentiable
    ``encode(z (N, D)) -> (N, k)``; ``predict``, ``decode`` and
    ``concept_maps`` are optional (see the module docstring)."""

    def encode(self, z: Tensor) -> Tensor: ...  # noqa: D102


@runtime_checkable
class ConceptMethod(Protocol):
    r"""A concept method: ``fit(z, y, seed)`` returns :class:`FittedConcepts`.

    ``z`` ``(N, D)`` pooled activations (``(N, C, h, w)`` when the method
    has ``spatial = True``), ``y`` ``(N,)`` class scores, ``seed`` an int.
    """

    def fit(self, z: Tensor, y: Tensor, seed: int) -> FittedConcepts: ...  # noqa: D102


@runtime_checkable
class MapMethod(Protocol):
    r"""A map method: ``(model, layer, x, target) -> (N, H, W)`` or
    ``(N, C, H, W)`` maps of class ``target[i]`` on image ``x[i]``."""

    def __call__(  # noqa: D102
        self, model: nn.Module, layer: nn.Module, x: Tensor, target: Tensor
    ) -> Tensor: ...


def extra_method_kind(method: Any, label: str) -> str:
    r"""``"concept"`` for an object with a callable ``fit``, ``"map"`` for
    another callable.

    Args:
        method (Any): the method object.
        label (str): how the error message names it, e.g.
            ``"extra_methods['mine']"``.

    Returns:
        *str*: ``"concept"`` or ``"map"``.

    Raises:
        TypeError: if ``method`` is neither.
    """
    if callable(getattr(method, "fit", None)):
        return "concept"
    if callable(method):
        return "map"
    raise TypeError(
        f"{label} must be a concept method (an object with fit(z, y, seed) "
        "returning an object with encode(z)) or a map method (a callable "
        f"(model, layer, x, target) -> maps), got {type(method).__name__}"
    )


def check_extra_methods(extra: Any, builtin: Sequence[str]) -> dict[str, str]:
    r"""Check ``extra_methods`` of :func:`compare`; return ``{name: kind}``.

    Args:
        extra (Any): the ``extra_methods`` argument (None or a mapping from
            names to concept or map methods).
        builtin (Sequence[str]): the built-in names, which may not be reused.

    Returns:
        *dict[str, str]*: ``"concept"`` or ``"map"`` per name.

    Raises:
        TypeError: if ``extra`` is not a mapping or a value is no method.
        ValueError: on an empty, non-string or built-in name.
    """
    if extra is None:
        return {}
    if not isinstance(extra, Mapping):
        raise TypeError(
            "extra_methods must be a mapping {name: method}, got "
            f"{type(extra).__name__}"
        )
    kinds: dict[str, str] = {}
    for name, method in extra.items():
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"extra_methods keys must be non-empty method names, got {name!r}"
            )
        if name in builtin:
            raise ValueError(
                f"extra_methods[{name!r}] clashes with the built-in method "
                f"{name!r}; choose another name"
            )
        kinds[name] = extra_method_kind(method, f"extra_methods[{name!r}]")
    return kinds


class _Encode(nn.Module):
    """``forward(z) = fitted.encode(z)`` (a registered submodule when the
    fitted object is a module, so ``.to()`` moves it)."""

    def __init__(self, fitted: Any) -> None:
        super().__init__()
        self.fitted = fitted

    def forward(self, z: Tensor) -> Tensor:
        return self.fitted.encode(z)


class ConceptMethodModel(ConceptBaseline):
    r"""A fitted concept method as a
    :class:`~captum_srae.evaluation.baselines.ConceptModel`.

    ``encode`` is the method's own; ``predict(e) = e @ weight.T + bias`` with
    the head fitted by least squares on the fit data, or, when the method has
    its own ``predict``, that ``predict`` (then ``weight``/``bias``, used for
    the contributions ``e_k w_k``, are the least-squares linear fit of the
    method's head, which are its own weights when the head is linear).
    ``decode`` and ``concept_maps`` are the method's, when it has them.

    Build one with :func:`fit_concept_method` (or :meth:`from_fitted`).

    Args:
        fitted (FittedConcepts): the object ``fit`` returned.
        in_features (int): activation dimension ``D``.
        n_concepts (int): number ``k`` of concepts.
        pooling (str, optional): pooling of the activations. Default: "avg"
        label (str, optional): the method's name in error messages.
            Default: "method"
    """

    def __init__(
        self,
        fitted: Any,
        in_features: int,
        n_concepts: int,
        pooling: str = "avg",
        label: str = "method",
    ) -> None:
        super().__init__(in_features, n_concepts, 1, pooling)
        self.encoder = _Encode(fitted)
        self.label = label

    @property
    def fitted(self) -> Any:
        """The fitted object of the concept method."""
        return self.encoder.fitted

    @property
    def has_predict(self) -> bool:
        """Whether the method has its own score head."""
        return callable(getattr(self.fitted, "predict", None))

    @property
    def has_decoder(self) -> bool:
        """Whether the method reconstructs activations (``decode``)."""
        return callable(getattr(self.fitted, "decode", None))

    @property
    def has_concept_maps(self) -> bool:
        """Whether the method draws its own concept maps."""
        return callable(getattr(self.fitted, "concept_maps", None))

    def predict(self, e: Tensor) -> Tensor:
        """Rebuilt scores ``(N, 1)``: the method's ``predict`` or the
        least-squares head."""
        if not self.has_predict:
            return super().predict(e)
        self.check_input(e, self.n_concepts, "e")
        return _scores(self.fitted.predict(e), e.shape[0], f"{self.label}.predict")

    def _decode(self, e: Tensor) -> Tensor:
        if not self.has_decoder:
            raise NotImplementedError(f"{self.label} has no decode")
        return self.fitted.decode(e)

    def concept_maps(self, model: nn.Module, layer: nn.Module, x: Tensor) -> Tensor:
        """The method's own maps ``(N, k, H, W)``, resized to ``x``'s size.

        Raises:
            NotImplementedError: if the method has no ``concept_maps``.
            ValueError: if they are not ``(N, k, h, w)``.
        """
        if not self.has_concept_maps:
            raise NotImplementedError(f"{self.label} has no concept_maps")
        maps = torch.as_tensor(self.fitted.concept_maps(model, layer, x)).detach()
        want = (int(x.shape[0]), self.n_concepts)
        if maps.ndim != 4 or tuple(maps.shape[:2]) != want:
            raise ValueError(
                f"{self.label}.concept_maps must return ({want[0]}, {want[1]}, h, w) "
                f"maps, got {tuple(maps.shape)}"
            )
        return _resized(maps.to(x.dtype), x)

    def fit_head(self, z: Tensor, y: Tensor) -> ConceptMethodModel:
        """Fit the least-squares head on ``encode(z)`` and ``y`` (``(N, 1)``),
        or on the method's own ``predict`` when it has one."""
        with torch.no_grad():
            e = self.encode(z)
            target = self.predict(e) if self.has_predict else y
            w, b = fit_linear_head(e, target)
            self.head_weight.copy_(w)
            self.head_bias.copy_(b)
        return self.eval()

    @classmethod
    def from_fitted(
        cls, fitted: Any, z: Tensor, y: Tensor, *, pooling: str = "avg", label: str
    ) -> ConceptMethodModel:
        r"""Check ``fitted`` on the pooled fit activations and wrap it.

        Args:
            fitted (FittedConcepts): what the method's ``fit`` returned.
            z (Tensor): pooled fit activations ``(N, D)``, float32.
            y (Tensor): class scores ``(N,)``.
            pooling (str, optional): pooling of ``z``. Default: "avg"
            label (str): the method's name in error messages.

        Returns:
            *ConceptMethodModel*: with its head fitted (eval mode).

        Raises:
            TypeError: if ``fitted`` has no ``encode``.
            ValueError: if ``encode``/``predict``/``decode`` give wrong shapes
                or non-finite values.
        """
        if not callable(getattr(fitted, "encode", None)):
            raise TypeError(
                f"{label}.fit(z, y, seed) must return an object with encode(z), "
                f"got {type(fitted).__name__}"
            )
        n, d = z.shape
        with torch.no_grad():
            e = fitted.encode(z)
            if not isinstance(e, Tensor) or e.ndim != 2 or e.shape[0] != n:
                shape = tuple(e.shape) if isinstance(e, Tensor) else type(e).__name__
                raise ValueError(
                    f"{label}: encode(z) must return a ({n}, k) tensor, got {shape}"
                )
            if not bool(torch.isfinite(e).all()):
                raise ValueError(f"{label}: encode(z) returned NaN or Inf values")
            if callable(getattr(fitted, "decode", None)):
                z_hat = fitted.decode(e.float())
                if not isinstance(z_hat, Tensor) or tuple(z_hat.shape) != (n, d):
                    raise ValueError(
                        f"{label}: decode(e) must return a ({n}, {d}) tensor, got "
                        f"{getattr(z_hat, 'shape', type(z_hat).__name__)}"
                    )
        model = cls(fitted, d, int(e.shape[1]), pooling, label)
        return model.fit_head(z, y.reshape(n, 1))


def _scores(y: Any, n: int, label: str) -> Tensor:
    """``(N,)`` or ``(N, 1)`` scores as ``(N, 1)``."""
    if not isinstance(y, Tensor) or y.shape not in ((n,), (n, 1)):
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"{label} must return ({n},) scores, got {shape}")
    return y.reshape(n, 1)


def _resized(maps: Tensor, x: Tensor) -> Tensor:
    """Maps resized (bilinear) to the spatial size of ``x``."""
    size = (int(x.shape[-2]), int(x.shape[-1]))
    if tuple(maps.shape[-2:]) == size:
        return maps
    return LayerAttribution.interpolate(maps, size, "bilinear")


def fit_concept_method(
    method: Any,
    z: Tensor,
    y: Tensor,
    seed: int,
    *,
    pooling: str = "avg",
    spatial: Tensor | None = None,
    label: str = "method",
) -> ConceptMethodModel:
    r"""Fit a concept method and wrap the result as a ``ConceptModel``.

    Args:
        method (ConceptMethod): the method.
        z (Tensor): pooled fit activations ``(N, D)``.
        y (Tensor): class scores ``(N,)``.
        seed (int): passed to ``method.fit``.
        pooling (str, optional): pooling of ``z``. Default: "avg"
        spatial (Tensor, optional): unpooled fit activations, passed to
            ``fit`` instead of ``z`` when the method has ``spatial = True``.
            Default: None
        label (str, optional): the method's name in error messages.
            Default: "method"

    Returns:
        *ConceptMethodModel*

    Raises:
        ValueError: if a spatial method gets no spatial activations, or as
            :meth:`ConceptMethodModel.from_fitted`.
    """
    data = z
    if getattr(method, "spatial", False):
        if spatial is None:
            raise ValueError(f"{label} needs the unpooled (N, C, h, w) activations")
        data = spatial
    fitted = method.fit(data, y, seed)
    return ConceptMethodModel.from_fitted(fitted, z, y, pooling=pooling, label=label)


def map_method_output(maps: Any, x: Tensor, label: str) -> Tensor:
    r"""Check a map method's output; return ``(N, H, W)`` maps at ``x``'s size.

    Args:
        maps (Any): the output, a tensor or array ``(N, H, W)`` or
            ``(N, C, H, W)`` (channels summed).
        x (Tensor): the images ``(N, C, H, W)`` the maps explain.
        label (str): the method's name in error messages.

    Returns:
        *Tensor*: ``(N, H, W)``, detached, ``x``'s dtype.

    Raises:
        ValueError: on another shape.
    """
    m = torch.as_tensor(maps).detach()
    n = int(x.shape[0])
    if m.ndim not in (3, 4) or m.shape[0] != n:
        raise ValueError(
            f"{label} must return ({n}, H, W) or ({n}, C, H, W) maps, got "
            f"{tuple(m.shape)}"
        )
    m = m.to(dtype=x.dtype, device=x.device)
    if m.ndim == 4:
        m = m.sum(dim=1)
    return _resized(m[:, None], x)[:, 0]
