#!/usr/bin/env python3
r"""Heatmap faithfulness by deletion and insertion of pixels.

A heatmap ranks the pixels of an image. **Deletion** replaces the most
relevant pixels first by a baseline and follows the explained output as more
pixels go; a faithful map makes it fall fast (low area under the curve).
**Insertion** starts from the baseline and puts the most relevant pixels back
first; a faithful map makes the output rise fast (high area). After Petsiuk,
Das and Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box
Models", BMVC 2018.

The explained output is any output of ``forward_func`` selected by
``target``: a class score of the CNN, or an x-feature with
``forward_func = captum_srae.attribution.heatmaps.XFeatureModel(...)`` and ``target=k``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypedDict, Unpack

import torch
from torch import Tensor
from torchvision.transforms.functional import gaussian_blur

from captum_srae.activations.early_exit import run_model
from captum_srae.attribution.smoothing import gaussian_kernel_size
from captum_srae.evaluation.metrics.checks import (
    number,
    select_target,
    spatial_maps,
)
from captum_srae.utils.captum_compat import format_additional_forward_args
from captum_srae.utils.validation import as_float_tensor, check_finite, check_int

__all__ = [
    "CurveOptions",
    "PerturbationCurve",
    "deletion_curve",
    "insertion_curve",
    "make_baseline",
]


class PerturbationCurve(NamedTuple):
    """A deletion or insertion curve per example.

    Attributes:
        fractions (Tensor): ``(n_steps + 1,)`` fraction of pixels replaced
            (deletion) or restored (insertion), from 0 to 1.
        scores (Tensor): ``(N, n_steps + 1)`` the explained output at each step.
        auc (Tensor): ``(N,)`` trapezoidal area under ``scores`` over
            ``fractions`` (deletion: lower is better; insertion: higher).
    """

    fractions: Tensor
    scores: Tensor
    auc: Tensor


def make_baseline(
    inputs: Tensor,
    baseline: str | float | Tensor = "blur",
    blur_sigma: float | None = None,
) -> Tensor:
    r"""The image that replaces deleted pixels, shape of ``inputs``.

    - ``"blur"``: a Gaussian blur of the image (torchvision's
      ``gaussian_blur``, reflect padding) with ``sigma = blur_sigma``, by
      default ``max(H, W) / 16`` pixels, and a kernel of ``2⌈3σ⌉ + 1``
      pixels (capped to fit the image);
    - ``"mean"``: every pixel set to the image's own per-channel mean;
    - a number: that constant;
    - a tensor broadcastable to ``inputs``.

    Args:
        inputs (Tensor): images ``(N, C, H, W)``.
        baseline (str, float or Tensor, optional): see above. Default: "blur"
        blur_sigma (float, optional): see above. Default: None

    Returns:
        *Tensor*: the baseline images.
    """
    if isinstance(baseline, Tensor):
        b = as_float_tensor(baseline, "baseline").to(inputs.device, inputs.dtype)
        try:
            return torch.broadcast_to(b, inputs.shape).clone()
        except RuntimeError as exc:
            raise ValueError(
                f"baseline of shape {tuple(b.shape)} does not broadcast to inputs "
                f"{tuple(inputs.shape)}"
            ) from exc
    if isinstance(baseline, int | float) and not isinstance(baseline, bool):
        return torch.full_like(inputs, float(baseline))
    if baseline == "mean":
        return inputs.mean(dim=(2, 3), keepdim=True).expand_as(inputs).clone()
    if baseline == "blur":
        h, w = inputs.shape[-2:]
        sigma = (
            max(h, w) / 16
            if blur_sigma is None
            else number(blur_sigma, "blur_sigma", low=0, low_open=True)
        )
        k = gaussian_kernel_size(sigma)
        kh = min(k, 2 * h - 1)
        kw = min(k, 2 * w - 1)
        return gaussian_blur(inputs, [kw, kh], [sigma, sigma])
    raise ValueError(
        f"baseline must be 'blur', 'mean', a number or a Tensor, got {baseline!r}"
    )


class CurveOptions(TypedDict, total=False):
    """The keyword options of :func:`deletion_curve` and :func:`insertion_curve`."""

    baseline: str | float | Tensor
    n_steps: int
    internal_batch_size: int | None
    additional_forward_args: Any
    blur_sigma: float | None


def _checked_images(forward_func: Any, inputs: Any) -> Tensor:
    """``inputs`` as finite float images ``(N, C, H, W)`` for a callable model."""
    if not callable(forward_func):
        raise TypeError(
            f"forward_func must be callable, got {type(forward_func).__name__}"
        )
    x = as_float_tensor(inputs, "inputs")
    if x.ndim != 4:
        raise ValueError(f"inputs must have shape (N, C, H, W), got {tuple(x.shape)}")
    check_finite(x, "inputs")
    return x


def _checked_target(target: Any, n: int) -> int | Tensor | None:
    """``target`` as None, an int, or a flat index tensor of ``n`` examples."""
    if target is not None and not isinstance(target, int):
        target = torch.as_tensor(target).long()
        if target.ndim == 0:  # a numpy or 0-d tensor index
            target = int(target)
    if isinstance(target, Tensor):
        target = target.flatten()
        if target.numel() != n:
            raise ValueError(
                f"target must be an int or hold one index per example ({n}), got "
                f"{target.numel()} values"
            )
    return target


def _pixel_ranks(maps: Tensor) -> Tensor:
    """Rank ``(N, HW)`` of each pixel: 0 for the most relevant (ties: lower
    index first)."""
    n = maps.shape[0]
    order = torch.argsort(-maps.reshape(n, -1), dim=1, stable=True)
    rank = torch.empty_like(order)
    positions = torch.arange(order.shape[1], device=maps.device).expand(n, -1)
    rank.scatter_(1, order, positions)
    return rank


def _curve(
    mode: str,
    forward_func: Callable[..., Any],
    inputs: Tensor,
    attributions: Tensor,
    target: Any,
    *,
    baseline: str | float | Tensor = "blur",
    n_steps: int = 20,
    internal_batch_size: int | None = None,
    additional_forward_args: Any = None,
    blur_sigma: float | None = None,
) -> PerturbationCurve:
    """Both curves; ``mode`` is ``"deletion"`` or ``"insertion"``."""
    x = _checked_images(forward_func, inputs)
    n, _, h, w = x.shape
    steps = check_int(n_steps, "n_steps")
    size = (
        n
        if internal_batch_size is None
        else check_int(internal_batch_size, "internal_batch_size")
    )
    maps = spatial_maps(attributions, "attributions", n, (h, w)).to(x.device)
    target = _checked_target(target, n)
    base = make_baseline(x, baseline, blur_sigma)
    extra = format_additional_forward_args(additional_forward_args)
    rank = _pixel_ranks(maps)
    counts = torch.round(torch.linspace(0, 1, steps + 1) * h * w).long().to(x.device)
    fractions = torch.linspace(0, 1, steps + 1, dtype=x.dtype)
    t_idx, i_idx = torch.meshgrid(
        torch.arange(steps + 1), torch.arange(n), indexing="ij"
    )
    t_idx, i_idx = t_idx.flatten(), i_idx.flatten()
    scores = x.new_empty(steps + 1, n)
    with torch.no_grad():
        for s in range(0, t_idx.numel(), size):
            ti, ii = t_idx[s : s + size], i_idx[s : s + size]
            chosen = (rank[ii] < counts[ti][:, None]).reshape(-1, 1, h, w)
            if mode == "deletion":
                batch = torch.where(chosen, base[ii], x[ii])
            else:
                batch = torch.where(chosen, x[ii], base[ii])
            ext = tuple(
                a[ii] if isinstance(a, Tensor) and a.ndim > 0 and a.shape[0] == n else a
                for a in extra
            )
            out = run_model(forward_func, (batch,), ext)
            tgt = target if target is None or isinstance(target, int) else target[ii]
            scores[ti, ii] = select_target(out, tgt).to(x.dtype)
    scores = scores.t().contiguous()
    return PerturbationCurve(
        fractions, scores, torch.trapezoid(scores, fractions, dim=1)
    )


def deletion_curve(
    forward_func: Callable[..., Any],
    inputs: Tensor,
    attributions: Tensor,
    target: int | list[int] | Tensor | None = None,
    **options: Unpack[CurveOptions],
) -> PerturbationCurve:
    r"""Deletion curve: remove the most relevant pixels first.

    At step ``t = 0..T`` (``T = n_steps``) the ``round(t/T · HW)`` pixels with
    the highest map value (ties broken by pixel index) are replaced, in every
    channel, by the baseline image, and
    ``s_t = forward_func(x^(t))[target]`` is recorded (the raw output: a
    logit or an x-feature). ``AUC = Σ_t (s_t + s_{t+1})/(2T)`` (trapezoid
    over the fraction removed in ``[0, 1]``). **Lower is better**; compare
    with a random map, whose AUC is the null.

    Args:
        forward_func (Callable): the model (or ``XFeatureModel``); takes
            ``(N, C, H, W)`` images (and ``additional_forward_args``) and
            returns ``(N,)``, ``(N, 1)`` or ``(N, outputs)``.
        inputs (Tensor): images ``(N, C, H, W)``.
        attributions (Tensor): maps ``(N, h, w)`` or ``(N, c, h, w)``; channels
            are summed and a map of another size is resized to ``(H, W)``
            (bilinear, Captum's ``LayerAttribution.interpolate``).
        target (int, list[int] or Tensor, optional): the output explained, one
            for all or one per example. Default: None (single output)
        baseline (str, float or Tensor, optional): see :func:`make_baseline`.
            Default: "blur"
        n_steps (int, optional): number of steps ``T``. Default: 20
        internal_batch_size (int, optional): images per forward pass.
            Default: None (the ``N`` images of one step per pass)
        additional_forward_args (Any, optional): extra model arguments;
            tensors with ``N`` rows are indexed along with the images.
            Default: None
        blur_sigma (float, optional): see :func:`make_baseline`. Default: None

    Returns:
        *PerturbationCurve*: fractions, scores ``(N, T+1)`` and AUC ``(N,)``.

    Examples::

        >>> maps = sa.attribute(x, target=3, concepts=[k])
        >>> xm = XFeatureModel(net, net.conv3, sa.sraes_[3])
        >>> deletion_curve(xm, x, maps, target=k).auc.mean()
    """
    return _curve("deletion", forward_func, inputs, attributions, target, **options)


def insertion_curve(
    forward_func: Callable[..., Any],
    inputs: Tensor,
    attributions: Tensor,
    target: int | list[int] | Tensor | None = None,
    **options: Unpack[CurveOptions],
) -> PerturbationCurve:
    r"""Insertion curve: start from the baseline, restore the most relevant
    pixels first.

    At step ``t`` the ``round(t/T · HW)`` highest-ranked pixels hold the
    image's values and the others the baseline's;
    ``AUC = Σ_t (s_t + s_{t+1})/(2T)``. **Higher is better**. Arguments as in
    :func:`deletion_curve`.

    Returns:
        *PerturbationCurve*: fractions, scores ``(N, T+1)`` and AUC ``(N,)``.
    """
    return _curve("insertion", forward_func, inputs, attributions, target, **options)
