#!/usr/bin/env python3
r"""Fitting of :class:`~captum_srae.attribution.SRAEAttribution`.

The body of :meth:`SRAEAttribution.fit` (collect the layer's activations and
fit one XNN per class, or one shared XNN) and the fitted state it sets, also
set by :meth:`SRAEAttribution.from_sraes`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from captum_srae.activations import collect_activations
from captum_srae.activations import layer_name as _layer_name
from captum_srae.attribution.checks import model_device
from captum_srae.core.config import SRAEConfig
from captum_srae.core.model import SRAE
from captum_srae.training import fit_srae

if TYPE_CHECKING:
    from captum_srae.attribution.srae_attribution import SRAEAttribution

__all__ = ["fit_attribution", "set_fitted"]


def fit_attribution(
    explainer: SRAEAttribution,
    data: Any,
    target: int | Sequence[int] | None,
    *,
    per_class: bool,
    batch_size: int,
    show_progress: bool,
    additional_forward_args: Any,
) -> None:
    """Collect the layer's activations over ``data`` and fit the XNN(s).

    See :meth:`SRAEAttribution.fit`, whose arguments these are.

    Args:
        explainer (SRAEAttribution): the explainer, fitted in place.
        data (Tensor, DataLoader or iterable): the inputs.
        target (int, list of int or None): the classes to explain.
        per_class (bool): one XNN per class, or one shared XNN.
        batch_size (int): chunk size for Tensor data.
        show_progress (bool): progress bars.
        additional_forward_args (Any): extra model arguments.

    Raises:
        TypeError: if ``forward_func`` is not an ``nn.Module``.
        ValueError: if ``data`` do not fit the model or ``target`` repeats a
            class.
    """
    model = explainer.forward_func
    if not isinstance(model, nn.Module):
        raise TypeError("fit needs forward_func to be an nn.Module")
    if isinstance(target, Tensor):
        target = target.tolist()
    module = explainer._resolve(explainer.layer, "layer")
    config = explainer.config if explainer.config is not None else SRAEConfig()
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
    dev = model_device(explainer.forward_func)
    kw: dict[str, Any] = {"show_progress": show_progress, "device": dev}
    if per_class or len(targets) == 1:
        fits = {t: fit_srae(z, y[:, j], config, **kw) for j, t in enumerate(targets)}
    else:
        shared = fit_srae(z, y, config, **kw)
        fits = dict.fromkeys(targets, shared)
    set_fitted(
        explainer,
        {t: f[0] for t, f in fits.items()},
        targets,
        per_class or len(targets) == 1,
        shapes["layer"],
        n_out,
    )
    explainer.history_ = {t: f[1] for t, f in fits.items()}


def set_fitted(
    explainer: SRAEAttribution,
    sraes: dict[int, SRAE],
    targets: list[int],
    per_class: bool,
    layer_shape: Sequence[int],
    n_outputs: int | None,
) -> None:
    """Set the fitted attributes (``sraes_``, ``targets_``, ...) of ``explainer``.

    Args:
        explainer (SRAEAttribution): the explainer.
        sraes (dict[int, SRAE]): the SRAE of each class (put in eval mode).
        targets (list[int]): the fitted classes, in column order.
        per_class (bool): whether each class has its own SRAE.
        layer_shape (Sequence[int]): the layer's output shape without the
            batch dimension.
        n_outputs (int, optional): the model's number of classes.
    """
    explainer.sraes_ = {t: s.eval() for t, s in sraes.items()}
    explainer.targets_ = list(targets)
    explainer.per_class_ = per_class
    explainer.layer_shape_ = tuple(layer_shape)
    explainer.n_outputs_ = n_outputs
    explainer.n_concepts_ = next(iter(sraes.values())).n_concepts
    model = explainer.forward_func
    explainer.layer_name_ = (
        _layer_name(model, explainer._resolve(explainer.layer, "layer"))
        if isinstance(model, nn.Module)
        else None
    )
