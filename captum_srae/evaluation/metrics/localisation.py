#!/usr/bin/env python3
r"""Localisation of heatmaps against ground-truth part masks.

Masks are boolean ``(N, H, W)`` (one part per image) or ``(N, P, H, W)``
(every part, like ``make_parts_dataset(...).masks``). Maps ``(N, h, w)`` or
``(N, c, h, w)`` are channel-summed and resized to the masks' size (bilinear,
Captum's ``LayerAttribution.interpolate``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from captum_srae.evaluation.metrics.checks import bool_masks, number, spatial_maps
from captum_srae.utils.validation import as_float_tensor, check_finite, check_int

__all__ = [
    "LocalisationScore",
    "PartAssociation",
    "part_association",
    "pointing_game",
    "relevance_mass_accuracy",
]


class LocalisationScore(NamedTuple):
    """A per-image localisation score and its mean.

    Attributes:
        score (Tensor): mean of ``per_image`` over the valid images (scalar;
            NaN when no image is valid).
        per_image (Tensor): ``(N,)`` float, NaN where not valid.
        valid (Tensor): ``(N,)`` bool, the images that were scored.
    """

    score: Tensor
    per_image: Tensor
    valid: Tensor


def _maps_and_masks(attributions: Any, masks: Any) -> tuple[Tensor, Tensor]:
    m = bool_masks(masks, "masks", 3)
    a = spatial_maps(attributions, "attributions", m.shape[0], tuple(m.shape[-2:]))
    return a, m.to(a.device)


def _result(per_image: Tensor, valid: Tensor) -> LocalisationScore:
    per_image = torch.where(valid, per_image, torch.full_like(per_image, float("nan")))
    score = (
        per_image[valid].mean()
        if bool(valid.any())
        else per_image.new_tensor(float("nan"))
    )
    return LocalisationScore(score, per_image, valid)


def _within(masks: Tensor, tolerance: int) -> Tensor:
    """Boolean ``(N, H, W)``: the pixels at Euclidean distance at most
    ``tolerance`` from the mask (the mask dilated by a disk)."""
    if tolerance == 0:
        return masks
    r = torch.arange(-tolerance, tolerance + 1, device=masks.device)
    disk = (r[:, None] ** 2 + r[None, :] ** 2 <= tolerance**2).float()
    spread = torch.nn.functional.conv2d(
        masks[:, None].float(), disk[None, None], padding=tolerance
    )
    return spread[:, 0] > 0


def pointing_game(
    attributions: Tensor, masks: Tensor, *, tolerance: int = 0
) -> LocalisationScore:
    r"""Pointing game (Zhang et al., "Top-down Neural Attention by Excitation
    Backprop", ECCV 2016): is the maximum of the map inside the part?

    Image ``i`` is a hit when the map's maximum value is attained at a pixel
    of the mask (``max_{p ∈ M_i} a_ip = max_p a_ip``), or, with
    ``tolerance`` ``t > 0``, at a pixel within Euclidean distance ``t`` of
    the mask (Zhang et al. allow 15 pixels on PASCAL VOC and COCO images;
    TorchRay's benchmark does too). Images whose mask is empty (part absent)
    are skipped; a constant map (no maximum) is a miss.
    ``accuracy = hits / (hits + misses)``. **Higher is better**; a random map
    scores about the mask's area fraction (of the dilated mask's with a
    tolerance).

    Args:
        attributions (Tensor): maps ``(N, h, w)`` or ``(N, c, h, w)``.
        masks (Tensor): boolean ``(N, H, W)``, e.g. ``data.masks[:, q]``.
        tolerance (int, optional): pixels (at the masks' resolution) by
            which the peak may miss the mask. Default: 0 (inside the mask)

    Returns:
        *LocalisationScore*: accuracy, per-image hit (1/0) and valid images.

    Examples::

        >>> m = torch.zeros(1, 4, 4, dtype=torch.bool); m[0, 1, 2] = True
        >>> float(pointing_game(m.float(), m).score)
        1.0
        >>> a = torch.zeros(1, 4, 4); a[0, 1, 3] = 1.0  # one pixel beside it
        >>> float(pointing_game(a, m).score)
        0.0
        >>> float(pointing_game(a, m, tolerance=1).score)
        1.0
    """
    tolerance = check_int(tolerance, "tolerance", minimum=0)
    a, m = _maps_and_masks(attributions, masks)
    near = _within(m, tolerance)
    flat, mf = a.flatten(1), near.flatten(1)
    top = flat.max(dim=1).values
    inside = torch.where(mf, flat, torch.full_like(flat, -torch.inf)).max(dim=1).values
    constant = flat.min(dim=1).values == top
    hit = (inside >= top) & ~constant
    return _result(hit.to(a.dtype), m.flatten(1).any(dim=1))


def relevance_mass_accuracy(attributions: Tensor, masks: Tensor) -> LocalisationScore:
    r"""Relevance mass accuracy (Arras, Osman, Samek, "CLEVR-XAI", Information
    Fusion 2022): the share of the positive relevance inside the part.

    ``RMA_i = Σ_{p ∈ M_i} max(a_ip, 0) / Σ_p max(a_ip, 0)``. Images with an
    empty mask or without positive relevance are skipped. **Higher is
    better**, in ``[0, 1]``; a random nonnegative map scores about the mask's
    area fraction.

    Args:
        attributions (Tensor): maps ``(N, h, w)`` or ``(N, c, h, w)``.
        masks (Tensor): boolean ``(N, H, W)``.

    Returns:
        *LocalisationScore*
    """
    a, m = _maps_and_masks(attributions, masks)
    pos = a.clamp_min(0).flatten(1)
    total = pos.sum(dim=1)
    inside = (pos * m.flatten(1)).sum(dim=1)
    valid = m.flatten(1).any(dim=1) & (total > 0)
    return _result(
        inside / torch.where(total > 0, total, torch.ones_like(total)), valid
    )


class PartAssociation(NamedTuple):
    """Association of x-features (or any maps) with parts.

    Attributes:
        iou (Tensor): ``(K, P)`` data-set IoU of map ``k``'s region with part
            ``q`` (higher: stronger association).
        purity (Tensor): ``(K,)`` ``max_q IoU_kq / Σ_q IoU_kq`` in
            ``[1/P, 1]`` (1: one part only); 0 for a map that overlaps no part.
        covers (Tensor): ``(K, P)`` bool, ``IoU_kq > cover_threshold``.
        thresholds (Tensor): the binarisation threshold used per map ``k``
            (``(K,)`` for ``"quantile"``; ``(N, K)`` for ``"relative"``).
    """

    iou: Tensor
    purity: Tensor
    covers: Tensor
    thresholds: Tensor


def _association_inputs(attributions: Any, masks: Any) -> tuple[Tensor, Tensor]:
    """Checked ``(N, K, h, w)`` maps and ``(N, P, H, W)`` boolean masks."""
    m = bool_masks(masks, "masks", 4)
    a = as_float_tensor(attributions, "attributions")
    if a.ndim != 4 or a.shape[0] != m.shape[0]:
        raise ValueError(
            f"attributions must have shape ({m.shape[0]}, K, h, w), got "
            f"{tuple(a.shape)}"
        )
    check_finite(a, "attributions")
    return a, m


def _association_levels(
    threshold: str, level: float | None, cover_threshold: float
) -> tuple[float, float]:
    """The checked binarisation ``level`` (or its default) and cover threshold."""
    if threshold not in ("relative", "quantile"):
        raise ValueError(
            f"threshold must be 'relative' or 'quantile', got {threshold!r}"
        )
    lvl = number(
        (0.5 if threshold == "relative" else 0.8) if level is None else level,
        "level",
        low=0,
        high=1,
    )
    return lvl, number(cover_threshold, "cover_threshold", low=0, high=1)


def _binarised(maps: Tensor, threshold: str, level: float) -> tuple[Tensor, Tensor]:
    """The region ``T_ik`` of flat maps ``(N, HW)`` and its threshold(s)."""
    if threshold == "relative":
        tau = level * maps.max(dim=1, keepdim=True).values
        return (maps > 0) & (maps >= tau), tau[:, 0]
    # numpy: torch.quantile refuses inputs above 2**24 values
    tau = maps.new_tensor(float(np.quantile(maps.cpu().numpy(), level)))
    return maps > tau, tau


def part_association(
    attributions: Tensor,
    masks: Tensor,
    *,
    threshold: str = "relative",
    level: float | None = None,
    cover_threshold: float = 0.2,
) -> PartAssociation:
    r"""IoU of each x-feature's thresholded maps with each part, over the data.

    ``IoU_kq = Σ_i |T_ik ∩ M_iq| / Σ_i |T_ik ∪ M_iq|`` where ``T_ik`` is the
    binarised map of x-feature ``k`` on image ``i``:

    - ``threshold="relative"`` (default): ``T_ik = {p : a_ikp > 0 and a_ikp ≥
      level · max_p a_ikp}``, ``level`` default 0.5 (half the image's peak);
    - ``threshold="quantile"``: ``T_ik = {p : a_ikp > τ_k}`` with ``τ_k`` the
      ``level`` quantile of map ``k``'s values over the whole data set,
      ``level`` default 0.8 (the top 20 % of pixels). Network Dissection
      (Bau et al., CVPR 2017) uses the top 0.5 % and an IoU of 0.04 for
      large scene images with small concepts.

    ``purity_k = max_q IoU_kq / Σ_q IoU_kq``; a map covers part ``q`` when
    ``IoU_kq > cover_threshold`` (default 0.2, the project's choice for parts
    filling a few percent of the image or more). Higher IoU and purity are
    better.

    Args:
        attributions (Tensor): ``(N, K, h, w)`` maps, one per x-feature
            (e.g. ``sa.attribute(x, target=c)``).
        masks (Tensor): boolean ``(N, P, H, W)``.
        threshold (str, optional): ``"relative"`` or ``"quantile"``.
            Default: "relative"
        level (float, optional): in ``[0, 1]``. Default: None (0.5 or 0.8)
        cover_threshold (float, optional): in ``[0, 1]``. Default: 0.2

    Returns:
        *PartAssociation*
    """
    a, m = _association_inputs(attributions, masks)
    lvl, cov = _association_levels(threshold, level, cover_threshold)
    size = tuple(m.shape[-2:])
    n, k = a.shape[:2]
    mf = m.flatten(2).to(a.device)  # (N, P, HW)
    iou = a.new_zeros(k, m.shape[1])
    thresholds = []
    for j in range(k):
        maps = spatial_maps(a[:, j], f"attributions[:, {j}]", n, size).flatten(1)
        region, tau = _binarised(maps, threshold, lvl)
        thresholds.append(tau)
        inter = (region[:, None] & mf).sum(dim=(0, 2))
        union = (region[:, None] | mf).sum(dim=(0, 2))
        iou[j] = inter.to(a.dtype) / union.clamp_min(1).to(a.dtype)
    total = iou.sum(dim=1)
    purity = torch.where(
        total > 0,
        iou.max(dim=1).values / torch.where(total > 0, total, torch.ones_like(total)),
        torch.zeros_like(total),
    )
    thr = torch.stack(thresholds, dim=-1)
    return PartAssociation(iou, purity, iou > cov, thr)
