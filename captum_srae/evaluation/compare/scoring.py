#!/usr/bin/env python3
r"""The metrics of one run of :func:`~captum_srae.evaluation.compare.compare`.

:class:`ComparisonContext` holds what every method is scored on (activations,
scores, the images that get maps, part masks) and scores class maps;
:func:`concept_metrics` scores one fit of a concept method (one model per
class), with :func:`concept_map_metrics` for its maps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from captum_srae.attribution import SRAEAttribution
from captum_srae.attribution.heatmaps import XFeatureModel
from captum_srae.evaluation import metrics as M

__all__ = [
    "ComparisonContext",
    "concept_map_metrics",
    "concept_metrics",
    "finite_mean",
]


def finite_mean(values: Sequence[float]) -> float:
    """The mean of the finite values; NaN when there is none."""
    finite = [float(v) for v in values if math.isfinite(float(v))]
    return sum(finite) / len(finite) if finite else math.nan


class ComparisonContext:
    """Everything shared by the methods: activations, scores, map images."""

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
        heatmap_layer: nn.Module | str | None = None,
    ) -> None:
        self.model, self.module = model, module
        self.heatmap_layer = heatmap_layer
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
            out["pointing_game"] = float(M.pointing_game(maps, self.relevant).score)
            rma = M.relevance_mass_accuracy(maps, self.relevant)
            out["relevance_mass"] = float(rma.score)
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
        heatmap_layer=ctx.heatmap_layer,
    )
    out: dict[str, float] = {}
    x = ctx.x_maps
    purity, iou = [], []
    del_sum = ins_sum = start_sum = 0.0
    kw = {"baseline": ctx.baseline, "n_steps": ctx.n_steps}
    for t, m in models.items():
        maps = sa.attribute(x, target=t)
        if ctx.masks is not None:
            assoc = M.part_association(maps, ctx.masks)
            active = assoc.iou.sum(dim=1) > 0
            if bool(active.any()):
                purity.append(float(assoc.purity[active].mean()))
                iou.append(float(assoc.iou[active].max(dim=1).values.mean()))
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
    if purity:
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
