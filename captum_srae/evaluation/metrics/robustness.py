#!/usr/bin/env python3
r"""Captum's infidelity and max-sensitivity, set up for heatmaps.

Thin wrappers around ``captum.metrics.infidelity`` and
``captum.metrics.sensitivity_max`` that accept spatial maps (lower resolution,
channel dimension), a fitted Captum attribution object (or
:class:`~captum_srae.SRAEAttribution`) and a scale-free default perturbation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from captum.metrics import infidelity, sensitivity_max
from torch import Tensor

from captum_srae.evaluation.metrics.checks import number, spatial_maps
from captum_srae.utils.validation import as_float_tensor, check_finite, check_int

__all__ = ["attribution_infidelity", "attribution_sensitivity", "gaussian_perturbation"]


def gaussian_perturbation(
    scale: float = 0.1,
) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    r"""The default perturbation of :func:`attribution_infidelity`.

    ``I = scale · s_i · ε`` with ``ε ~ N(0, 1)`` per entry and ``s_i`` the
    standard deviation of example ``i`` over all its entries (so the noise
    follows the scale of the data); the perturbed input is ``x − I``, as
    Captum's ``infidelity`` expects.

    Args:
        scale (float, optional): noise level relative to ``s_i``, > 0.
            Default: 0.1

    Returns:
        *Callable*: ``inputs -> (perturbation, inputs - perturbation)``.
    """
    sc = number(scale, "scale", low=0, low_open=True)

    def perturb(inputs: Tensor) -> tuple[Tensor, Tensor]:
        n = inputs.shape[0]
        std = inputs.reshape(n, -1).std(dim=1).reshape(n, *([1] * (inputs.ndim - 1)))
        noise = torch.randn_like(inputs) * std * sc
        return noise, inputs - noise

    return perturb


def _as_input_shaped(attributions: Any, inputs: Tensor) -> Tensor:
    a = as_float_tensor(attributions, "attributions")
    if a.shape == inputs.shape:
        check_finite(a, "attributions")
        return a.to(inputs.dtype)
    if inputs.ndim != 4:
        raise ValueError(
            f"attributions must have the shape of inputs {tuple(inputs.shape)}, got "
            f"{tuple(a.shape)}"
        )
    maps = spatial_maps(a, "attributions", inputs.shape[0], tuple(inputs.shape[-2:]))
    return maps[:, None].expand_as(inputs).to(inputs.dtype).contiguous()


def attribution_infidelity(
    forward_func: Callable[..., Tensor],
    inputs: Tensor,
    attributions: Tensor,
    target: int | list[int] | Tensor | None = None,
    *,
    perturb_func: Callable[..., Any] | None = None,
    n_perturb_samples: int = 10,
    max_examples_per_batch: int | None = None,
    normalize: bool = True,
    additional_forward_args: Any = None,
) -> Tensor:
    r"""Infidelity of an attribution (Yeh et al., NeurIPS 2019), via Captum.

    ``INFD = E_I[(Iᵀφ − (f(x) − f(x − I)))²]``; with ``normalize`` (the
    default) ``φ`` is first rescaled by the least-squares factor
    ``β = E[Iᵀφ·Δf] / E[(Iᵀφ)²]``, which makes the value independent of the
    scale of the map (captum issues #613, #1018). **Lower is better.**
    A spatial map ``(N, h, w)`` or ``(N, c, h, w)`` is channel-summed,
    resized to the input size (bilinear) and repeated over the input
    channels, so ``Iᵀφ = Σ_p φ_p Σ_c I_cp``.

    Args:
        forward_func (Callable): the model (or ``XFeatureModel``).
        inputs (Tensor): the inputs ``(N, ...)``.
        attributions (Tensor): input-shaped attributions, or maps as above.
        target (int, list[int] or Tensor, optional): explained output.
            Default: None
        perturb_func (Callable, optional): Captum perturbation function.
            Default: None (:func:`gaussian_perturbation` with scale 0.1)
        n_perturb_samples (int, optional): perturbations per example.
            Default: 10
        max_examples_per_batch (int, optional): Captum's batching.
            Default: None
        normalize (bool, optional): rescale ``φ`` optimally. Default: True
        additional_forward_args (Any, optional): extra model arguments.
            Default: None

    Returns:
        *Tensor*: ``(N,)`` infidelity per example.
    """
    if not callable(forward_func):
        raise TypeError(
            f"forward_func must be callable, got {type(forward_func).__name__}"
        )
    x = as_float_tensor(inputs, "inputs")
    phi = _as_input_shaped(attributions, x)
    samples = check_int(n_perturb_samples, "n_perturb_samples")
    pf = gaussian_perturbation() if perturb_func is None else perturb_func
    if not callable(pf):
        raise TypeError(f"perturb_func must be callable, got {type(pf).__name__}")
    return infidelity(
        forward_func,
        pf,
        x,
        phi,
        additional_forward_args=additional_forward_args,
        target=target,
        n_perturb_samples=samples,
        max_examples_per_batch=max_examples_per_batch,
        normalize=normalize,
    )


def attribution_sensitivity(
    explainer: Any,
    inputs: Tensor,
    *,
    perturb_radius: float = 0.02,
    n_perturb_samples: int = 10,
    max_examples_per_batch: int | None = None,
    **attribute_kwargs: Any,
) -> Tensor:
    r"""Max-sensitivity of an explanation (Yeh et al., NeurIPS 2019), via
    Captum's ``sensitivity_max``.

    ``SENS = max_{‖δ‖∞ ≤ r} ‖Φ(x + δ) − Φ(x)‖ / ‖Φ(x)‖`` estimated with
    ``n_perturb_samples`` uniform draws of ``δ`` (Frobenius norm; Captum
    divides by ``‖Φ(x)‖``, so the value is scale-free). **Lower is better**
    (a stable explanation). ``r`` is in input units: choose it relative to
    the input range.

    Args:
        explainer (Any): an object with ``attribute(inputs, **kwargs)`` (any
            Captum attribution, :class:`~captum_srae.SRAEAttribution`) or a
            callable ``inputs -> attributions``.
        inputs (Tensor): the inputs ``(N, ...)``.
        perturb_radius (float, optional): ``r`` > 0. Default: 0.02
        n_perturb_samples (int, optional): draws per example. Default: 10
        max_examples_per_batch (int, optional): Captum's batching.
            Default: None
        **attribute_kwargs: passed to the explanation (e.g. ``target=3``,
            ``concepts=[k]``).

    Returns:
        *Tensor*: ``(N,)``.

    Examples::

        >>> attribution_sensitivity(sa, x, target=3, concepts=[0])
    """
    fn = getattr(explainer, "attribute", explainer)
    if not callable(fn):
        raise TypeError(
            "explainer must have an attribute() method or be callable, got "
            f"{type(explainer).__name__}"
        )
    x = as_float_tensor(inputs, "inputs")
    r = number(perturb_radius, "perturb_radius", low=0, low_open=True)
    samples = check_int(n_perturb_samples, "n_perturb_samples")
    return sensitivity_max(
        fn,
        x,
        perturb_radius=r,
        n_perturb_samples=samples,
        max_examples_per_batch=max_examples_per_batch,
        **attribute_kwargs,
    )
