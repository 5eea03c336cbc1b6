#!/usr/bin/env python3
r""":func:`compare`: SRAE, baselines and Captum methods on the same images.

Concept methods (SRAE and the baselines of :mod:`captum_srae.evaluation.baselines`)
fit ``config.n_concepts`` concepts for every class on the pooled activations
of ``fit_inputs``, once per seed; single-map methods (Captum's
``LayerGradCam``, ``GuidedGradCam``, ``IntegratedGradients``, ``Saliency``;
``"pytorch-grad-cam"`` with the ``peers`` extra) need no fitting. On
``test_inputs`` every concept method gets the faithfulness, agreement,
conciseness, orthogonality and reconstruction metrics; on the first
``n_maps`` test inputs every method's class map (for the model's predicted
class) gets deletion and insertion AUCs and, with ``masks``, the pointing
game and relevance mass against the union of the ``relevant_parts`` masks,
and concept maps get the part association. See
:data:`~captum_srae.evaluation.compare.METRIC_INFO` and
:mod:`captum_srae.evaluation.metrics` for the definitions.

Examples::

    >>> from captum_srae.evaluation.compare import compare
    >>> res = compare(cnn, "conv4", x_train, x_test, masks=masks_test,
    ...               relevant_parts=[2, 3], seeds=(0, 1, 2))
    >>> print(res.to_markdown(["r2", "top1_agreement", "part_purity"]))
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_srae.activations import collect_activations, layer_name, resolve_layer
from captum_srae.core.config import SRAEConfig
from captum_srae.evaluation import metrics as M
from captum_srae.evaluation.compare.methods import (
    DEFAULT_METHODS,
    class_maps,
    fit_concepts,
    method_kind,
)
from captum_srae.evaluation.compare.result import ComparisonResult
from captum_srae.evaluation.compare.scoring import (
    ComparisonContext,
    concept_metrics,
    finite_mean,
)
from captum_srae.utils.validation import check_int

__all__ = ["compare", "seed_stability"]


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


def _check_activations(
    ctx: ComparisonContext,
    methods: Sequence[str],
    fitted: Mapping[str, Mapping[int, nn.Module]],
) -> None:
    """Pre-fitted concepts must be of compared methods and cover every class;
    NMF needs nonnegative activations."""
    for name, models in fitted.items():
        if name not in methods:
            raise ValueError(f"fitted holds {name!r}, which is not in methods")
        missing = sorted(set(range(ctx.n_classes)) - set(models))
        if missing:
            raise ValueError(
                f"fitted[{name!r}] must hold a model for every class of the "
                f"model's {ctx.n_classes} outputs; missing classes {missing}"
            )
    if "NMF" in methods and float(ctx.z_fit.min()) < 0:
        raise ValueError(
            "methods: 'NMF' needs nonnegative activations, but the layer's "
            f"pooled activations reach {float(ctx.z_fit.min()):.3g}; choose a "
            "layer after a ReLU or leave NMF out of methods"
        )


def _check(
    methods: Sequence[str], seeds: Sequence[int], n_maps: int, masks: Any, n: int
) -> None:
    """Known, distinct methods; distinct int seeds; ``n_maps``; ``masks`` shape."""
    if isinstance(methods, str) or not methods:
        raise ValueError("methods must be a non-empty sequence of method names")
    for name in methods:
        method_kind(name)
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods holds repeated names: {list(methods)}")
    if not seeds:
        raise ValueError(f"seeds must be a non-empty sequence of ints, got {seeds!r}")
    for s in seeds:
        check_int(s, "seeds[i]", minimum=None)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds holds repeated values: {list(seeds)}")
    check_int(n_maps, "n_maps")
    if masks is not None:
        if not isinstance(masks, Tensor) or masks.ndim != 4 or masks.shape[0] != n:
            shape = tuple(masks.shape) if isinstance(masks, Tensor) else masks
            raise ValueError(
                f"masks must be a (N, P, H, W) tensor with N = {n} test inputs, "
                f"got {shape}"
            )


def seed_stability(fits: list[dict[int, Tensor]]) -> list[float]:
    """Stability of concept fits across seeds, one score per pair of seeds.

    The score of a pair is :func:`~captum_srae.evaluation.metrics.match_features`
    of the two fits' x-features, averaged over classes. With two seeds there
    is the one pair; with more, each seed is paired with the next
    (cyclically), so every seed takes part in two pairs.

    Args:
        fits (list[dict[int, Tensor]]): per seed, the x-features
            ``(N, n_concepts)`` of each class on the same held-out inputs.

    Returns:
        *list[float]*: one score per pair; empty with one seed.
    """
    n = len(fits)
    if n < 2:
        return []
    pairs = [(0, 1)] if n == 2 else list(itertools.pairwise([*range(n), 0]))
    return [
        finite_mean(
            [float(M.match_features(fits[j][t], fits[k][t]).score) for t in fits[j]]
        )
        for j, k in pairs
    ]


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode for the block, then restore its ``training``."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _context(
    model: nn.Module,
    module: nn.Module,
    fit_inputs: Tensor,
    test_inputs: Tensor,
    cfg: SRAEConfig,
    batch_size: int,
    labels: Tensor | None,
    masks: Tensor | None,
    relevant_parts: Sequence[int] | None,
    n: int,
    n_steps: int,
    baseline: str,
    heatmap_layer: nn.Module | str | None,
) -> ComparisonContext:
    """Collect the activations and scores; keep ``n`` map inputs and masks."""
    kw = {"pooling": cfg.pooling, "batch_size": batch_size}
    z_fit, y_fit = collect_activations(model, module, fit_inputs, **kw)
    z_test, y_test = collect_activations(model, module, test_inputs, **kw)
    relevant = None
    if masks is not None:
        parts = (
            list(range(masks.shape[1]))
            if relevant_parts is None
            else list(relevant_parts)
        )
        relevant = masks[:n][:, parts].any(dim=1)
    return ComparisonContext(
        model, module, z_fit, y_fit, z_test, y_test, test_inputs[:n],
        labels, None if masks is None else masks[:n], relevant, n_steps, baseline,
        heatmap_layer,
    )  # fmt: skip


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
    heatmap_layer: nn.Module | str | None = None,
) -> ComparisonResult:
    r"""Compare explanation methods on one model, layer and data set.

    Concept methods fit concepts per class on ``fit_inputs``; every method is
    scored on ``test_inputs`` as :doc:`/compare` (and this module's docstring)
    describes; the columns: :data:`~captum_srae.evaluation.compare.METRIC_INFO`.

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
        methods (Sequence[str], optional): names of ``CONCEPT_METHODS`` and
            ``MAP_METHODS``. Default: ``DEFAULT_METHODS``
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
        show_progress (bool, optional): a progress bar. Default: True
        heatmap_layer (nn.Module or str, optional): where the concept maps
            are drawn. Default: None (``layer``)

    Returns:
        *ComparisonResult*: the table; ``to_dict()``, ``to_markdown()``,
        ``to_csv()`` and ``plot()`` write it out.

    Raises:
        ValueError: on an unknown or repeated method, repeated seeds, bad
            ``n_maps``, ``masks``, ``labels`` or ``relevant_parts``, ``fitted``
            concepts that miss a class, or NMF on negative activations.
        TypeError: if ``seeds`` or ``n_maps`` are not ints.
    """
    n = int(test_inputs.shape[0])
    _check(methods, seeds, n_maps, masks, n)
    _check_data(labels, masks, relevant_parts, n)
    cfg = config if config is not None else SRAEConfig()
    module = resolve_layer(model, layer)
    with _eval_mode(model):
        ctx = _context(
            model, module, fit_inputs, test_inputs, cfg, batch_size, labels, masks,
            relevant_parts, min(n_maps, n), n_steps, baseline, heatmap_layer,
        )  # fmt: skip
        _check_activations(ctx, methods, fitted or {})
        return _run(ctx, methods, cfg, seeds, fitted or {}, show_progress, layer)


def _run(
    ctx: ComparisonContext,
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
                row, e = concept_metrics(ctx, models)
                row["fit_seconds"] = fit_time
                runs.append(row)
                features.append(e)
                bar.update()
            for row, score in zip(runs, seed_stability(features), strict=False):
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
