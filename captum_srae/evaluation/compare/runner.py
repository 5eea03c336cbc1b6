#!/usr/bin/env python3
r""":func:`compare`: SRAE, baselines and Captum methods on the same images."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_srae.activations import collect_activations, layer_name, resolve_layer
from captum_srae.attribution import SRAEAttribution
from captum_srae.attribution.heatmaps import XFeatureModel
from captum_srae.core.config import SRAEConfig
from captum_srae.evaluation import metrics as M
from captum_srae.evaluation.compare.methods import (
    DEFAULT_METHODS,
    class_maps,
    fit_concepts,
    method_kind,
)
from captum_srae.evaluation.compare.result import ComparisonResult

__all__ = ["compare"]


def _check_data(labels: Any, masks: Any, relevant_parts: Any, n: int) -> None:
    """``labels`` (N,) integer, ``relevant_parts`` indices of the masks' parts."""
    if labels is not None and (
        not isinstance(labels, Tensor)
        or labels.shape != (n,)
        or labels.dtype.is_floating_point
        or labels.dtype == torch.bool
    ):
        got = (
            (tuple(labels.shape), labels.dtype)
            if isinstance(labels, Tensor)
            else labels
        )
        raise ValueError(
            f"labels must be an integer tensor of shape ({n},), one class per "
            f"test input, got {got!r}"
        )
    if relevant_parts is not None:
        if masks is None:
            raise ValueError("relevant_parts needs masks")
        p = int(masks.shape[1])
        bad = [q for q in relevant_parts if not isinstance(q, int) or not 0 <= q < p]
        if bad or not list(relevant_parts):
            raise ValueError(
                f"relevant_parts must be indices in [0, {p}) of the masks' parts, "
                f"got {list(relevant_parts)!r}"
            )


def _check_fitted(
    fitted: Mapping[str, Mapping[int, nn.Module]],
    methods: Sequence[str],
    n_classes: int,
) -> None:
    """Pre-fitted concepts must be of compared methods and cover every class."""
    for name, models in fitted.items():
        if name not in methods:
            raise ValueError(f"fitted holds {name!r}, which is not in methods")
        missing = sorted(set(range(n_classes)) - set(models))
        if missing:
            raise ValueError(
                f"fitted[{name!r}] must hold a model for every class of the "
                f"model's {n_classes} outputs; missing classes {missing}"
            )


def _check(
    methods: Sequence[str], seeds: Sequence[int], n_maps: int, masks: Any, n: int
) -> None:
    if isinstance(methods, str) or not methods:
        raise ValueError("methods must be a non-empty sequence of method names")
    for name in methods:
        method_kind(name)
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods holds repeated names: {list(methods)}")
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise TypeError(f"seeds must be a non-empty sequence of ints, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds holds repeated values: {list(seeds)}")
    if isinstance(n_maps, bool) or not isinstance(n_maps, int) or n_maps < 1:
        raise ValueError(f"n_maps must be a positive int, got {n_maps!r}")
    if masks is not None:
        if not isinstance(masks, Tensor) or masks.ndim != 4 or masks.shape[0] != n:
            shape = tuple(masks.shape) if isinstance(masks, Tensor) else masks
            raise ValueError(
                f"masks must be a (N, P, H, W) tensor with N = {n} test inputs, "
                f"got {shape}"
            )


def _mean(values: Sequence[float]) -> float:
    finite = [float(v) for v in values if math.isfinite(float(v))]
    return sum(finite) / len(finite) if finite else math.nan


class _Context:
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
    ) -> None:
        self.model, self.module = model, module
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


def _concept_metrics(
    ctx: _Context, models: Mapping[int, nn.Module]
) -> tuple[dict[str, float], dict[int, Tensor]]:
    """All metrics of one fit of a concept method (one model per class)."""
    out: dict[str, float] = {}
    faith = [M.faithfulness(m, ctx.z_test, ctx.y_test[:, t]) for t, m in models.items()]
    for key in ("r2", "rmse", "relative_rmse", "ice_error"):
        out[key] = _mean([float(getattr(f, key).mean()) for f in faith])
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
    out["significant_features"] = _mean(sig)
    out["l0"], out["hoyer"] = _mean(l0), _mean(hoyer)
    for key in ("mean_abs_cosine", "max_abs_cosine", "mean_abs_cosine_weighted"):
        out[key] = _mean(orth[key])
    for key in ("pull_away_images", "pull_away_features", "correlation_offdiag"):
        out[key] = _mean(orth[key])
    out["reconstructed_dims"] = _mean(recon)
    out.update(_concept_map_metrics(ctx, models))
    return out, e_all


def _concept_map_metrics(
    ctx: _Context, models: Mapping[int, nn.Module]
) -> dict[str, float]:
    """Part association, concept- and class-level maps of one fit."""
    sa = SRAEAttribution.from_sraes(
        ctx.model, ctx.module, dict(models), n_outputs=ctx.n_classes
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
        out["part_purity"], out["part_iou"] = _mean(purity), _mean(iou)
    if start_sum > 0:
        out["concept_deletion_auc"] = del_sum / start_sum
        out["concept_insertion_auc"] = ins_sum / start_sum
    start = time.perf_counter()
    tgt = ctx.pred_maps.tolist()
    cls_maps = sa.attribute(x, target=tgt, output="class")[:, 0]
    out["map_seconds"] = time.perf_counter() - start
    out.update(ctx.class_map_metrics(cls_maps))
    return out


def _stability(fits: list[dict[int, Tensor]]) -> list[float]:
    """Matching scores of pairs of seeds, averaged over classes: with two seeds
    the one pair; with more, each seed with the next (cyclically), so every
    seed takes part in two pairs. Empty with one seed."""
    n = len(fits)
    if n < 2:
        return []
    pairs = [(0, 1)] if n == 2 else list(itertools.pairwise([*range(n), 0]))
    return [
        _mean([float(M.match_features(fits[j][t], fits[k][t]).score) for t in fits[j]])
        for j, k in pairs
    ]


def compare(
    model: nn.Module,
    layer: nn.Module | str,
    fit_inputs: Tensor,
    test_inputs: Tensor,
    *,
    labels: Tensor | None = None,
    masks: Tensor | None = None,
    relevant_parts: Sequence[int] | None = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    config: SRAEConfig | None = None,
    seeds: Sequence[int] = (0,),
    n_maps: int = 100,
    n_steps: int = 20,
    baseline: str = "blur",
    fitted: Mapping[str, Mapping[int, nn.Module]] | None = None,
    batch_size: int = 256,
    show_progress: bool = True,
) -> ComparisonResult:
    r"""Compare explanation methods on one model, layer and data set.

    Concept methods (SRAE and the baselines of :mod:`captum_srae.evaluation.baselines`)
    fit ``config.n_concepts`` concepts for every class on the pooled
    activations of ``fit_inputs``, once per seed; single-map methods (Captum's
    ``LayerGradCam``, ``GuidedGradCam``, ``IntegratedGradients``,
    ``Saliency``; ``"pytorch-grad-cam"`` with the ``peers`` extra) need no
    fitting. On ``test_inputs`` every concept method gets the faithfulness,
    agreement, conciseness, orthogonality and reconstruction metrics; on the
    first ``n_maps`` test inputs every method's class map (for the model's
    predicted class) gets deletion and insertion AUCs and, with ``masks``,
    the pointing game and relevance mass against the union of the
    ``relevant_parts`` masks, and concept maps get the part association. See
    :data:`~captum_srae.evaluation.compare.METRIC_INFO` and :mod:`captum_srae.evaluation.metrics`
    for the definitions.

    Args:
        model (nn.Module): the classifier, returning ``(N, C)`` scores.
        layer (nn.Module or str): the explained layer.
        fit_inputs (Tensor): images the concepts are fitted on.
        test_inputs (Tensor): held-out images.
        labels (Tensor, optional): true classes of ``test_inputs``, for
            completeness. Default: None
        masks (Tensor, optional): boolean part masks ``(N, P, H, W)`` of
            ``test_inputs``. Default: None (no localisation metrics)
        relevant_parts (Sequence[int], optional): the parts the classes
            depend on, for the class-map localisation. Default: None (all)
        methods (Sequence[str], optional): names of
            :data:`~captum_srae.evaluation.compare.CONCEPT_METHODS` and
            :data:`~captum_srae.evaluation.compare.MAP_METHODS`.
            Default: :data:`~captum_srae.evaluation.compare.DEFAULT_METHODS`
        config (SRAEConfig, optional): the SRAE's settings; ``n_concepts``
            and ``pooling`` apply to every concept method, the autoencoder
            ablation changes only its documented fields. Default: None
            (``SRAEConfig()``)
        seeds (Sequence[int], optional): one fit of each concept method per
            seed; the table gives mean ± sd. Default: (0,)
        n_maps (int, optional): test inputs that get maps. Default: 100
        n_steps (int, optional): deletion/insertion steps. Default: 20
        baseline (str, optional): deletion/insertion baseline, "blur" or
            "mean". Default: "blur"
        fitted (Mapping, optional): already fitted concepts for the first
            seed, ``{method: {class: model}}`` (e.g.
            ``{"SRAE": explainer.sraes_}``). Default: None
        batch_size (int, optional): images per forward pass when collecting
            activations. Default: 256
        show_progress (bool, optional): a progress bar over the runs.
            Default: True

    Returns:
        *ComparisonResult*: the table; ``to_dict()``, ``to_markdown()``,
        ``to_csv()`` and ``plot()`` write it out.

    Raises:
        ValueError: on an unknown or repeated method, repeated seeds, bad
            ``n_maps``, ``masks``, ``labels`` or ``relevant_parts``, ``fitted``
            concepts that miss a class, or NMF on negative activations (all
            checked before the first fit).
        TypeError: if ``seeds`` are not ints.

    Examples::

        >>> from captum_srae.evaluation.compare import compare
        >>> res = compare(cnn, "conv4", x_train, x_test, masks=masks_test,
        ...               relevant_parts=[2, 3], seeds=(0, 1, 2))
        >>> print(res.to_markdown(["r2", "top1_agreement", "part_purity"]))
    """
    _check(methods, seeds, n_maps, masks, int(test_inputs.shape[0]))
    _check_data(labels, masks, relevant_parts, int(test_inputs.shape[0]))
    cfg = config if config is not None else SRAEConfig()
    module = resolve_layer(model, layer)
    was_training = model.training
    model.eval()
    try:
        kw = {"pooling": cfg.pooling, "batch_size": batch_size}
        z_fit, y_fit = collect_activations(model, module, fit_inputs, **kw)
        z_test, y_test = collect_activations(model, module, test_inputs, **kw)
        _check_fitted(fitted or {}, methods, int(y_test.shape[1]))
        if "NMF" in methods and float(z_fit.min()) < 0:
            raise ValueError(
                "methods: 'NMF' needs nonnegative activations, but the layer's "
                f"pooled activations reach {float(z_fit.min()):.3g}; choose a "
                "layer after a ReLU or leave NMF out of methods"
            )
        n = min(n_maps, int(test_inputs.shape[0]))
        relevant = None
        if masks is not None:
            parts = (
                list(range(masks.shape[1]))
                if relevant_parts is None
                else list(relevant_parts)
            )
            relevant = masks[:n][:, parts].any(dim=1)
        ctx = _Context(
            model, module, z_fit, y_fit, z_test, y_test, test_inputs[:n],
            labels, None if masks is None else masks[:n], relevant, n_steps, baseline,
        )  # fmt: skip
        return _run(ctx, methods, cfg, seeds, fitted or {}, show_progress, layer)
    finally:
        model.train(was_training)


def _run(
    ctx: _Context,
    methods: Sequence[str],
    cfg: SRAEConfig,
    seeds: Sequence[int],
    fitted: Mapping[str, Mapping[int, nn.Module]],
    show_progress: bool,
    layer: nn.Module | str,
) -> ComparisonResult:
    kinds = {name: method_kind(name) for name in methods}
    total = sum(len(seeds) if k == "concept" else 1 for k in kinds.values())
    per_seed: dict[str, list[dict[str, float]]] = {}
    bar = tqdm(total=total, desc="compare", disable=not show_progress)
    try:
        for name in methods:
            runs: list[dict[str, float]] = []
            if kinds[name] == "map":
                bar.set_postfix_str(name)
                start = time.perf_counter()
                maps = class_maps(
                    name, ctx.model, ctx.module, ctx.x_maps, ctx.pred_maps
                )
                row = {"map_seconds": time.perf_counter() - start}
                row.update(ctx.class_map_metrics(maps))
                per_seed[name] = [row]
                bar.update()
                continue
            features = []
            for j, seed in enumerate(seeds):
                bar.set_postfix_str(f"{name}, seed {seed}")
                start = time.perf_counter()
                if j == 0 and name in fitted:
                    models = dict(fitted[name])
                else:
                    models = {
                        t: fit_concepts(name, ctx.z_fit, ctx.y_fit[:, t], cfg, seed)
                        for t in range(ctx.n_classes)
                    }
                fit_time = time.perf_counter() - start
                row, e = _concept_metrics(ctx, models)
                row["fit_seconds"] = fit_time
                runs.append(row)
                features.append(e)
                bar.update()
            for row, score in zip(runs, _stability(features), strict=False):
                row["stability"] = score
            per_seed[name] = runs
    finally:
        bar.close()
    return ComparisonResult(
        methods=list(methods),
        kinds=kinds,
        per_seed=per_seed,
        seeds=list(seeds),
        settings={
            "layer": layer if isinstance(layer, str) else layer_name(ctx.model, layer),
            "n_concepts": cfg.n_concepts,
            "n_fit": int(ctx.z_fit.shape[0]),
            "n_test": int(ctx.z_test.shape[0]),
            "n_maps": int(ctx.x_maps.shape[0]),
            "n_steps": ctx.n_steps,
            "baseline": ctx.baseline,
        },
    )
