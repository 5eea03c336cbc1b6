#!/usr/bin/env python3
r"""Run any Quantus metric on SRAE heatmaps (Quantus is the ``peers`` extra).

Quantus (Hedström et al., JMLR 2023) evaluates an explanation through an
``explain_func(model, inputs, targets, **kwargs) -> ndarray``. This module
turns a fitted :class:`~captum_srae.SRAEAttribution` into one
(:func:`srae_explain_func`), gives the x-features as a model whose outputs a
metric can perturb (:func:`concept_model`), and does both in one call
(:func:`quantus_evaluate`). :func:`baseline_perturb_func` makes Quantus's
pixel-flipping family replace pixels by a baseline image (e.g. the blur of
:func:`~captum_srae.evaluation.metrics.make_baseline`) or, run from the
baseline image, put the original pixels back (insertion).

Quantus is imported only inside :func:`quantus_evaluate`, through
:func:`~captum_srae.evaluation.peers.import_peer`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from captum_srae.attribution.checks import model_device, resolve_module
from captum_srae.attribution.heatmaps import XFeatureModel
from captum_srae.evaluation.peers.requirements import import_peer

__all__ = [
    "ExplainFunc",
    "baseline_perturb_func",
    "concept_model",
    "quantus_evaluate",
    "srae_explain_func",
]

#: Quantus's explanation function: ``(model, inputs, targets, **kwargs)`` to
#: maps ``(N, 1, H, W)``.
ExplainFunc = Callable[..., np.ndarray]

_OUTPUTS = ("class", "concepts")


def _check_explainer(explainer: Any) -> None:
    if not callable(getattr(explainer, "attribute", None)) or not hasattr(
        explainer, "forward_func"
    ):
        raise TypeError(
            "explainer must be a fitted SRAEAttribution (with attribute() and "
            f"forward_func), got {type(explainer).__name__}"
        )


def _check_mode(output: Any, concept: Any) -> None:
    if output not in _OUTPUTS:
        raise ValueError(f"output must be one of {_OUTPUTS}, got {output!r}")
    if concept is not None and (
        isinstance(concept, bool) or not isinstance(concept, int) or concept < 0
    ):
        raise TypeError(f"concept must be None or an int >= 0, got {concept!r}")
    if output == "class" and concept is not None:
        raise ValueError(
            f"concept must be None with output='class' (the class-level map), got "
            f"{concept!r}"
        )


def _as_indices(targets: Any, n: int, name: str = "targets") -> list[int]:
    """Quantus's ``y_batch`` (an int or ``(N,)`` ints) as ``n`` Python ints."""
    t = np.asarray(targets.cpu() if isinstance(targets, Tensor) else targets)
    if t.ndim == 0:
        t = np.full(n, t)
    t = t.reshape(-1)
    if t.size != n or not np.issubdtype(t.dtype, np.integer):
        raise ValueError(
            f"{name} must be an int or hold one integer index per example ({n}), "
            f"got {t.size} values of dtype {t.dtype}"
        )
    return [int(v) for v in t]


def srae_explain_func(
    explainer: Any,
    *,
    output: str = "concepts",
    concept: int | None = None,
    target: int | None = None,
    **attribute_kwargs: Any,
) -> ExplainFunc:
    r"""A Quantus ``explain_func`` that draws the heatmaps of ``explainer``.

    The returned function has Quantus's signature ``f(model, inputs, targets,
    **kwargs) -> ndarray`` ``(N, 1, H, W)`` (float32); it ignores ``model``
    and ``kwargs`` (Quantus passes its wrapped model and e.g. ``device``; the
    explainer holds its own model) and explains ``inputs`` with
    ``explainer.attribute``. What ``targets`` (Quantus's ``y_batch``) means
    depends on the mode:

    - ``output="class"``: ``targets`` are classes; the class-level map
      ``Σ_k e_k v_k · map_k`` of each example's class;
    - ``output="concepts"``, ``concept=k``: ``targets`` are classes; the map
      of x-feature ``k`` of each example's class;
    - ``output="concepts"``, ``concept=None``: ``targets`` are x-feature
      indices, one per example, all of class ``target``. Pair it with
      :func:`concept_model` as Quantus's model so that perturbation metrics
      follow the explained x-feature.

    Args:
        explainer (SRAEAttribution): a fitted explainer.
        output (str, optional): ``"class"`` or ``"concepts"``.
            Default: "concepts"
        concept (int, optional): see above. Default: None
        target (int, optional): the class whose x-features are mapped when
            ``concept`` is None. Default: None (the only fitted class)
        **attribute_kwargs: passed to ``explainer.attribute`` (e.g.
            ``method="excitation"``, ``relu_attributions=False``).

    Returns:
        *ExplainFunc*: ``(model, inputs, targets, **kwargs) -> ndarray``.

    Raises:
        TypeError: if ``explainer`` is not an explainer or ``concept`` not an
            int.
        ValueError: if ``output`` is unknown, or ``concept`` is given with
            ``output="class"``.

    Examples::

        >>> import quantus
        >>> fn = srae_explain_func(sa, output="class")
        >>> quantus.MaxSensitivity(nr_samples=10)(
        ...     model=net, x_batch=x.numpy(), y_batch=y.numpy(),
        ...     explain_func=fn)
    """
    _check_explainer(explainer)
    _check_mode(output, concept)
    for key in ("target", "output", "concepts"):
        if key in attribute_kwargs:
            raise TypeError(
                f"attribute_kwargs must not contain {key!r}: the mode sets it"
            )

    def explain(model: Any, inputs: Any, targets: Any, **kwargs: Any) -> np.ndarray:
        return _maps(
            explainer, inputs, targets, output, concept, target, attribute_kwargs
        )

    return explain


def _maps(
    explainer: Any,
    inputs: Any,
    targets: Any,
    output: str,
    concept: int | None,
    target: int | None,
    attribute_kwargs: dict[str, Any],
) -> np.ndarray:
    """The maps of :func:`srae_explain_func`'s function, ``(N, 1, H, W)``."""
    device = model_device(explainer.forward_func)
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=device)
    idx = _as_indices(targets, x.shape[0])
    if output == "class":
        maps = explainer.attribute(x, target=idx, output="class", **attribute_kwargs)
    elif concept is not None:
        maps = explainer.attribute(
            x, target=idx, concepts=[concept], **attribute_kwargs
        )
    else:
        every = explainer.attribute(x, target=target, **attribute_kwargs)
        pick = torch.as_tensor(idx, device=every.device)
        if bool(((pick < 0) | (pick >= every.shape[1])).any()):
            raise ValueError(
                f"targets must be x-feature indices in [0, {every.shape[1]}) "
                f"with concept=None, got {idx}"
            )
        maps = every[torch.arange(every.shape[0], device=every.device), pick][:, None]
    return maps.detach().cpu().float().numpy()


def concept_model(explainer: Any, target: int | None = None) -> nn.Module:
    r"""The x-features of class ``target`` as a model, ``(N, n_concepts)``.

    An :class:`~captum_srae.attribution.heatmaps.XFeatureModel` (inputs →
    the explained layer → pooling → the SRAE's encoder) in eval mode, for
    Quantus metrics that perturb the input and read the explained output:
    with it, Quantus's ``y_batch`` is the x-feature index. Calling
    ``.eval()`` on it also sets the classifier (a submodule) to eval mode,
    which Quantus requires anyway.

    Args:
        explainer (SRAEAttribution): a fitted explainer.
        target (int, optional): the class. Default: None (the only fitted
            class)

    Returns:
        *nn.Module*: the x-feature model.

    Raises:
        TypeError: if ``explainer`` is not an explainer.
        ValueError: if ``target`` is not a fitted class, or is None while
            several classes are fitted.

    Examples::

        >>> xm = concept_model(sa, target=3)
        >>> xm(x).shape  # (N, n_concepts)
    """
    _check_explainer(explainer)
    sraes = explainer.sraes_
    if target is None:
        if len(sraes) != 1:
            raise ValueError(
                f"target is required: the explainer has {len(sraes)} fitted "
                f"classes {sorted(sraes)}"
            )
        target = next(iter(sraes))
    if target not in sraes:
        raise ValueError(
            f"target must be a fitted class {sorted(sraes)}, got {target!r}"
        )
    srae = sraes[target]
    layer = resolve_module(explainer.forward_func, explainer.layer, "layer")
    return XFeatureModel(
        explainer.forward_func,
        layer,
        srae,
        pooling=srae.config.pooling,
        early_exit=explainer.early_exit,
    ).eval()


def baseline_perturb_func(baseline: Tensor | np.ndarray) -> Callable[..., np.ndarray]:
    r"""A Quantus ``perturb_func`` that copies the flipped features from
    ``baseline`` images.

    Quantus's ``PixelFlipping`` and ``RegionPerturbation`` call
    ``perturb_func(arr=(N, F) flattened images, indices=(N, I))``; this one
    sets ``arr[i, indices[i]] = baseline[i].flatten()[indices[i]]``. So:

    - **deletion with any baseline image** (the project's ``"blur"`` or
      ``"mean"``, see :func:`~captum_srae.evaluation.metrics.make_baseline`):
      ``x_batch = x``, ``perturb_func=baseline_perturb_func(base)``;
    - **insertion**: ``x_batch = base``,
      ``perturb_func=baseline_perturb_func(x)`` (the most relevant pixels
      are restored first).

    Quantus hands the perturb function one batch at a time, so call the
    metric with ``batch_size >= N``; a batch of another size raises.

    Args:
        baseline (Tensor or ndarray): images ``(N, C, H, W)``, the same shape
            as the metric's ``x_batch``.

    Returns:
        *Callable*: ``(arr, indices, **kwargs) -> ndarray``.

    Raises:
        ValueError: if ``baseline`` is not 4-D or contains NaN/Inf.

    Examples::

        >>> base = make_baseline(x, "blur")
        >>> pf = quantus.PixelFlipping(features_in_step=48, normalise=False,
        ...     perturb_func=baseline_perturb_func(base))
    """
    src = baseline.detach().cpu().numpy() if isinstance(baseline, Tensor) else baseline
    src = np.asarray(src)
    if src.ndim != 4:
        raise ValueError(
            f"baseline must have shape (N, C, H, W), got {tuple(src.shape)}"
        )
    if not np.isfinite(src).all():
        raise ValueError("baseline must be finite (no NaN or Inf)")
    flat = src.reshape(src.shape[0], -1)

    def perturb(arr: np.ndarray, indices: np.ndarray, **kwargs: Any) -> np.ndarray:
        if arr.shape != flat.shape:
            raise ValueError(
                f"baseline_perturb_func: Quantus passed a batch of shape "
                f"{arr.shape}, the baseline is {flat.shape}; call the metric with "
                f"batch_size >= {flat.shape[0]} and a patch size dividing the image"
            )
        out = arr.copy()
        rows = np.arange(arr.shape[0])[:, None]
        out[rows, indices] = flat[rows, indices]
        return out

    return perturb


def _metric(metric: Any, metric_options: dict[str, Any] | None) -> Any:
    """``metric`` itself, or the Quantus metric class it names, instantiated."""
    quantus = import_peer("quantus", "quantus")
    if isinstance(metric, str):
        cls = getattr(quantus, metric, None)
        if not (isinstance(cls, type) and issubclass(cls, quantus.Metric)):
            raise ValueError(
                f"metric must name a Quantus metric class (e.g. 'PointingGame'), "
                f"got {metric!r}"
            )
        options = {"disable_warnings": True, **(metric_options or {})}
        return cls(**options)
    if metric_options:
        raise ValueError("metric_options apply only when metric is a class name")
    if not isinstance(metric, quantus.Metric):
        raise TypeError(
            f"metric must be a quantus.Metric or its class name, got "
            f"{type(metric).__name__}"
        )
    return metric


def _masks(masks: Any, n: int) -> np.ndarray:
    m = masks.detach().cpu().numpy() if isinstance(masks, Tensor) else masks
    m = np.asarray(m)
    if m.ndim == 3:
        m = m[:, None]
    if m.ndim != 4 or m.shape[0] != n:
        raise ValueError(
            f"masks must have shape ({n}, H, W) or ({n}, 1, H, W), got {tuple(m.shape)}"
        )
    return m.astype(np.float32)


def _call_options(
    explainer: Any, masks: Tensor | None, n: int, call_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The metric call's options: raw scores, the classifier's device, the
    masks as ``s_batch``, then ``call_kwargs``."""
    device = model_device(explainer.forward_func)
    kwargs: dict[str, Any] = {"softmax": False}
    if device is not None:
        kwargs["device"] = str(device)
    if masks is not None:
        kwargs["s_batch"] = _masks(masks, n)
    kwargs.update(call_kwargs)
    return kwargs


def quantus_evaluate(
    metric: Any,
    explainer: Any,
    inputs: Tensor,
    targets: int | Sequence[int] | Tensor,
    *,
    output: str = "class",
    concept: int | None = None,
    target: int | None = None,
    masks: Tensor | None = None,
    metric_options: dict[str, Any] | None = None,
    attribute_kwargs: dict[str, Any] | None = None,
    **call_kwargs: Any,
) -> np.ndarray:
    r"""Run a Quantus metric on the heatmaps of ``explainer``, in one call.

    The maps come from :func:`srae_explain_func` (same ``output``,
    ``concept``, ``target``); Quantus's model is the classifier, or
    :func:`concept_model` when ``output="concepts"`` and ``concept`` is None
    (then ``targets`` are x-feature indices). Quantus is called with
    ``softmax=False`` (the raw scores, as the project's metrics use) and the
    classifier's device, unless ``call_kwargs`` say otherwise.

    Args:
        metric (quantus.Metric or str): a metric, or a Quantus metric class
            name (``"PointingGame"``) built with ``metric_options``.
        explainer (SRAEAttribution): a fitted explainer.
        inputs (Tensor): images ``(N, C, H, W)``.
        targets (int, Sequence[int] or Tensor): Quantus's ``y_batch``: classes,
            or x-feature indices (see above).
        output (str, optional): ``"class"`` or ``"concepts"``. Default: "class"
        concept (int, optional): see :func:`srae_explain_func`. Default: None
        target (int, optional): see :func:`srae_explain_func`. Default: None
        masks (Tensor, optional): ground-truth masks ``(N, H, W)`` (Quantus's
            ``s_batch``, for localisation metrics). Default: None
        metric_options (dict, optional): constructor options when ``metric``
            is a name. Default: None
        attribute_kwargs (dict, optional): for ``explainer.attribute``. Default: None
        **call_kwargs: passed to the metric's call (e.g. ``batch_size``,
            ``softmax``).

    Returns:
        *ndarray*: the metric's scores (or curves), one per example.

    Raises:
        ValueError, TypeError: if Quantus is missing or unsupported, or on a
            bad ``metric`` or other argument.

    Examples::

        >>> quantus_evaluate("PointingGame", sa, x, y, masks=m)
        >>> quantus_evaluate("PixelFlipping", sa, x, 2, output="concepts",
        ...     target=3, metric_options={"features_in_step": 48})
    """
    m = _metric(metric, metric_options)
    options = attribute_kwargs or {}
    fn = srae_explain_func(
        explainer, output=output, concept=concept, target=target, **options
    )
    if not isinstance(inputs, Tensor) or inputs.ndim != 4:
        raise ValueError(
            "inputs must be a Tensor of images (N, C, H, W), got "
            f"{getattr(inputs, 'shape', type(inputs).__name__)}"
        )
    n = inputs.shape[0]
    model = (
        concept_model(explainer, target)
        if output == "concepts" and concept is None
        else explainer.forward_func
    )
    kwargs = _call_options(explainer, masks, n, call_kwargs)
    scores = m(
        model=model,
        x_batch=inputs.detach().cpu().float().numpy(),
        y_batch=np.asarray(_as_indices(targets, n)),
        a_batch=None,
        explain_func=fn,
        **kwargs,
    )
    return np.asarray(scores, dtype=np.float64)
