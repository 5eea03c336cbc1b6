#!/usr/bin/env python3
r"""The metrics of one run of :func:`~captum_srae.evaluation.compare.compare`.

:class:`ComparisonContext` holds what every method is scored on (activations,
scores, the images that get maps, part masks) and scores class maps;
:func:`concept_metrics` scores one fit of a concept method (one model per
class), with :func:`concept_map_metrics` for its maps.

:func:`concept_map_scores` and :func:`class_map_scores` are the localisation
scores of the table as plain functions of maps and masks, so the maps of any
method (yours included) get the same numbers as the compared ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from captum_srae.attribution import SRAEAttribution
from captum_srae.attribution.heatmaps import XFeatureModel
from captum_srae.evaluation import metrics as M
from captum_srae.evaluation.compare.protocol import ConceptMethodModel

__all__ = [
    "ComparisonContext",
    "class_map_scores",
    "concept_map_metrics",
    "concept_map_scores",
    "concept_metrics",
    "finite_mean",
]


def finite_mean(values: Sequence[float]) -> float:
    """The mean of the finite values; NaN when there is none."""
    finite = [float(v) for v in values if math.isfinite(float(v))]
    return sum(finite) / len(finite) if finite else math.nan


def concept_map_scores(maps: Tensor, masks: Tensor) -> dict[str, float]:
    r"""Part purity and part IoU of concept maps: the ``part_purity`` and
    ``part_iou`` columns of :func:`compare` for one class.

    :func:`~captum_srae.evaluation.metrics.part_association` (relative
    threshold: half each image's peak) gives the data-set IoU of every
    concept with every part; over the concepts that overlap some part,
    ``part_purity`` is the mean purity ``max_q IoU_kq / Σ_q IoU_kq`` and
    ``part_iou`` the mean best IoU ``max_q IoU_kq``. Both are NaN when no
    concept overlaps a part. Higher is better.

    Args:
        maps (Tensor): concept maps ``(N, k, h, w)`` (any spatial size; they
            are resized to the masks').
        masks (Tensor): boolean part masks ``(N, P, H, W)``.

    Returns:
        *dict[str, float]*: ``{"part_purity": ..., "part_iou": ...}``.

    Raises:
        ValueError: on mismatched shapes or non-finite maps.

    Examples::

        >>> from captum_srae.evaluation.compare import concept_map_scores
        >>> maps = my_method_maps(x)            # (N, k, h, w), yours
        >>> concept_map_scores(maps, data.masks)
        {'part_purity': 0.83, 'part_iou': 0.41}
    """
    assoc = M.part_association(maps, masks)
    active = assoc.iou.sum(dim=1) > 0
    if not bool(active.any()):
        return {"part_purity": math.nan, "part_iou": math.nan}
    return {
        "part_purity": float(assoc.purity[active].mean()),
        "part_iou": float(assoc.iou[active].max(dim=1).values.mean()),
    }


def class_map_scores(
    maps: Tensor, masks: Tensor, *, parts: Sequence[int] | None = None
) -> dict[str, float]:
    r"""Pointing game and relevance mass of class maps: the ``pointing_game``
    and ``relevance_mass`` columns of :func:`compare`.

    The relevant region of image ``i`` is ``masks[i]`` when the masks are
    ``(N, H, W)``, else the union of the ``parts`` of ``(N, P, H, W)`` masks
    (all parts by default, like ``relevant_parts`` of :func:`compare`). See
    :func:`~captum_srae.evaluation.metrics.pointing_game` and
    :func:`~captum_srae.evaluation.metrics.relevance_mass_accuracy`. Higher is
    better.

    Args:
        maps (Tensor): class maps ``(N, h, w)`` or ``(N, c, h, w)`` (channels
            summed; resized to the masks').
        masks (Tensor): boolean ``(N, H, W)`` relevant regions or
            ``(N, P, H, W)`` part masks.
        parts (Sequence[int], optional): the relevant parts of 4-D masks.
            Default: None (all)

    Returns:
        *dict[str, float]*: ``{"pointing_game": ..., "relevance_mass": ...}``.

    Raises:
        ValueError: on mismatched shapes, or ``parts`` with 3-D masks.

    Examples::

        >>> from captum_srae.evaluation.compare import class_map_scores
        >>> class_map_scores(my_maps, data.masks, parts=[2, 3])
        {'pointing_game': 0.9, 'relevance_mass': 0.55}
    """
    if not isinstance(masks, Tensor) or masks.ndim not in (3, 4):
        shape = tuple(masks.shape) if isinstance(masks, Tensor) else masks
        raise ValueError(
            f"masks must be a boolean (N, H, W) or (N, P, H, W) tensor, got {shape}"
        )
    if masks.ndim == 4:
        chosen = list(range(masks.shape[1])) if parts is None else list(parts)
        masks = masks[:, chosen].any(dim=1)
    elif parts is not None:
        raise ValueError("parts needs (N, P, H, W) masks, got (N, H, W) masks")
    return {
        "pointing_game": float(M.pointing_game(maps, masks).score),
        "relevance_mass": float(M.relevance_mass_accuracy(maps, masks).score),
    }


class ComparisonContext:
    """Everything shared by the methods: activations, scores, map images;
    ``map_settings``: the keyword arguments of
    :meth:`~captum_srae.SRAEAttribution.from_sraes` that set the concept maps
    (``heatmap_layer``, ``map_method``, ``map_smoothing``)."""

    def __init__(
        self,
        model: nn.Module,
        module: nn.Module,
        z_fit: Tensor,
        y_fit: Tensor,
        z_test: Tensor,
        y_test: Tensor,
        x_maps: Tensor,
        labels: Tensor | None,
        masks: Tensor | None,
        relevant: Tensor | None,
        n_steps: int,
        baseline: str,
        map_settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.model, self.module = model, module
        self.map_settings = dict(map_settings or {})
        self.z_fit, self.y_fit, self.z_test, self.y_test = z_fit, y_fit, z_test, y_test
        self.x_maps, self.labels, self.masks = x_maps, labels, masks
        self.relevant, self.n_steps, self.baseline = relevant, n_steps, baseline
        self.pred = y_test.argmax(dim=1)
        self.pred_maps = self.pred[: x_maps.shape[0]]
        self.n_classes = int(y_test.shape[1])

    def class_map_metrics(self, maps: Tensor) -> dict[str, float]:
        """Localisation and deletion/insertion of class maps ``(n, H, W)``."""
        out: dict[str, float] = {}
        if self.relevant is not None:
            out.update(class_map_scores(maps, self.relevant))
        kw = {"baseline": self.baseline, "n_steps": self.n_steps}
        tgt = self.pred_maps
        out["deletion_auc"] = float(
            M.deletion_curve(self.model, self.x_maps, maps, tgt, **kw).auc.mean()
        )
        out["insertion_auc"] = float(
            M.insertion_curve(self.model, self.x_maps, maps, tgt, **kw).auc.mean()
        )
        return out


def concept_metrics(
    ctx: ComparisonContext, models: Mapping[int, nn.Module]
) -> tuple[dict[str, float], dict[int, Tensor]]:
    """All metrics of one fit of a concept method (one model per class)."""
    out: dict[str, float] = {}
    faith = [M.faithfulness(m, ctx.z_test, ctx.y_test[:, t]) for t, m in models.items()]
    for key in ("r2", "rmse", "relative_rmse", "ice_error"):
        out[key] = finite_mean([float(getattr(f, key).mean()) for f in faith])
    e_all: dict[int, Tensor] = {}
    xnn: dict[int, Tensor] = {}
    sig, l0, hoyer, recon = [], [], [], []
    orth: dict[str, list[float]] = {}
    with torch.no_grad():
        for t, m in models.items():
            e = m.encode(ctx.z_test)
            e_all[t], xnn[t] = e, m.predict(e)[:, 0]
            rows = ctx.pred == t
            if bool(rows.any()):
                c = m.contributions(e[rows])[:, 0, :]
                positive = c.clamp_min(0).sum(dim=1) > 0  # else m_i = 0: no credit
                if bool(positive.any()):
                    counts = M.significant_features(c[positive]).float()
                    sig.append(float(counts.mean()))
            l0.append(float(M.l0_sparsity(e, as_fraction=True).mean()))
            hoyer.append(float(M.hoyer_sparsity(e).mean()))
            res = M.orthogonality(e, m.weight[0])
            for key, value in res._asdict().items():
                orth.setdefault(key, []).append(float(value))
            if getattr(m, "has_decoder", True):  # else NaN: no reconstruction
                pr = M.partial_reconstruction(m.decode(e), ctx.z_test)
                recon.append(float(pr.fraction_explained))
    out["top1_agreement"] = float(M.top1_agreement(ctx.y_test, xnn))
    if ctx.labels is not None and ctx.n_classes >= 2:
        try:
            out["completeness"] = float(M.completeness(ctx.labels, ctx.y_test, xnn))
        except ValueError:  # model not better than chance: undefined
            pass
    out["significant_features"] = finite_mean(sig)
    out["l0"], out["hoyer"] = finite_mean(l0), finite_mean(hoyer)
    for key in ("mean_abs_cosine", "max_abs_cosine", "mean_abs_cosine_weighted"):
        out[key] = finite_mean(orth[key])
    for key in ("pull_away_images", "pull_away_features", "correlation_offdiag"):
        out[key] = finite_mean(orth[key])
    out["reconstructed_dims"] = finite_mean(recon)
    out.update(concept_map_metrics(ctx, models))
    return out, e_all


def concept_map_metrics(
    ctx: ComparisonContext, models: Mapping[int, nn.Module]
) -> dict[str, float]:
    """Part association, concept- and class-level maps of one fit."""
    sa = SRAEAttribution.from_sraes(
        ctx.model,
        ctx.module,
        dict(models),
        n_outputs=ctx.n_classes,
        **ctx.map_settings,
    )
    out: dict[str, float] = {}
    x = ctx.x_maps
    purity, iou = [], []
    del_sum = ins_sum = start_sum = 0.0
    kw = {"baseline": ctx.baseline, "n_steps": ctx.n_steps}
    for t, m in models.items():
        if isinstance(m, ConceptMethodModel) and m.has_concept_maps:
            maps = m.concept_maps(ctx.model, ctx.module, x)
        else:
            maps = sa.attribute(x, target=t)
        if ctx.masks is not None:
            scores = concept_map_scores(maps, ctx.masks)
            purity.append(scores["part_purity"])
            iou.append(scores["part_iou"])
        rows = torch.nonzero(ctx.pred_maps == t).flatten()
        if rows.numel() == 0:
            continue
        with torch.no_grad():
            c = m.contributions(m.encode(ctx.z_test[rows]))[:, 0, :]
        top = c.argmax(dim=1)
        xm = XFeatureModel(ctx.model, ctx.module, m, pooling=m.config.pooling)
        sel = maps[rows, top]
        with torch.no_grad():
            start = xm(x[rows]).gather(1, top[:, None])[:, 0]
        keep = start > 1e-6  # normalise by the x-feature's own value
        if not bool(keep.any()):
            continue
        xs, ss, ks, s0 = x[rows][keep], sel[keep], top[keep], start[keep]
        # summed AUCs over summed start values: images where the x-feature is
        # barely active cannot dominate the ratio
        del_sum += float(M.deletion_curve(xm, xs, ss, ks, **kw).auc.sum())
        ins_sum += float(M.insertion_curve(xm, xs, ss, ks, **kw).auc.sum())
        start_sum += float(s0.sum())
    if any(math.isfinite(v) for v in purity):
        out["part_purity"], out["part_iou"] = finite_mean(purity), finite_mean(iou)
    if start_sum > 0:
        out["concept_deletion_auc"] = del_sum / start_sum
        out["concept_insertion_auc"] = ins_sum / start_sum
    start = time.perf_counter()
    tgt = ctx.pred_maps.tolist()
    cls_maps = sa.attribute(x, target=tgt, output="class")[:, 0]
    out["map_seconds"] = time.perf_counter() - start
    out.update(ctx.class_map_metrics(cls_maps))
    return out
