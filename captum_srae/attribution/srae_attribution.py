#!/usr/bin/env python3
r"""SRAE as a Captum attribution method: one heatmap per x-feature.

:class:`SRAEAttribution` fits an XNN (an :class:`~captum_srae.SRAE`) on a layer
of a classifier and then explains inputs the way Qi, Khorram and Li draw it:
the few x-features of the layer, each one's contribution ``e_k·v_k`` to the
class score, and one heatmap per x-feature.

The class only checks arguments and holds the fitted state
(:class:`~captum_srae.attribution.fitted.FittedXNNs`); the work is done by
free functions that receive that state: :mod:`~captum_srae.attribution.fitting`,
:mod:`~captum_srae.attribution.maps` and
:mod:`~captum_srae.attribution.persistence`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from captum.attr import GradientAttribution, LayerAttribution
from captum.log import log_usage
from torch import Tensor, nn

from captum_srae.activations import layer_name
from captum_srae.attribution.checks import (
    check_inputs,
    check_map_method,
    map_options,
    model_device,
    resolve_module,
)
from captum_srae.attribution.explanation import NotFittedError, SRAEExplanation
from captum_srae.attribution.fitted import FittedXNNs
from captum_srae.attribution.fitting import fit_xnns
from captum_srae.attribution.maps import attribute_maps, scores
from captum_srae.attribution.persistence import FORMAT_NAME as FORMAT_NAME
from captum_srae.attribution.persistence import FORMAT_VERSION as FORMAT_VERSION
from captum_srae.attribution.persistence import load_xnns, save_xnns
from captum_srae.attribution.smoothing import check_smoothing
from captum_srae.attribution.text import check_sequences, check_token_ids
from captum_srae.core.config import SRAEConfig
from captum_srae.core.model import SRAE
from captum_srae.training import TrainingHistory
from captum_srae.training.jobs import resolve_n_jobs
from captum_srae.utils.atomic import PathLike
from captum_srae.utils.captum_compat import (
    TargetType,
    format_additional_forward_args,
    format_output,
    is_tuple,
)
from captum_srae.utils.validation import check_bool

__all__ = ["NotFittedError", "SRAEAttribution", "SRAEExplanation"]

Inputs = Tensor | tuple[Tensor, ...]


class SRAEAttribution(LayerAttribution, GradientAttribution):
    r"""Explain a classifier's score with the x-features of an SRAE (XNN) fitted
    on ``layer`` (Qi, Khorram and Li, https://arxiv.org/abs/1709.05360), and
    draw one heatmap per x-feature.

    An estimator: ``__init__`` only stores its arguments, :meth:`fit` fits the
    explanation network(s) and sets ``sraes_``, ``history_``, ``targets_``,
    ``per_class_``, ``layer_shape_``, ``n_outputs_``, ``n_concepts_``,
    ``layer_name_`` and ``fit_activations_`` (reading one before raises
    :class:`NotFittedError`);
    :meth:`attribute` then returns maps ``(N, n_concepts, H, W)``, or the
    class-level map ``(N, 1, H, W)`` with ``output="class"``.

    **Token layers.** A vision transformer block ``(N, T, D)`` is explained
    with a token pooling, ``SRAEConfig(pooling="cls")``, ``"mean"`` or
    ``"mean_patches"``; its "gradcam" maps are Grad-CAM's closed form over
    the tokens (:func:`~captum_srae.attribution.tokens.token_maps`), laid on
    the patch grid ``√P × √P`` (the class token dropped) and resized as for
    a CNN; ``interpolate=False`` keeps the grid. When the ``T`` tokens are
    neither ``P`` nor ``1 + P`` for a square ``P``, ``interpolate=False``
    returns the maps over the tokens ``(N, n, T)`` and resizing raises a
    ValueError. ``heatmap_layer`` may be an earlier token layer (maps by
    :func:`~captum_srae.attribution.tokens.token_layer_maps`: Grad-CAM over
    its tokens for "gradcam", a Captum layer method's attribution summed
    over the width) or a convolutional one (as for a CNN). A channels-last
    ``(N, H, W, C)`` layer (Swin) is refused:
    use a layer with ``(N, C, H, W)`` output. A text classifier takes token
    ids ``(N, T)`` (its attention mask as ``additional_forward_args=(mask,)``);
    ``interpolate="tokens"`` returns the maps over the tokens ``(N, n, T)``
    for any ``T``.

    The first arguments are those of Captum's ``LayerGradCam``; the others are
    keyword-only. Errors raised by ``forward_func`` itself (CUDA out of
    memory, a device mismatch, a bug in its forward) reach the caller with
    their type and message.

    **Early exit.** Passes that need only the layer's output (the maps of
    :meth:`attribute`) stop right after the layer's last call: the layers
    after it cannot change the x-features. The number of calls of the layer
    per pass is learned on the first, complete pass. Pass
    ``early_exit=False`` when the model's forward has side effects after the
    layer (counters, caches, logging) or calls the layer a number of times
    that changes from input to input; every pass then runs the whole model.
    :meth:`fit`, :meth:`contributions`, :meth:`concepts` and
    :meth:`explain`'s scores always run the whole model (they need its
    output); Excitation Backprop to a lower ``heatmap_layer`` evaluates the
    traced graph only up to the layer, whatever ``early_exit`` says.

    Args:
        forward_func (nn.Module or Callable): the classifier, returning scores
            ``(N, C)``. It must be an ``nn.Module`` when ``layer`` is a name,
            and for :meth:`fit`.
        layer (nn.Module or str): the explained layer, a module of
            ``forward_func`` or its dotted name (e.g. ``"layer4"``); resolved
            at each call, so TCAV may reassign ``.layer``.
        device_ids (list[int], optional): device ids of a ``DataParallel``
            ``forward_func``, as in Captum. Default: None
        heatmap_layer (nn.Module or str, optional): the spatial or token
            layer at which heatmaps are drawn. Default: None (``layer``)
        map_method (str or type, optional): the default ``method`` of
            :meth:`attribute` (and :meth:`explain`). Default: "gradcam"
        map_smoothing (float, optional): the default ``smoothing`` of
            :meth:`attribute`. Default: 0.0
        config (SRAEConfig, optional): the SRAE hyperparameters.
            Default: None (``SRAEConfig()``)
        early_exit (bool, optional): stop the passes of :meth:`attribute`
            after the layer (see above). Default: True

    Raises:
        TypeError: if ``config`` is not an :class:`~captum_srae.SRAEConfig`
            or ``early_exit`` is not a bool.

    Examples::

        >>> sa = SRAEAttribution(net, "layer4", config=SRAEConfig(n_concepts=5))
        >>> sa.fit(train_loader, target=3)
        >>> maps = sa.attribute(images, target=3)  # (N, 5, 224, 224)
        >>> cls_map = sa.attribute(images, target=3, output="class")
        >>> side_effects = SRAEAttribution(net, "layer4", early_exit=False)
        >>> fine = SRAEAttribution(net, "layer4", heatmap_layer="layer1",
        ...     map_method="LayerGradientXActivation", map_smoothing=2.0)
    """

    def __init__(
        self,
        forward_func: Callable[..., Tensor],
        layer: nn.Module | str,
        device_ids: list[int] | None = None,
        *,
        heatmap_layer: nn.Module | str | None = None,
        map_method: str | type = "gradcam",
        map_smoothing: float = 0.0,
        config: SRAEConfig | None = None,
        early_exit: bool = True,
    ) -> None:
        if config is not None and not isinstance(config, SRAEConfig):
            raise TypeError(
                f"config must be an SRAEConfig or None, got {type(config).__name__}"
            )
        check_bool(early_exit, "early_exit")
        map_smoothing = check_smoothing(map_smoothing, "map_smoothing")
        check_map_method(map_method)
        LayerAttribution.__init__(self, forward_func, layer, device_ids)  # type: ignore[arg-type]
        GradientAttribution.__init__(self, forward_func)
        self.heatmap_layer = heatmap_layer
        self.map_method = map_method
        self.map_smoothing = map_smoothing
        self.config = config
        self.early_exit = early_exit
        self._fitted: FittedXNNs | None = None
        self._fit_activations: tuple[Tensor, Tensor] | None = None

    @classmethod
    def get_name(cls) -> str:
        """The readable name of the method, ``"SRAE"``."""
        return "SRAE"

    # --------------------------------------------------------- fitted state
    def _state(self) -> FittedXNNs:
        if self._fitted is None:
            raise NotFittedError(
                "this SRAEAttribution is not fitted yet: call fit(data, target) "
                "before attribute, contributions, concepts, explain or save"
            )
        return self._fitted

    def _set_fitted(
        self, fitted: FittedXNNs, history: dict[int, TrainingHistory]
    ) -> None:
        model = self.forward_func
        name = fitted.layer_name
        if isinstance(model, nn.Module):
            name = layer_name(model, resolve_module(model, self.layer, "layer"))
        self._fitted = dataclasses.replace(fitted, layer_name=name)
        self.history_ = history

    @property
    def sraes_(self) -> dict[int, SRAE]:
        """Fitted: class → SRAE (a shared SRAE is the value of every class)."""
        return dict(self._state().sraes)

    @property
    def targets_(self) -> list[int]:
        """Fitted: the explained classes (the columns of a shared SRAE)."""
        return list(self._state().targets)

    @property
    def per_class_(self) -> bool:
        """Fitted: whether each class has its own SRAE."""
        return self._state().per_class

    @property
    def layer_shape_(self) -> tuple[int, ...]:
        """Fitted: the layer's output shape without the batch dimension."""
        return self._state().layer_shape

    @property
    def n_outputs_(self) -> int | None:
        """Fitted: the model's number of outputs (None if unknown)."""
        return self._state().n_outputs

    @property
    def n_concepts_(self) -> int:
        """Fitted: the number of x-features."""
        return self._state().n_concepts

    @property
    def layer_name_(self) -> str | None:
        """Fitted: the dotted name of the layer (None for a plain callable)."""
        return self._state().layer_name

    def _layers(self) -> tuple[nn.Module, nn.Module]:
        """The explained layer and the heatmap layer, resolved now."""
        module = resolve_module(self.forward_func, self.layer, "layer")
        hm = self.heatmap_layer
        if hm is None:
            return module, module
        return module, resolve_module(self.forward_func, hm, "heatmap_layer")

    def _prepare(
        self, inputs: Inputs, target: TargetType, additional_forward_args: Any
    ) -> tuple[FittedXNNs, tuple[Tensor, ...], tuple, Tensor]:
        """Fitted state, checked inputs, extra arguments and targets."""
        fitted = self._state()
        check_sequences(inputs, "inputs")
        tup = check_inputs(inputs, model_device(self.forward_func))
        check_token_ids(self.forward_func, tup[0], "inputs")
        extra = format_additional_forward_args(additional_forward_args)
        return fitted, tup, extra, fitted.targets_for(target, tup[0].shape[0])

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        data: Any,
        target: int | Sequence[int] | Tensor | None = None,
        *,
        all_targets: bool = False,
        per_class: bool = True,
        batch_size: int = 64,
        show_progress: bool = True,
        additional_forward_args: Any = None,
        n_jobs: int | None = None,
        keep_activations: bool = False,
    ) -> SRAEAttribution:
        r"""Collect the layer's activations over ``data`` and fit the XNN(s).

        Args:
            data (Tensor, DataLoader or iterable): the inputs; see
                :func:`~captum_srae.iter_input_batches` (labels are ignored).
            target (int, list of int, 1-D Tensor or None, optional): one class
                (the paper's one-vs-all XNN) or several. None is the model's
                only output; on a model with several outputs it needs
                ``all_targets=True``. Default: None
            all_targets (bool, optional): with ``target=None``, fit every
                output (one XNN each with ``per_class``): the explicit opt-in
                that keeps a 1000-class model from starting 1000 fits by
                accident. Default: False
            per_class (bool, optional): one XNN per class; False fits one shared
                XNN whose predictor has one output per class. Default: True
            batch_size (int, optional): chunk size for Tensor data. Default: 64
            show_progress (bool, optional): progress bars. Default: True
            additional_forward_args (Any, optional): extra model arguments;
                with Tensor data, leading Tensors with one row per example
                (an attention mask) are split into batches with it, the
                others are the same for every batch. Default: None
            n_jobs (int, optional): worker processes for the per-class fits
                (:func:`~captum_srae.training.jobs.run_jobs`: one thread
                each, so ``k`` classes cost about ``k / n_jobs`` fits); 1
                fits them here, one after the other. Default: None (one per
                usable CPU)
            keep_activations (bool, optional): keep the activations and
                scores the XNNs were fitted on as ``fit_activations_`` (on
                CPU, for the explainer's lifetime; not saved). Default: False

        Returns:
            *SRAEAttribution*: ``self``, fitted (see the class).

        Raises:
            TypeError: if ``forward_func`` is not an ``nn.Module``, a class
                is not an int or ``keep_activations`` not a bool.
            ValueError: if ``target`` repeats a class, or is None on a model
                with several outputs without ``all_targets=True`` (raised on
                the first batch, before any fit); for token ids outside the
                model's embedding or a list of token sequences of different
                lengths (see :mod:`~captum_srae.attribution.text`).
            Exception: whatever ``forward_func`` raises, unchanged.

        Examples::

            >>> sa.fit(loader, target=3)                  # one class
            >>> sa.fit(loader, target=[0, 3])             # two XNNs
            >>> sa.fit(loader, all_targets=True)          # every output
        """
        model = self._check_fit(data, n_jobs, keep_activations)
        result = fit_xnns(
            model,
            self._layers()[0],
            data,
            target,
            self.config if self.config is not None else SRAEConfig(),
            all_targets=all_targets,
            per_class=per_class,
            batch_size=batch_size,
            show_progress=show_progress,
            additional_forward_args=additional_forward_args,
            n_jobs=n_jobs,
        )
        self._set_fitted(result.fitted, result.histories)
        self._fit_activations = (result.z, result.y) if keep_activations else None
        return self

    def _check_fit(self, data: Any, n_jobs: Any, keep_activations: Any) -> nn.Module:
        """The model, after the checks ``fit`` makes before any forward pass."""
        model = self.forward_func
        if not isinstance(model, nn.Module):
            raise TypeError("fit needs forward_func to be an nn.Module")
        resolve_n_jobs(n_jobs, 1)
        check_bool(keep_activations, "keep_activations")
        check_sequences(data, "data")
        check_token_ids(model, data[0] if isinstance(data, tuple) else data, "data")
        return model

    @property
    def fit_activations_(self) -> tuple[Tensor, Tensor] | None:
        """Fitted: the pooled activations ``(N, D)`` and the scores
        ``(N, len(targets_))`` (one column per class of ``targets_``) of the
        last ``fit``, with ``keep_activations=True``; None otherwise, and
        after :meth:`load` or :meth:`from_sraes`. With every class's scores
        (``all_targets=True``) they are
        :func:`~captum_srae.evaluation.compare.compare`'s ``z_fit, y_fit``."""
        self._state()
        return self._fit_activations

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
        early_exit: bool = True,
        map_method: str | type = "gradcam",
        map_smoothing: float = 0.0,
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
            early_exit (bool, optional): see the class. Default: True
            map_method, map_smoothing: see the class ("gradcam", 0.0).

        Returns:
            *SRAEAttribution*: the fitted explainer (``history_`` is empty).

        Raises:
            ValueError: if the SRAEs do not fit together or with ``targets``,
                or ``layer`` is not found.
        """
        fitted = FittedXNNs.from_sraes(
            sraes, targets, layer_shape=layer_shape, n_outputs=n_outputs
        )
        return cls._around(
            fitted,
            forward_func,
            layer,
            heatmap_layer,
            early_exit,
            (map_method, map_smoothing),
        )

    # ------------------------------------------------------------ attribute
    @log_usage()
    def attribute(
        self,
        inputs: Inputs,
        target: TargetType = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        *,
        method: str | type | None = None,
        output: str = "concepts",
        concepts: Sequence[int] | None = None,
        interpolate: bool | str | Sequence[int] = True,
        relu_attributions: bool | None = None,
        internal_batch_size: int | None = None,
        attribution_kwargs: dict[str, Any] | None = None,
        smoothing: float | None = None,
    ) -> Tensor | tuple[Tensor, ...]:
        r"""One heatmap per x-feature, or the class-level map.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): the model's inputs, batch
                first. A tuple gives a tuple of attributions.
            target (int, tuple, Tensor or list, optional): any form of Captum's
                ``TargetType``: one class for all examples (int, 1-tuple,
                one-element tensor) or one per example (list of ints or
                1-tuples, tensor ``(N,)``), each a fitted class.
                Default: None (the only fitted class)
            additional_forward_args (Any, optional): extra model inputs. Default: None
            attribute_to_layer_input (bool, optional): Captum's (TCAV passes
                it); only False works. Default: False
            method (str or type, optional): ``"gradcam"`` (closed form at the
                layer), ``"excitation"`` (Excitation Backprop;
                ``attribution_kwargs={"contrastive": True}`` for its
                contrastive variant) or a Captum attribution class (or its
                name, ``"InputXGradient"``) run with ``target=k`` on the
                x-features (``XFeatureModel``). Default: None (``map_method``)
            output (str, optional): ``"concepts"`` (``(N, n, H, W)``) or
                ``"class"`` (``Σ_k e_k v_k · map_k``). Default: "concepts"
            concepts (Sequence[int], optional): x-features to map. Default: None (all)
            interpolate (bool, str or Sequence[int], optional): True resizes
                to the input's size, a size to it; False or ``"layer"`` keeps
                the layer's size, ``"tokens"`` a token layer's tokens
                ``(N, n, T)`` (see the class). Default: True
            relu_attributions (bool, optional): ReLU each map. Default: None
                (True for "gradcam", "excitation", ``LayerGradCam``, smoothing)
            internal_batch_size (int, optional): examples per pass. Default: None
            attribution_kwargs (dict, optional): extra arguments of the
                method's ``attribute`` (e.g. ``{"n_steps": 20}``). Default: None
            smoothing (float, optional): sigma, in map cells, of a Gaussian
                blur before resizing (smooth_maps). Default: None (map_smoothing)

        Returns:
            *Tensor* or *tuple[Tensor, ...]*: ``(N, n, H, W)`` or
            ``(N, 1, H, W)``; a tuple for tuple inputs.

        Raises:
            NotFittedError: before :meth:`fit`.
            ValueError, TypeError: for invalid arguments, each naming it.

        Examples::

            >>> maps = sa.attribute(x, target=3)                   # (N, n, H, W)
            >>> ig = sa.attribute(x, target=3, method=IntegratedGradients)
            >>> cls = sa.attribute(x, target=[3, 1], output="class")
        """
        fitted, tup, extra, tgt = self._prepare(inputs, target, additional_forward_args)
        options = map_options(
            fitted.n_concepts,
            method=self.map_method if method is None else method,
            output=output, concepts=concepts, interpolate=interpolate,
            relu_attributions=relu_attributions,
            internal_batch_size=internal_batch_size,
            attribution_kwargs=attribution_kwargs,
            attribute_to_layer_input=attribute_to_layer_input,
            smoothing=self.map_smoothing if smoothing is None else smoothing,
        )  # fmt: skip
        layers, early_exit = self._layers(), self.early_exit
        maps = attribute_maps(
            self.forward_func, layers, fitted, tup, extra, tgt, options, early_exit
        )
        return format_output(is_tuple(inputs), maps)

    # ------------------------------------------------------ x-features, scores
    def _scores(
        self, inputs: Inputs, target: TargetType, additional_forward_args: Any
    ) -> dict[str, Tensor]:
        fitted, tup, extra, tgt = self._prepare(inputs, target, additional_forward_args)
        return scores(self.forward_func, self._layers()[0], fitted, tup, extra, tgt)

    def contributions(
        self,
        inputs: Inputs,
        target: TargetType = None,
        additional_forward_args: Any = None,
    ) -> Tensor:
        r"""Each x-feature's contribution ``e_k·v_k`` to the target's score.

        Args:
            inputs, target, additional_forward_args: as in :meth:`attribute`.

        Returns:
            *Tensor*: ``(N, n_concepts)``; with the SRAE's bias they sum to
            the XNN's reconstruction of the score.
        """
        return self._scores(inputs, target, additional_forward_args)["c"]

    def concepts(
        self,
        inputs: Inputs,
        target: TargetType = None,
        additional_forward_args: Any = None,
    ) -> Tensor:
        r"""The x-features ``e`` of the inputs.

        Args:
            inputs, target, additional_forward_args: as in :meth:`attribute`;
                ``target`` selects the XNN when one was fitted per class.

        Returns:
            *Tensor*: ``(N, n_concepts)``.
        """
        return self._scores(inputs, target, additional_forward_args)["e"]

    def explain(
        self,
        inputs: Inputs,
        target: TargetType = None,
        additional_forward_args: Any = None,
        **attribute_kwargs: Any,
    ) -> SRAEExplanation:
        r"""x-features, contributions, scores and heatmaps in one object.

        Args:
            inputs, target, additional_forward_args: as in :meth:`attribute`.
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

        Raises:
            NotFittedError: before :meth:`fit`.
        """
        save_xnns(self._state(), path)

    @classmethod
    def load(
        cls,
        path: PathLike,
        forward_func: Callable[..., Tensor],
        layer: nn.Module | str | None = None,
        heatmap_layer: nn.Module | str | None = None,
        *,
        early_exit: bool = True,
        map_method: str | type = "gradcam",
        map_smoothing: float = 0.0,
    ) -> SRAEAttribution:
        r"""Load an explainer written by :meth:`save` (JSON and safetensors only).

        Args:
            path (str or PathLike): the folder.
            forward_func (nn.Module or Callable): the explained model; the
                SRAEs are put on its device.
            layer (nn.Module or str, optional): the explained layer.
                Default: None (the saved layer name)
            heatmap_layer (nn.Module or str, optional): see the class.
                Default: None
            early_exit (bool, optional): see the class. Default: True
            map_method, map_smoothing: see the class ("gradcam", 0.0).

        Returns:
            *SRAEAttribution*: the fitted explainer (``history_`` is empty).

        Raises:
            FileNotFoundError: if ``path`` does not exist.
            SRAEFormatError: if the save is corrupt or of a newer format.
            ValueError: if ``layer`` is None and the save names no layer.
        """
        fitted = load_xnns(path, model_device(forward_func))
        if layer is None:
            if fitted.layer_name is None:
                raise ValueError(f"{path} records no layer name: pass layer")
            layer = fitted.layer_name
        return cls._around(
            fitted,
            forward_func,
            layer,
            heatmap_layer,
            early_exit,
            (map_method, map_smoothing),
        )

    @classmethod
    def _around(
        cls,
        fitted: FittedXNNs,
        forward_func: Callable[..., Tensor],
        layer: nn.Module | str,
        heatmap_layer: nn.Module | str | None,
        early_exit: bool,
        map_defaults: tuple[str | type, float],
    ) -> SRAEAttribution:
        """A fitted explainer holding ``fitted`` (``history_`` is empty);
        ``map_defaults``: ``(map_method, map_smoothing)``."""
        explainer = cls(
            forward_func,
            layer,
            heatmap_layer=heatmap_layer,
            config=fitted.config,
            early_exit=early_exit,
            map_method=map_defaults[0],
            map_smoothing=map_defaults[1],
        )
        explainer._set_fitted(fitted, {})
        return explainer
