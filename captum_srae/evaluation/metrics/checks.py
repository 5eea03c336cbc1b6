#!/usr/bin/env python3
"""Argument checks and small helpers shared by the metric functions."""

from __future__ import annotations

from typing import Any

import torch
from captum.attr import LayerAttribution
from torch import Tensor

from captum_srae.utils.validation import as_float_tensor, check_finite


def matrix(x: Any, name: str, *, min_rows: int = 1, allow_1d: bool = False) -> Tensor:
    """``x`` as a finite float tensor of shape ``(N, K)``.

    With ``allow_1d`` a vector ``(N,)`` becomes ``(N, 1)``.

    Raises:
        TypeError: if ``x`` is not a floating tensor/array.
        ValueError: on another rank, fewer than ``min_rows`` rows, NaN or Inf.
    """
    t = as_float_tensor(x, name)
    if allow_1d and t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2:
        want = "(N,) or (N, K)" if allow_1d else "(N, K)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(t.shape)}")
    if t.shape[0] < min_rows:
        raise ValueError(
            f"{name} must have at least {min_rows} rows (samples), got {t.shape[0]}"
        )
    if t.shape[1] < 1:
        raise ValueError(f"{name} must have at least one column, got {tuple(t.shape)}")
    check_finite(t, name)
    return t


def same_shape(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        )


def promote(*ts: Tensor) -> tuple[Tensor, ...]:
    """Cast tensors to their common floating dtype."""
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in ts) else ts[0].dtype
    return tuple(t.to(dtype) for t in ts)


def number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float within ``[low, high]`` (open ends on request)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    v = float(value)
    bad = v != v
    if low is not None:
        bad = bad or v < low or (low_open and v == low)
    if high is not None:
        bad = bad or v > high or (high_open and v == high)
    if bad:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(
            f"{name} must lie in {lo}{low if low is not None else '-inf'}, "
            f"{high if high is not None else 'inf'}{hi}, got {value!r}"
        )
    return v


def spatial_maps(
    attributions: Any, name: str, n: int, size: tuple[int, int] | None
) -> Tensor:
    """Heatmaps as ``(N, H, W)``: the channel dimension (if any) is summed and
    maps of another spatial size are resized to ``size`` (bilinear, with
    Captum's ``LayerAttribution.interpolate``).

    Accepts ``(N, H, W)`` or ``(N, C, H, W)``.
    """
    a = as_float_tensor(attributions, name)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise ValueError(
            f"{name} must have shape (N, H, W) or (N, C, H, W), got {tuple(a.shape)}"
        )
    if a.shape[0] != n:
        raise ValueError(
            f"{name} must hold {n} maps (one per example), got {a.shape[0]}"
        )
    check_finite(a, name)
    a = a.sum(dim=1, keepdim=True)
    if size is not None and tuple(a.shape[-2:]) != tuple(size):
        a = LayerAttribution.interpolate(a, tuple(size), "bilinear")
    return a[:, 0]


def bool_masks(masks: Any, name: str, ndim: int) -> Tensor:
    """Boolean masks of rank ``ndim`` (a 0/1 tensor is accepted)."""
    if not isinstance(masks, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(masks).__name__}")
    if masks.ndim != ndim:
        want = "(N, H, W)" if ndim == 3 else "(N, P, H, W)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(masks.shape)}")
    if masks.dtype != torch.bool:
        if bool(((masks != 0) & (masks != 1)).any()):
            raise ValueError(f"{name} must be boolean (or hold only 0 and 1)")
        masks = masks != 0
    return masks.detach()


def select_target(out: Tensor, target: Any, name: str = "target") -> Tensor:
    """Pick one output per example: ``out`` ``(N,)``, ``(N, 1)`` or ``(N, C)``.

    ``target`` is None (single output), an int, or a per-example list/tensor.
    """
    if not isinstance(out, Tensor):
        raise TypeError(f"forward_func must return a Tensor, got {type(out).__name__}")
    n = out.shape[0]
    if out.ndim == 1:
        out = out[:, None]
    out = out.reshape(n, -1)
    if target is None:
        if out.shape[1] != 1:
            raise ValueError(
                f"{name} is required: forward_func returns {out.shape[1]} outputs "
                "per example"
            )
        return out[:, 0]
    if isinstance(target, int) and not isinstance(target, bool):
        idx = torch.full((n,), target, dtype=torch.long)
    else:
        idx = torch.as_tensor(target).long().flatten()
        if idx.numel() != n:
            raise ValueError(
                f"{name} must be an int or hold one index per example ({n}), got "
                f"{idx.numel()} values"
            )
    if bool(((idx < 0) | (idx >= out.shape[1])).any()):
        raise ValueError(
            f"{name} out of range for {out.shape[1]} outputs: {idx.unique().tolist()}"
        )
    return out.gather(1, idx.to(out.device)[:, None])[:, 0]
