#!/usr/bin/env python3
r"""SRAE as a Captum attribution method: one heatmap per x-feature.

:class:`SRAEAttribution` fits an XNN (an :class:`~captum_srae.SRAE`) on a layer
of a classifier and then explains inputs the way Qi, Khorram and Li draw it:
the few x-features of the layer, each one's contribution ``e_k·v_k`` to the
class score, and one heatmap per x-feature.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from captum.attr import GradientAttribution, LayerAttribution, LayerGradCam
from captum.log import log_usage
from torch import Tensor, nn

from captum_srae._atomic import PathLike, atomic_directory
from captum_srae._compat import (
    TargetType,
    _format_additional_forward_args,
    _format_output,
    _is_tuple,
)
from captum_srae.activations import collect_activations, pool_activations, resolve_layer
from captum_srae.activations import layer_name as _layer_name
from captum_srae.config import SRAEConfig
from captum_srae.excitation import excitation_maps
from captum_srae.heatmaps import (
    XFeatureModel,
    captum_maps,
    capture_layers,
    gradcam_maps,
    resize_maps,
)
from captum_srae.model import SRAE
from captum_srae.serialization import SRAEFormatError, read_json_file
from captum_srae.training import TrainingHistory, fit_srae

__all__ = ["NotFittedError", "SRAEAttribution", "SRAEExplanation"]

FORMAT_NAME = "captum-srae/attribution"
FORMAT_VERSION = 1
_FILE = "attribution.json"
_RELU_DEFAULT = ("gradcam", "excitation", LayerGradCam)


class NotFittedError(ValueError, AttributeError):
    """The explainer is used before :meth:`SRAEAttribution.fit`."""


@dataclasses.dataclass
class SRAEExplanation:
    r"""Everything :meth:`SRAEAttribution.explain` computes for a batch.

    Attributes:
        x_features (Tensor): ``e``, shape ``(N, n)``.
        weights (Tensor): each example's predictor weights ``v``, ``(N, n)``.
        bias (Tensor): each example's predictor bias ``b``, ``(N,)``.
        contributions (Tensor): ``e_k·v_k``, ``(N, n)``.
        model_score (Tensor): the model's score of the target, ``(N,)``.
        xnn_score (Tensor): the XNN's score ``Σ_k e_k v_k + b``, ``(N,)``.
        heatmaps (Tensor): one map per x-feature, ``(N, n, H, W)``.
        target (Tensor): the explained class of each example, ``(N,)``.
    """

    x_features: Tensor
    weights: Tensor
    bias: Tensor
    contributions: Tensor
    model_score: Tensor
    xnn_score: Tensor
    heatmaps: Tensor
    target: Tensor

    @property
    def ratios(self) -> Tensor:
        """``r_k = e_k v_k / max_j |e_j v_j|``, the panel labels of the paper."""
        top = self.contributions.abs().amax(dim=1, keepdim=True)
        return self.contributions / top.clamp_min(torch.finfo(top.dtype).tiny)


class SRAEAttribution(LayerAttribution, GradientAttribution):
    r"""Explain a classifier's score with the x-features of an SRAE (XNN) fitted
    on ``layer`` (Qi, Khorram and Li, https://arxiv.org/abs/1709.05360), and
    draw one heatmap per x-feature.

    An estimator: ``__init__`` only stores its arguments, :meth:`fit` fits the
    explanation network(s) and sets ``sraes_``, ``history_``, ``targets_``,
    ``per_class_``, ``layer_shape_``, ``n_outputs_``; :meth:`attribute` then
    returns maps ``(N, n_concepts, H, W)``, or the class-level map
    ``(N, 1, H, W)`` with ``output="class"``.

    Args:
        forward_func (nn.Module or Callable): the classifier, returning scores
            ``(N, C)``. It must be an ``nn.Module`` when ``layer`` is a name,
            and for :meth:`fit`.
        layer (nn.Module or str): the explained layer, a module of
            ``forward_func`` or its dotted name (e.g. ``"layer4"``); resolved
            at each call, so TCAV may reassign ``.layer``.
        heatmap_layer (nn.Module or str, optional): the spatial layer at which
            heatmaps are drawn. Default: None (``layer``)
        config (SRAEConfig, optional): the SRAE hyperparameters.
            Default: None (``SRAEConfig()``)
        device_ids (list[int], optional): device ids of a ``DataParallel``
            ``forward_func``, as in Captum. Default: None

    Examples::

        >>> sa = SRAEAttribution(net, "layer4", config=SRAEConfig(n_concepts=5))
        >>> sa.fit(train_loader, target=3)
        >>> maps = sa.attribute(images, target=3)  # (N, 5, 224, 224)
        >>> cls_map = sa.attribute(images, target=3, output="class")
    """

    def __init__(
        self,
        forward_func: Callable[..., Tensor],
        layer: nn.Module | str,
        heatmap_layer: nn.Module | str | None = None,
        config: SRAEConfig | None = None,
        device_ids: list[int] | None = None,
    ) -> None:
        LayerAttribution.__init__(self, forward_func, layer, device_ids)  # type: ignore[arg-type]
        GradientAttribution.__init__(self, forward_func)
        self.heatmap_layer = heatmap_layer
        self.config = config

    @classmethod
    def get_name(cls) -> str:
        """The readable name of the method, ``"SRAE"``."""
        return "SRAE"

    # ------------------------------------------------------------- helpers
    def _resolve(self, layer: nn.Module | str, arg: str) -> nn.Module:
        model = self.forward_func
        if isinstance(model, nn.Module):
            try:
                return resolve_layer(model, layer)
            except ValueError as exc:
                raise ValueError(f"{arg}: {exc}") from None
        if isinstance(layer, nn.Module):
            return layer
        raise TypeError(
            f"{arg} is a name ({layer!r}) but forward_func is not an nn.Module; "
            "pass the module itself"
        )

    def _modules(self) -> tuple[nn.Module, nn.Module]:
        module = self._resolve(self.layer, "layer")
        hm = self.heatmap_layer
        return module, module if hm is None else self._resolve(hm, "heatmap_layer")

    def _check_fitted(self) -> None:
        if not hasattr(self, "sraes_"):
            raise NotFittedError(
                "this SRAEAttribution is not fitted yet: call fit(data, target) "
                "before attribute, contributions, concepts or explain"
            )

    def _device(self) -> torch.device | None:
        model = self.forward_func
        if isinstance(model, nn.Module):
            p = next(model.parameters(), None)
            return None if p is None else p.device
        return None

    def _inputs(self, inputs: Any) -> tuple[Tensor, ...]:
        tup = inputs if isinstance(inputs, tuple) else (inputs,)
        if not tup or not all(isinstance(t, Tensor) for t in tup):
            raise TypeError("inputs must be a Tensor or a tuple of Tensors")
        if any(t.ndim == 0 for t in tup) or len({t.shape[0] for t in tup}) > 1:
            raise ValueError("inputs must share a batch dimension (dim 0)")
        dev = self._device()
        if dev is not None and any(t.device != dev for t in tup):
            raise ValueError(
                f"inputs are on device {tup[0].device} but forward_func's parameters "
                f"are on device {dev}; move them with inputs.to({str(dev)!r})"
            )
        return tup

    def _targets(self, target: TargetType, n: int) -> Tensor:
        """The fitted class explained for each of the ``n`` examples."""
        fitted = self.targets_
        if target is None:
            if len(fitted) != 1:
                raise ValueError(
                    f"target is required: this explainer was fitted for {fitted}"
                )
            target = fitted[0]
        if isinstance(target, Tensor):
            target = target.tolist()
        if isinstance(target, (list, tuple)):
            if isinstance(target, tuple) or len(target) != n:
                raise ValueError(
                    f"target must be an int or a list/1-D tensor of {n} ints (one "
                    f"per example), got {target!r}"
                )
            items = list(target)
        else:
            items = [target] * n
        for t in items:
            if isinstance(t, bool) or not isinstance(t, int):
                raise TypeError(f"target must hold ints, got {t!r}")
            if self.n_outputs_ is not None and not 0 <= t < self.n_outputs_:
                raise ValueError(
                    f"target {t} is out of range for a model with "
                    f"{self.n_outputs_} outputs"
                )
            if t not in self.sraes_:
                raise ValueError(
                    f"target {t} was not fitted; fitted targets: {fitted} "
                    "(fit again with this target)"
                )
        return torch.tensor(items, dtype=torch.long)

    def _concepts(self, concepts: Sequence[int] | None) -> list[int]:
        n = self.n_concepts_
        if concepts is None:
            return list(range(n))
        ks = [concepts] if isinstance(concepts, int) else list(concepts)
        bad = [k for k in ks if isinstance(k, bool) or not isinstance(k, int)]
        bad += [k for k in ks if isinstance(k, int) and not 0 <= k < n]
        if not ks or bad:
            raise ValueError(
                f"concepts must be indices in [0, {n}) of the {n} x-features, got "
                f"{concepts!r}"
            )
        return ks

    def _groups(self, tgt: Tensor) -> list[tuple[Tensor, SRAE, int]]:
        """(example indices, SRAE, output column) per explained class."""
        out = []
        for t in sorted(set(tgt.tolist())):
            srae = self.sraes_[t]
            column = self.targets_.index(t) if not self.per_class_ else 0
            out.append(((tgt == t).nonzero().flatten(), srae, column))
        return out

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        data: Any,
        target: int | Sequence[int] | None = None,
        *,
        per_class: bool = True,
        batch_size: int = 64,
        show_progress: bool = True,
        additional_forward_args: Any = None,
    ) -> SRAEAttribution:
        r"""Collect the layer's activations over ``data`` and fit the XNN(s).

        Args:
            data (Tensor, DataLoader or iterable): the inputs; see
                :func:`~captum_srae.iter_input_batches` (labels are ignored).
            target (int, list of int or None, optional): one class (the
                paper's one-vs-all XNN), several, or None for all classes.
                Default: None
            per_class (bool, optional): one XNN per class; False fits one shared
                XNN whose predictor has one output per class. Default: True
            batch_size (int, optional): chunk size for Tensor data. Default: 64
            show_progress (bool, optional): progress bars. Default: True
            additional_forward_args (Any, optional): extra model arguments,
                the same for every batch. Default: None

        Returns:
            *SRAEAttribution*: ``self``, with ``sraes_`` (class → SRAE),
            ``history_`` (class → TrainingHistory), ``targets_``,
            ``per_class_``, ``layer_shape_``, ``n_outputs_``, ``n_concepts_``.
        """
        model = self.forward_func
        if not isinstance(model, nn.Module):
            raise TypeError("fit needs forward_func to be an nn.Module")
        if isinstance(target, Tensor):
            target = target.tolist()
        module = self._resolve(self.layer, "layer")
        config = self.config if self.config is not None else SRAEConfig()
        shapes: dict[str, tuple[int, ...]] = {}

        def record(key: str) -> Callable[..., None]:
            def hook(_m: nn.Module, _i: Any, out: Any) -> None:
                if isinstance(out, Tensor) and out.ndim >= 1:
                    shapes.setdefault(key, tuple(out.shape[1:]))

            return hook

        handles = [module.register_forward_hook(record("layer"))]
        handles.append(model.register_forward_hook(record("out")))
        try:
            z, y = collect_activations(
                model,
                module,
                data,
                target,
                pooling=config.pooling,
                additional_forward_args=additional_forward_args,
                batch_size=batch_size,
                show_progress=show_progress,
            )
        except RuntimeError as exc:
            raise ValueError(f"data do not fit forward_func: {exc}") from exc
        finally:
            for handle in handles:
                handle.remove()
        n_out = shapes["out"][0] if len(shapes.get("out", ())) == 1 else None
        if target is None:
            targets = list(range(y.shape[1]))
        else:
            targets = [target] if isinstance(target, int) else list(target)
        if len(set(targets)) != len(targets):
            raise ValueError(f"target holds repeated classes: {targets}")
        dev = self._device()
        kw: dict[str, Any] = {"show_progress": show_progress, "device": dev}
        if per_class or len(targets) == 1:
            fits = {
                t: fit_srae(z, y[:, j], config, **kw) for j, t in enumerate(targets)
            }
        else:
            shared = fit_srae(z, y, config, **kw)
            fits = dict.fromkeys(targets, shared)
        self._set_fitted(
            {t: f[0] for t, f in fits.items()},
            targets,
            per_class or len(targets) == 1,
            shapes["layer"],
            n_out,
        )
        self.history_: dict[int, TrainingHistory] = {t: f[1] for t, f in fits.items()}
        return self

    def _set_fitted(
        self,
        sraes: dict[int, SRAE],
        targets: list[int],
        per_class: bool,
        layer_shape: Sequence[int],
        n_outputs: int | None,
    ) -> None:
        self.sraes_ = {t: s.eval() for t, s in sraes.items()}
        self.targets_ = list(targets)
        self.per_class_ = per_class
        self.layer_shape_ = tuple(layer_shape)
        self.n_outputs_ = n_outputs
        self.n_concepts_ = next(iter(sraes.values())).n_concepts
        model = self.forward_func
        self.layer_name_ = (
            _layer_name(model, self._resolve(self.layer, "layer"))
            if isinstance(model, nn.Module)
            else None
        )

    @classmethod
    def from_sraes(
        cls,
        forward_func: Callable[..., Tensor],
        layer: nn.Module | str,
        sraes: dict[int, SRAE] | SRAE,
        targets: Sequence[int] | None = None,
        *,
        heatmap_layer: nn.Module | str | None = None,
        layer_shape: Sequence[int] = (),
        n_outputs: int | None = None,
    ) -> SRAEAttribution:
        r"""Build a fitted explainer from SRAEs trained elsewhere (or hand-set).

        Args:
            forward_func (nn.Module or Callable): the classifier.
            layer (nn.Module or str): the layer the SRAEs were fitted on.
            sraes (dict[int, SRAE] or SRAE): one SRAE per class, or one shared
                SRAE whose ``n_outputs`` columns explain ``targets``.
            targets (Sequence[int], optional): the classes of a shared SRAE.
                Default: None (``range(n_outputs)``)
            heatmap_layer (nn.Module or str, optional): see the class.
                Default: None
            layer_shape (Sequence[int], optional): the layer's output shape
                without the batch dimension. Default: ()
            n_outputs (int, optional): the model's number of classes (for
                range checks). Default: None

        Returns:
            *SRAEAttribution*: the fitted explainer.
        """
        if isinstance(sraes, SRAE):
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
        explainer._set_fitted(table, ts, per_class, layer_shape, n_outputs)
        explainer.history_ = {}
        return explainer

    # ------------------------------------------------------------ attribute
    def _capture(
        self, inputs: tuple, extra: tuple, module: nn.Module, hm: nn.Module
    ) -> tuple[dict[str, Tensor], Any]:
        mods = (
            {"layer": module}
            if hm is module
            else {"layer": module, "heatmap_layer": hm}
        )
        return capture_layers(self.forward_func, mods, inputs, extra)

    @staticmethod
    def _encode(a: Tensor, srae: SRAE, column: int) -> tuple[Tensor, Tensor]:
        """x-features and contributions of one group's layer output."""
        with torch.no_grad():
            e = srae.encode(
                pool_activations(a.to(srae.z_mean.dtype), srae.config.pooling)
            )
            return e, e * srae.weight[column]

    def _maps(
        self,
        inputs: tuple[Tensor, ...],
        extra: tuple,
        srae: SRAE,
        method: Any,
        ks: list[int],
        acts: dict[str, Tensor],
        modules: tuple[nn.Module, nn.Module],
        attribution_kwargs: dict[str, Any] | None,
    ) -> tuple[tuple[Tensor, ...], bool]:
        """Maps ``(N, len(ks), ...)`` per returned tensor; whether in layer space."""
        module, hm = modules
        pooling = srae.config.pooling
        hm_act = acts.get("heatmap_layer", acts["layer"])
        spatial_needed = method in ("gradcam", "excitation") or (
            isinstance(method, type) and issubclass(method, LayerAttribution)
        )
        if spatial_needed and hm_act.ndim < 3:
            which = "heatmap_layer" if "heatmap_layer" in acts else "layer"
            raise ValueError(
                f"{which} output of shape {tuple(hm_act.shape)} is not spatial "
                "(N, C, H, W); pass a convolutional heatmap_layer"
            )
        if method == "gradcam":
            if hm is module and pooling == "avg" and not attribution_kwargs:
                return (gradcam_maps(acts["layer"], srae, ks),), True
            method = LayerGradCam
        if method == "excitation":
            kwargs = dict(attribution_kwargs or {})
            contrastive = bool(kwargs.pop("contrastive", False))
            if kwargs:
                raise ValueError(
                    f"attribution_kwargs for excitation accept only 'contrastive', "
                    f"got {sorted(kwargs)}"
                )
            maps = excitation_maps(
                self.forward_func,
                module,
                srae,
                inputs,
                extra,
                heatmap_layer=hm,
                pooling=pooling,
                concepts=ks,
                contrastive=contrastive,
                activation=acts["layer"] if hm is module else None,
            )
            return (maps,), True
        xmodel = XFeatureModel(self.forward_func, module, srae, pooling, ks)
        return captum_maps(
            method, xmodel, inputs, extra, len(ks), hm, attribution_kwargs
        )

    @log_usage()
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetType = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        *,
        method: str | type = "gradcam",
        output: str = "concepts",
        concepts: Sequence[int] | None = None,
        interpolate: bool | str | Sequence[int] = True,
        relu_attributions: bool | None = None,
        internal_batch_size: int | None = None,
        attribution_kwargs: dict[str, Any] | None = None,
    ) -> Tensor | tuple[Tensor, ...]:
        r"""One heatmap per x-feature, or the class-level map.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): the model's inputs, batch
                first. A tuple gives a tuple of attributions.
            target (int, list[int] or Tensor, optional): the explained class,
                one for all examples or one per example (a list or 1-D tensor
                of length N); it must be a fitted class. Default: None (the
                only fitted class)
            additional_forward_args (Any, optional): extra model arguments
                passed after the inputs. Default: None
            attribute_to_layer_input (bool, optional): kept for Captum's call
                signature (TCAV passes it); the SRAE explains the layer's
                output, so only False is accepted. Default: False
            method (str or type, optional): ``"gradcam"`` (Grad-CAM of each
                x-feature, in closed form at the layer), ``"excitation"``
                (Excitation Backprop; ``attribution_kwargs={"contrastive":
                True}`` for its contrastive variant), or a Captum attribution
                class run on :class:`~captum_srae.heatmaps.XFeatureModel` with
                ``target=k`` (a layer class at ``heatmap_layer``; a primary
                class gives input-shaped maps summed over channels).
                Default: "gradcam"
            output (str, optional): ``"concepts"`` for ``(N, n, H, W)``, or
                ``"class"`` for ``(N, 1, H, W)`` = ``Σ_k e_k v_k · map_k``.
                Default: "concepts"
            concepts (Sequence[int], optional): the x-features to map, in this
                order. Default: None (all)
            interpolate (bool, str or Sequence[int], optional): True resizes
                layer maps to the input's spatial size (bilinear); False or
                ``"layer"`` keeps the layer's size; a size resizes to it.
                Default: True
            relu_attributions (bool, optional): ReLU each x-feature map.
                Default: None (True for "gradcam", "excitation" and
                ``LayerGradCam``, False otherwise)
            internal_batch_size (int, optional): examples per forward pass.
                Default: None (all)
            attribution_kwargs (dict, optional): extra arguments of the
                method's ``attribute`` (e.g. ``{"n_steps": 20}``). Default: None

        Returns:
            *Tensor* or *tuple[Tensor, ...]* of **attributions**:
            - **attributions** (*Tensor*): ``(N, n, H, W)`` or ``(N, 1, H, W)``;
              a 1-tuple for tuple inputs (one per input for primary methods).

        Examples::

            >>> maps = sa.attribute(x, target=3)                   # (N, n, H, W)
            >>> ig = sa.attribute(x, target=3, method=IntegratedGradients)
            >>> cls = sa.attribute(x, target=3, output="class")    # (N, 1, H, W)
        """
        self._check_fitted()
        if attribute_to_layer_input:
            raise ValueError(
                "attribute_to_layer_input=True is not supported: the SRAE was "
                "fitted on the layer's output"
            )
        is_tuple = _is_tuple(inputs)
        tup = self._inputs(inputs)
        extra = _format_additional_forward_args(additional_forward_args) or ()
        if output not in ("concepts", "class"):
            raise ValueError(f"output must be 'concepts' or 'class', got {output!r}")
        if isinstance(method, str) and method not in ("gradcam", "excitation"):
            raise ValueError(
                f"method must be 'gradcam', 'excitation' or a Captum attribution "
                f"class, got {method!r}"
            )
        if interpolate not in (True, False, "layer") and not (
            isinstance(interpolate, (tuple, list))
            and all(isinstance(s, int) and s > 0 for s in interpolate)
        ):
            raise ValueError(
                "interpolate must be True, False, 'layer' or a size, got "
                f"{interpolate!r}"
            )
        n = tup[0].shape[0]
        if n == 0:
            raise ValueError("inputs must hold at least one example")
        size = n if internal_batch_size is None else int(internal_batch_size)
        if size < 1:
            raise ValueError(f"internal_batch_size must be positive, got {size}")
        tgt = self._targets(target, n)
        ks = self._concepts(concepts)
        relu = relu_attributions
        if relu is None:
            relu = any(method is m or method == m for m in _RELU_DEFAULT)
        modules = self._modules()
        results: list[Tensor] = []
        for start in range(0, n, size):
            for idx, srae, col in self._groups(tgt[start : start + size]):
                idx = idx + start
                sub = tuple(t[idx] for t in tup)
                sub_extra = tuple(
                    a[idx]
                    if isinstance(a, Tensor) and a.ndim and a.shape[0] == n > 1
                    else a
                    for a in extra
                )
                acts, _ = self._capture(sub, sub_extra, *modules)
                maps, layer_space = self._maps(
                    sub, sub_extra, srae, method, ks, acts, modules, attribution_kwargs
                )
                maps = tuple(m.clamp_min(0) if relu else m for m in maps)
                if output == "class":
                    c = self._encode(acts["layer"], srae, col)[1][:, ks]
                    maps = tuple(
                        (m * c.reshape(c.shape + (1,) * (m.ndim - 2))).sum(
                            1, keepdim=True
                        )
                        for m in maps
                    )
                if layer_space and interpolate not in (False, "layer"):
                    maps = tuple(self._resize(m, tup[0], interpolate) for m in maps)
                if not results:
                    results = [m.new_zeros((n,) + m.shape[1:]) for m in maps]
                for res, m in zip(results, maps, strict=True):
                    res[idx] = m.to(res.dtype)
        return _format_output(is_tuple, tuple(results))

    @staticmethod
    def _resize(maps: Tensor, first_input: Tensor, interpolate: Any) -> Tensor:
        if interpolate is True:
            if first_input.ndim < maps.ndim:
                raise ValueError(
                    f"inputs of shape {tuple(first_input.shape)} have no spatial size "
                    f"for maps of shape {tuple(maps.shape)}; pass interpolate='layer'"
                )
            interpolate = first_input.shape[2 - maps.ndim :]
        return resize_maps(maps, interpolate)

    # ------------------------------------------------------ x-features, scores
    def _scores(
        self, inputs: Any, target: TargetType, additional_forward_args: Any
    ) -> dict[str, Tensor]:
        """Per-example x-features, weights, bias, contributions and scores."""
        self._check_fitted()
        tup = self._inputs(inputs)
        extra = _format_additional_forward_args(additional_forward_args) or ()
        n = tup[0].shape[0]
        tgt = self._targets(target, n)
        module = self._resolve(self.layer, "layer")
        acts, out = self._capture(tup, extra, module, module)
        parts: dict[str, list[tuple[Tensor, Tensor]]] = {}
        for idx, srae, col in self._groups(tgt):
            e, c = self._encode(acts["layer"][idx], srae, col)
            w = srae.weight[col].detach().expand_as(e)
            b = srae.bias[col].detach().expand(e.shape[0])
            for key, val in (("e", e), ("w", w), ("b", b), ("c", c)):
                parts.setdefault(key, []).append((idx, val))
        res = {}
        for key, items in parts.items():
            full = items[0][1].new_zeros((n,) + items[0][1].shape[1:])
            for idx, val in items:
                full[idx] = val
            res[key] = full
        res["xnn"] = res["c"].sum(dim=1) + res["b"]
        if isinstance(out, Tensor) and out.ndim == 2:
            res["model"] = out.detach()[torch.arange(n), tgt.to(out.device)]
        else:
            res["model"] = torch.full((n,), float("nan"))
        res["target"] = tgt
        return res

    def contributions(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetType = None,
        additional_forward_args: Any = None,
    ) -> Tensor:
        r"""Each x-feature's contribution ``e_k·v_k`` to the target's score.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): the inputs.
            target (int, list[int] or Tensor, optional): as in
                :meth:`attribute`. Default: None
            additional_forward_args (Any, optional): extra model arguments.
                Default: None

        Returns:
            *Tensor*: shape ``(N, n_concepts)``; with the SRAE's bias they sum
            to the XNN's reconstruction of the score.
        """
        return self._scores(inputs, target, additional_forward_args)["c"]

    def concepts(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetType = None,
        additional_forward_args: Any = None,
    ) -> Tensor:
        r"""The x-features ``e`` of the inputs, shape ``(N, n_concepts)``.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): the inputs.
            target (int, list[int] or Tensor, optional): selects the XNN when
                one was fitted per class. Default: None
            additional_forward_args (Any, optional): extra model arguments.
                Default: None
        """
        return self._scores(inputs, target, additional_forward_args)["e"]

    def explain(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetType = None,
        additional_forward_args: Any = None,
        **attribute_kwargs: Any,
    ) -> SRAEExplanation:
        r"""x-features, contributions, scores and heatmaps in one object.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): the inputs.
            target (int, list[int] or Tensor, optional): as in
                :meth:`attribute`. Default: None
            additional_forward_args (Any, optional): extra model arguments.
                Default: None
            **attribute_kwargs: passed to :meth:`attribute` (``method``,
                ``interpolate``, ...).

        Returns:
            *SRAEExplanation*: the explanation of every example.

        Examples::

            >>> ex = sa.explain(x, target=3)
            >>> ex.contributions.sum(1) + ex.bias  # == ex.xnn_score
        """
        s = self._scores(inputs, target, additional_forward_args)
        maps = self.attribute(
            inputs, target, additional_forward_args, **attribute_kwargs
        )
        return SRAEExplanation(
            x_features=s["e"],
            weights=s["w"],
            bias=s["b"],
            contributions=s["c"],
            model_score=s["model"],
            xnn_score=s["xnn"],
            heatmaps=maps[0] if isinstance(maps, tuple) else maps,
            target=s["target"],
        )

    # ---------------------------------------------------------- persistence
    def save(self, path: PathLike) -> None:
        r"""Save the fitted XNN(s) to a folder, atomically and without pickle.

        The folder holds ``attribution.json`` (targets, layer name, per-class
        flag, format version) and one SRAE save (``config.json`` +
        ``weights.safetensors``) per class (``class_<t>``), or ``shared``.

        Args:
            path (str or PathLike): the folder; a previous save is replaced.
        """
        self._check_fitted()
        doc = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "targets": self.targets_,
            "per_class": self.per_class_,
            "layer": self.layer_name_,
            "layer_shape": list(self.layer_shape_),
            "n_outputs": self.n_outputs_,
        }
        with atomic_directory(path) as tmp:
            if self.per_class_:
                for t in self.targets_:
                    self.sraes_[t].save(tmp / f"class_{t}")
            else:
                self.sraes_[self.targets_[0]].save(tmp / "shared")
            text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
            (tmp / _FILE).write_text(text, encoding="utf-8")

    @classmethod
    def load(
        cls,
        path: PathLike,
        forward_func: Callable[..., Tensor],
        layer: nn.Module | str | None = None,
        heatmap_layer: nn.Module | str | None = None,
    ) -> SRAEAttribution:
        r"""Load an explainer written by :meth:`save` (JSON and safetensors only).

        Args:
            path (str or PathLike): the folder.
            forward_func (nn.Module or Callable): the explained model.
            layer (nn.Module or str, optional): the explained layer.
                Default: None (the saved layer name)
            heatmap_layer (nn.Module or str, optional): see the class.
                Default: None

        Returns:
            *SRAEAttribution*: the fitted explainer (``history_`` is empty),
            its SRAEs on the model's device.

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
        explainer = cls(forward_func, layer, heatmap_layer)
        dev = explainer._device() or torch.device("cpu")
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
