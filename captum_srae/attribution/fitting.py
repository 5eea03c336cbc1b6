#!/usr/bin/env python3
r"""Fitting the XNN(s) of :class:`~captum_srae.attribution.SRAEAttribution`.

The body of :meth:`SRAEAttribution.fit`: collect the layer's activations and
the scores of the explained classes over the data, then fit one XNN per class
or one shared XNN. It returns a :class:`~captum_srae.attribution.fitted.FittedXNNs`
and the training histories; the explainer stores them.

Errors raised by the user's model keep their type and message (they are not
caught here). ``target=None`` fits every output of the model only with
``all_targets=True``: a model with 1000 outputs would otherwise start 1000
fits without being asked to.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from torch import Tensor, nn

from captum_srae.activations import collect_activations, layer_name
from captum_srae.attribution.checks import model_device
from captum_srae.attribution.fitted import FittedXNNs
from captum_srae.core.config import SRAEConfig
from captum_srae.training import TrainingHistory, fit_srae
from captum_srae.training.jobs import run_jobs, will_fork
from captum_srae.utils.validation import check_bool

__all__ = ["FitResult", "fit_targets", "fit_xnns"]


class FitResult(NamedTuple):
    """What :func:`fit_xnns` returns.

    Attributes:
        fitted (FittedXNNs): the fitted state.
        histories (dict[int, TrainingHistory]): the training history of each
            class.
        z (Tensor): the pooled activations ``(N, D)`` the XNNs were fitted on.
        y (Tensor): the scores ``(N, len(targets))`` of the fitted classes,
            one column per class in the order of ``fitted.targets``.
    """

    fitted: FittedXNNs
    histories: dict[int, TrainingHistory]
    z: Tensor
    y: Tensor


def fit_targets(
    target: int | Sequence[int] | Tensor | None, all_targets: bool
) -> list[int] | None:
    """The classes ``fit`` is asked for, as a list (None: every output).

    Args:
        target (int, Sequence[int], Tensor or None): one class, several (a
            list, tuple or 1-D tensor), or None.
        all_targets (bool): the opt-in to fit every output with ``target=None``.

    Returns:
        *list[int]* or *None*: the classes; None when ``all_targets`` is True.

    Raises:
        TypeError: if a class is not an int, or ``all_targets`` not a bool.
        ValueError: if ``target`` is empty or repeats a class, or is given
            together with ``all_targets=True``.
    """
    check_bool(all_targets, "all_targets")
    if all_targets:
        if target is not None:
            raise ValueError(
                f"pass either target ({target!r}) or all_targets=True, not both"
            )
        return None
    if target is None:
        return None
    if isinstance(target, Tensor):
        if target.ndim > 1 or target.is_floating_point() or target.is_complex():
            raise TypeError(
                "target must be an int, a list of ints or a 1-D integer tensor, "
                f"got a tensor of shape {tuple(target.shape)} and dtype "
                f"{target.dtype}"
            )
        target = target.tolist()
    items = list(target) if isinstance(target, (list, tuple)) else [target]
    bad = [t for t in items if isinstance(t, bool) or not isinstance(t, int)]
    if bad:
        raise TypeError(f"target must hold class indices (ints), got {target!r}")
    if not items:
        raise ValueError("target is an empty list; pass at least one class")
    if len(set(items)) != len(items):
        raise ValueError(f"target holds repeated classes: {items}")
    return items


class _Shapes:
    """Forward hooks recording the layer's and the model's output shapes.

    With ``limit_outputs`` the model hook raises a ``ValueError`` on the first
    batch when the model has several outputs: ``fit(target=None)`` without
    ``all_targets=True``.
    """

    def __init__(self, model: nn.Module, layer: nn.Module, limit_outputs: bool):
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.limit_outputs = limit_outputs
        self.handles = [
            layer.register_forward_hook(self._record("layer")),
            model.register_forward_hook(self._record("out")),
        ]

    def _record(self, key: str) -> Callable[..., None]:
        def hook(_m: nn.Module, _i: Any, out: Any) -> None:
            if not isinstance(out, Tensor) or out.ndim < 1:
                return
            self.shapes.setdefault(key, tuple(out.shape[1:]))
            if key == "out" and self.limit_outputs and out.ndim == 2:
                n_out = int(out.shape[1])
                if n_out > 1:
                    raise ValueError(
                        f"target=None on a model with {n_out} outputs would fit "
                        f"every output ({n_out} XNNs with per_class=True); pass "
                        "target=<class> or a list of classes, or "
                        "all_targets=True to fit them all"
                    )

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _collect(
    model: nn.Module,
    layer: nn.Module,
    data: Any,
    targets: list[int] | None,
    config: SRAEConfig,
    *,
    limit_outputs: bool,
    batch_size: int,
    show_progress: bool,
    additional_forward_args: Any,
) -> tuple[Tensor, Tensor, dict[str, tuple[int, ...]]]:
    """Activations, scores and output shapes over ``data``."""
    probe = _Shapes(model, layer, limit_outputs)
    try:
        z, y = collect_activations(
            model,
            layer,
            data,
            targets,
            pooling=config.pooling,
            additional_forward_args=additional_forward_args,
            batch_size=batch_size,
            show_progress=show_progress,
        )
    finally:
        probe.remove()
    return z, y, probe.shapes


def _fit_classes(
    targets: list[int],
    z: Tensor,
    y: Tensor,
    config: SRAEConfig,
    kw: dict[str, Any],
    n_jobs: int | None,
) -> dict[int, tuple[Any, TrainingHistory]]:
    """:func:`fit_srae` for each class (in worker processes when ``n_jobs``
    allows); the warnings name the class and point at the caller of
    ``SRAEAttribution.fit``."""
    parallel = will_fork(n_jobs, len(targets))
    show = bool(kw.get("show_progress", True))
    fit = functools.partial(fit_srae, **{**kw, "show_progress": show and not parallel})
    jobs = [(z, y[:, j], config) for j in range(len(targets))]
    bar = show and parallel  # else each fit shows its own bars
    results = run_jobs(fit, jobs, n_jobs, show_progress=bar, desc="Fitting XNNs")
    level = _caller_level()
    for target, (_, caught) in zip(targets, results, strict=True):
        for message, category in caught:
            warnings.warn(f"class {target}: {message}", category, stacklevel=level)
    return {t: r[0] for t, r in zip(targets, results, strict=True)}


def _caller_level() -> int:
    """The ``stacklevel`` (for a warning issued by the function that calls
    this one) of the first frame outside the package: the user's call."""
    package = Path(__file__).resolve().parent.parent
    frame = inspect.currentframe()
    frame = frame.f_back if frame is not None else None  # the warning's caller
    level = 1
    while frame is not None and Path(frame.f_code.co_filename).resolve().is_relative_to(
        package
    ):
        frame, level = frame.f_back, level + 1
    return level


def fit_xnns(
    model: nn.Module,
    layer: nn.Module,
    data: Any,
    target: int | Sequence[int] | Tensor | None,
    config: SRAEConfig,
    *,
    all_targets: bool = False,
    per_class: bool = True,
    batch_size: int = 64,
    show_progress: bool = True,
    additional_forward_args: Any = None,
    n_jobs: int | None = None,
) -> FitResult:
    """Collect the layer's activations over ``data`` and fit the XNN(s).

    See :meth:`SRAEAttribution.fit`, whose arguments these are. The model
    runs completely on every batch (its scores are the fit's targets), so
    there is no early exit here.

    Args:
        model (nn.Module): the classifier, returning scores ``(N, C)``.
        layer (nn.Module): the explained layer, a module of ``model``.
        data (Tensor, DataLoader or iterable): the inputs.
        target (int, Sequence[int], Tensor or None): the classes to explain.
        config (SRAEConfig): the SRAE hyperparameters.
        all_targets (bool, optional): with ``target=None``, fit every output
            of a model with several. Default: False
        per_class (bool, optional): one XNN per class, or one shared XNN.
            Default: True
        batch_size (int, optional): chunk size for Tensor data. Default: 64
        show_progress (bool, optional): progress bars. Default: True
        additional_forward_args (Any, optional): extra model arguments.
            Default: None
        n_jobs (int, optional): worker processes for the per-class fits.
            Default: None (one per usable CPU)

    Returns:
        *FitResult*: the fitted state, the training history of each class,
        and the activations and scores the fits were trained on.

    Raises:
        ValueError: if ``target`` repeats a class, or is None on a model with
            several outputs without ``all_targets=True``.
        TypeError: if a class is not an int.
        Exception: whatever ``model`` raises, unchanged.
    """
    targets = fit_targets(target, all_targets)
    z, y, shapes = _collect(
        model,
        layer,
        data,
        targets,
        config,
        limit_outputs=targets is None and not all_targets,
        batch_size=batch_size,
        show_progress=show_progress,
        additional_forward_args=additional_forward_args,
    )
    if targets is None:
        targets = list(range(y.shape[1]))
    dev = model_device(model)
    kw: dict[str, Any] = {"show_progress": show_progress, "device": dev}
    separate = per_class or len(targets) == 1
    if separate:
        fits = _fit_classes(targets, z, y, config, kw, n_jobs)
        sraes: Any = {t: f[0] for t, f in fits.items()}
        histories = {t: f[1] for t, f in fits.items()}
    else:
        sraes, history = fit_srae(z, y, config, **kw)
        histories = dict.fromkeys(targets, history)
    out_shape = shapes.get("out", ())
    fitted = FittedXNNs.from_sraes(
        sraes,
        None if separate else targets,
        layer_shape=shapes["layer"],
        n_outputs=out_shape[0] if len(out_shape) == 1 else None,
        layer_name=layer_name(model, layer),
    )
    return FitResult(fitted, histories, z, y)
