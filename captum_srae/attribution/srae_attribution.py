#!/usr/bin/env python3
r"""SRAE as a Captum attribution method: one heatmap per x-feature.

:class:`SRAEAttribution` fits an XNN (an :class:`~captum_srae.SRAE`) on a layer
of a classifier and then explains inputs the way Qi, Khorram and Li draw it:
the few x-features of the layer, each one's contribution ``e_k·v_k`` to the
class score, and one heatmap per x-feature.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from captum.attr import GradientAttribution, LayerAttribution, LayerGradCam
from captum.log import log_usage
from torch import Tensor, nn

from captum_srae.attribution import fitting, persistence
from captum_srae.attribution import maps as srae_maps
from captum_srae.attribution.checks import (
    check_attribute_options,
    check_concepts,
    check_fitted,
    check_inputs,
    check_targets,
    group_targets,
    model_device,
    resolve_module,
)
from captum_srae.attribution.explanation import NotFittedError, SRAEExplanation
from captum_srae.attribution.persistence import FORMAT_NAME as FORMAT_NAME
from captum_srae.attribution.persistence import FORMAT_VERSION as FORMAT_VERSION
from captum_srae.core.config import SRAEConfig
from captum_srae.core.model import SRAE
from captum_srae.utils.atomic import PathLike
from captum_srae.utils.captum_compat import (
    TargetType,
    _format_additional_forward_args,
    _format_output,
    _is_tuple,
)

__all__ = ["NotFittedError", "SRAEAttribution", "SRAEExplanation"]

_RELU_DEFAULT = ("gradcam", "excitation", LayerGradCam)


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
        return resolve_module(self.forward_func, layer, arg)

    def _modules(self) -> tuple[nn.Module, nn.Module]:
        module = self._resolve(self.layer, "layer")
        hm = self.heatmap_layer
        return module, module if hm is None else self._resolve(hm, "heatmap_layer")

    def _targets(self, target: TargetType, n: int) -> Tensor:
        """The fitted class explained for each of the ``n`` examples."""
        return check_targets(target, n, self.targets_, self.sraes_, self.n_outputs_)

    def _groups(self, tgt: Tensor) -> list[tuple[Tensor, SRAE, int]]:
        """(example indices, SRAE, output column) per explained class."""
        return group_targets(tgt, self.sraes_, self.targets_, self.per_class_)

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
        fitting.fit_attribution(
            self,
            data,
            target,
            per_class=per_class,
            batch_size=batch_size,
            show_progress=show_progress,
            additional_forward_args=additional_forward_args,
        )
        return self

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
        return persistence.from_sraes(
            cls,
            forward_func,
            layer,
            sraes,
            targets,
            heatmap_layer,
            layer_shape,
            n_outputs,
        )

    # ------------------------------------------------------------ attribute
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
                class run on :class:`~captum_srae.attribution.heatmaps.XFeatureModel` with
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
        check_fitted(self)
        if attribute_to_layer_input:
            raise ValueError(
                "attribute_to_layer_input=True is not supported: the SRAE was "
                "fitted on the layer's output"
            )
        is_tuple = _is_tuple(inputs)
        tup = check_inputs(inputs, model_device(self.forward_func))
        extra = _format_additional_forward_args(additional_forward_args) or ()
        check_attribute_options(output, method, interpolate)
        n = tup[0].shape[0]
        if n == 0:
            raise ValueError("inputs must hold at least one example")
        size = n if internal_batch_size is None else int(internal_batch_size)
        if size < 1:
            raise ValueError(f"internal_batch_size must be positive, got {size}")
        tgt = self._targets(target, n)
        ks = check_concepts(concepts, self.n_concepts_)
        relu = relu_attributions
        if relu is None:
            relu = any(method is m or method == m for m in _RELU_DEFAULT)
        maps = srae_maps.attribute_maps(
            self,
            tup,
            extra,
            tgt,
            ks,
            method=method,
            output=output,
            interpolate=interpolate,
            relu=relu,
            size=size,
            attribution_kwargs=attribution_kwargs,
        )
        return _format_output(is_tuple, maps)

    # ------------------------------------------------------ x-features, scores
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
        return srae_maps.scores(self, inputs, target, additional_forward_args)["c"]

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
        return srae_maps.scores(self, inputs, target, additional_forward_args)["e"]

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
        s = srae_maps.scores(self, inputs, target, additional_forward_args)
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
        persistence.save_attribution(self, path)

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
        return persistence.load_attribution(
            cls, path, forward_func, layer, heatmap_layer
        )
