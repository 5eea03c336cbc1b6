#!/usr/bin/env python3
r""":func:`compare`: SRAE, baselines and Captum methods on the same images.

Concept methods (SRAE and the baselines of :mod:`captum_srae.evaluation.baselines`)
fit ``config.n_concepts`` concepts for every class on the pooled activations
of ``fit_inputs``, once per seed; single-map methods (Captum's
``LayerGradCam``, ``GuidedGradCam``, ``IntegratedGradients``, ``Saliency``;
with the ``peers`` extra, pytorch-grad-cam's CAMs) need no fitting; your
own methods join through ``extra_methods`` (the protocol of
:mod:`~captum_srae.evaluation.compare.protocol`). On
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
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_srae.activations import collect_activations, layer_name, resolve_layer
from captum_srae.attribution.checks import check_map_method
from captum_srae.attribution.smoothing import check_smoothing
from captum_srae.core.config import SRAEConfig
from captum_srae.evaluation import metrics as M
from captum_srae.evaluation.baselines import ConceptModel
from captum_srae.evaluation.compare.methods import (
    CONCEPT_METHODS,
    DEFAULT_METHODS,
    IN_PROCESS_KINDS,
    MAP_METHODS,
    PEER_METHODS,
    class_maps,
    fit_concepts,
    method_kind,
    peer_method,
    require_peer,
)
from captum_srae.evaluation.compare.protocol import (
    ConceptMethodModel,
    check_extra_methods,
    fit_concept_method,
    map_method_output,
)
from captum_srae.evaluation.compare.result import ComparisonResult
from captum_srae.evaluation.compare.scoring import (
    ComparisonContext,
    concept_metrics,
    finite_mean,
)
from captum_srae.evaluation.peers.dff import spatial_activations
from captum_srae.training.jobs import resolve_n_jobs, run_jobs
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
            raise ValueError(
                f"fitted holds {name!r}, which is not in methods or extra_methods"
            )
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


class _Method(NamedTuple):
    """A method of the run: its kind, its object (None for the built-in
    methods of the package) and its name in error messages."""

    kind: str
    obj: Any
    label: str


def _methods(
    methods: Sequence[str], extra_methods: Any, n_concepts: int
) -> dict[str, _Method]:
    """The methods of the run, in order: ``methods``, then the names of
    ``extra_methods`` that ``methods`` does not list. Peers must be installed."""
    builtin = [*CONCEPT_METHODS, *MAP_METHODS, *PEER_METHODS]
    extra_kinds = check_extra_methods(extra_methods, builtin)
    if isinstance(methods, str) or not (methods or extra_kinds):
        raise ValueError("methods must be a non-empty sequence of method names")
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods holds repeated names: {list(methods)}")
    out: dict[str, _Method] = {}
    for name in [*methods, *[m for m in extra_kinds if m not in methods]]:
        if name in extra_kinds:
            out[name] = _Method(
                extra_kinds[name], extra_methods[name], f"extra_methods[{name!r}]"
            )
            continue
        kind = method_kind(name)
        obj = peer_method(name, n_concepts)
        require_peer(name)  # a clear error up front
        out[name] = _Method(kind, obj, name)
    return out


def _check(
    seeds: Sequence[int],
    n_maps: int,
    masks: Any,
    n: int,
    labels: Tensor | None,
    relevant_parts: Sequence[int] | None,
    n_jobs: int | None,
) -> None:
    """Distinct int seeds; ``n_maps``; ``masks`` shape; the labels and
    parts (:func:`_check_data`); ``n_jobs``."""
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
    _check_data(labels, masks, relevant_parts, n)
    resolve_n_jobs(n_jobs, 1)


def _check_given(given: Any, n_fit: int, n_test: int) -> None:
    """``activations``: four tensors, 2-D, one row per fit / test input."""
    if given is None:
        return
    what = "activations must be a tuple (z_fit, y_fit, z_test, y_test) of 4 tensors"
    if not isinstance(given, (list, tuple)):
        raise TypeError(f"{what}, got {type(given).__name__}")
    if len(given) != 4:
        raise TypeError(f"{what}, got {len(given)} items")
    names = ("z_fit", "y_fit", "z_test", "y_test")
    rows = (n_fit, n_fit, n_test, n_test)
    for name, t, n in zip(names, given, rows, strict=True):
        if not isinstance(t, Tensor) or t.dim() != 2 or t.shape[0] != n:
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(
                f"activations: {name} must be a 2-D tensor with {n} rows "
                f"(one per input), got {got}"
            )
    if given[0].shape[1] != given[2].shape[1] or given[1].shape[1] != given[3].shape[1]:
        raise ValueError(
            "activations: the fit and test tensors must have the same columns, "
            f"got z {tuple(given[0].shape)} / {tuple(given[2].shape)} and "
            f"y {tuple(given[1].shape)} / {tuple(given[3].shape)}"
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
    map_settings: dict[str, Any],
    given: Sequence[Tensor] | None,
) -> ComparisonContext:
    """Collect the activations and scores (unless ``given``); keep ``n`` map
    inputs and masks."""
    _check_given(given, len(fit_inputs), len(test_inputs))
    if given is not None:
        z_fit, y_fit, z_test, y_test = given
    else:
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
        map_settings,
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
    fitted: Mapping[str, Mapping[int, Any]] | None = None,
    batch_size: int = 256,
    show_progress: bool = True,
    heatmap_layer: nn.Module | str | None = None,
    map_method: str | type = "gradcam",
    map_smoothing: float = 0.0,
    extra_methods: Mapping[str, Any] | None = None,
    n_jobs: int | None = None,
    activations: Sequence[Tensor] | None = None,
) -> ComparisonResult:
    r"""Compare explanation methods on one model, layer and data set.

    Concept methods fit concepts per class on ``fit_inputs``; every method is
    scored on ``test_inputs`` as :doc:`/compare` and this module describe
    (columns: :data:`~captum_srae.evaluation.compare.METRIC_INFO`).

    Args:
        model (nn.Module): the classifier, returning ``(N, C)`` scores.
        layer (nn.Module or str): the explained layer.
        fit_inputs, test_inputs (Tensor): the concepts' fit images; held-out ones.
        labels, masks (Tensor, optional): true classes ``(N,)`` and boolean
            part masks ``(N, P, H, W)`` of ``test_inputs`` (for localisation).
        relevant_parts (Sequence[int], optional): parts of the classes. Default: all
        methods (Sequence[str], optional): names of methods (``CONCEPT_``,
            ``MAP_``, ``PEER_METHODS``). Default: ``DEFAULT_METHODS``
        config (SRAEConfig, optional): the SRAE's settings; ``n_concepts``
            and ``pooling`` apply to every concept method.
        seeds (Sequence[int], optional): a fit per method and seed. Default: (0,)
        n_maps, n_steps (int, optional): test inputs with maps (100), curve steps (20).
        baseline (str, optional): of the curves, "blur" or "mean". Default: "blur"
        fitted (Mapping, optional): first seed's ``{method: {class: model}}``.
        batch_size, show_progress: images per forward pass (256), a bar (True).
        heatmap_layer, map_method, map_smoothing: as in ``SRAEAttribution``.
        extra_methods (Mapping[str, Any], optional): your own concept
            methods (``fit(z, y, seed)``) and map methods (``(model, layer,
            x, target) -> maps``) by name, run after ``methods``
            (:mod:`~captum_srae.evaluation.compare.protocol`).
        n_jobs (int, optional): workers for the per-class fits of the SRAE, its
            ablation and the TopK SAE (1: here, as for PCA, NMF, random). Default: None
        activations (Sequence[Tensor], optional): ``(z_fit, y_fit, z_test,
            y_test)`` at ``layer`` (``config.pooling``; ``y`` every class's
            scores), if already collected: skips two passes. Default: None

    Returns:
        *ComparisonResult*: the table; a peer or extra method that raises is
        left out and its error kept in ``errors``.

    Raises:
        ValueError, TypeError: on a bad argument, named (e.g. DFF on a
            non-spatial layer), before any fit.
    """
    cfg = config if config is not None else SRAEConfig()
    specs = _methods(methods, extra_methods, cfg.n_concepts)
    _check(seeds, n_maps, masks, len(test_inputs), labels, relevant_parts, n_jobs)
    module = resolve_layer(model, layer)
    name = layer if isinstance(layer, str) else layer_name(model, layer)
    maps = _map_settings(heatmap_layer, map_method, map_smoothing)
    with _eval_mode(model):
        ctx = _context(model, module, fit_inputs, test_inputs, cfg, batch_size,
            labels, masks, relevant_parts, min(n_maps, len(test_inputs)),
            n_steps, baseline, maps, activations)  # fmt: skip
        _check_activations(ctx, list(specs), fitted or {})
        spatial = _spatial(specs, model, module, fit_inputs, cfg, batch_size, name)
        run = (cfg, seeds, fitted or {}, show_progress, name, spatial, n_jobs)
        return _run(ctx, specs, *run)


def _map_settings(
    heatmap_layer: nn.Module | str | None, map_method: Any, map_smoothing: Any
) -> dict[str, Any]:
    """The checked map arguments of :func:`compare` (a misspelt method or a
    bad blur fails before any fit)."""
    return {
        "heatmap_layer": heatmap_layer,
        "map_method": check_map_method(map_method),
        "map_smoothing": check_smoothing(map_smoothing, "map_smoothing"),
    }


def _spatial(
    specs: Mapping[str, _Method],
    model: nn.Module,
    module: nn.Module,
    fit_inputs: Tensor,
    cfg: SRAEConfig,
    batch_size: int,
    name: str,
) -> Tensor | None:
    """The unpooled fit activations when a concept method is spatial (DFF)."""
    users = [
        s.label
        for s in specs.values()
        if s.kind == "concept" and getattr(s.obj, "spatial", False)
    ]
    if not users:
        return None
    if cfg.pooling != "avg":
        raise ValueError(
            f"{users[0]} factorises spatial activations and needs "
            f"config.pooling='avg', got {cfg.pooling!r}"
        )
    return spatial_activations(
        model, module, fit_inputs, batch_size=batch_size, method=users[0],
        layer_name=name,
    )  # fmt: skip


def _error(exc: BaseException) -> str:
    """One line: the exception's type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _fitted_model(
    obj: Any, ctx: ComparisonContext, t: int, cfg: SRAEConfig, label: str
) -> nn.Module:
    """A pre-fitted model of ``fitted``: a ConceptModel as is, else the
    fitted object of a concept method, wrapped."""
    if isinstance(obj, ConceptModel):
        return obj  # type: ignore[return-value]
    return ConceptMethodModel.from_fitted(
        obj, ctx.z_fit, ctx.y_fit[:, t], pooling=cfg.pooling, label=label
    )


def _run(
    ctx: ComparisonContext,
    specs: Mapping[str, _Method],
    cfg: SRAEConfig,
    seeds: Sequence[int],
    fitted: Mapping[str, Mapping[int, Any]],
    show_progress: bool,
    layer: str,
    spatial: Tensor | None,
    n_jobs: int | None = None,
) -> ComparisonResult:
    total = sum(len(seeds) if s.kind == "concept" else 1 for s in specs.values())
    per_seed: dict[str, list[dict[str, float]]] = {}
    errors: dict[str, str] = {}
    bar = tqdm(total=total, desc="compare", disable=not show_progress)
    try:
        for name, spec in specs.items():
            done = bar.n
            try:
                if spec.kind == "map":
                    per_seed[name] = [_map_row(ctx, name, spec, bar)]
                else:
                    per_seed[name] = _concept_rows(
                        ctx, name, spec, cfg, seeds, fitted, spatial, bar, n_jobs
                    )
            except Exception as exc:
                if spec.obj is None:  # the package's own methods: a bug, raise
                    raise
                errors[name] = _error(exc)
                per_seed[name] = []
                bar.update(done + (len(seeds) if spec.kind == "concept" else 1) - bar.n)
    finally:
        bar.close()
    return ComparisonResult(
        methods=list(specs),
        kinds={name: spec.kind for name, spec in specs.items()},
        per_seed=per_seed,
        seeds=list(seeds),
        settings={
            "layer": layer,
            "n_concepts": cfg.n_concepts,
            "n_fit": int(ctx.z_fit.shape[0]),
            "n_test": int(ctx.z_test.shape[0]),
            "n_maps": int(ctx.x_maps.shape[0]),
            "n_steps": ctx.n_steps,
            "baseline": ctx.baseline,
        },
        errors=errors,
    )


def _map_row(
    ctx: ComparisonContext, name: str, spec: _Method, bar: Any
) -> dict[str, float]:
    """The metrics of a single-map method."""
    bar.set_postfix_str(name)
    start = time.perf_counter()
    if spec.obj is None:
        maps = class_maps(name, ctx.model, ctx.module, ctx.x_maps, ctx.pred_maps)
    else:
        out = spec.obj(ctx.model, ctx.module, ctx.x_maps, ctx.pred_maps)
        maps = map_method_output(out, ctx.x_maps, spec.label)
    row = {"map_seconds": time.perf_counter() - start}
    row.update(ctx.class_map_metrics(maps))
    bar.update()
    return row


def _concept_rows(
    ctx: ComparisonContext,
    name: str,
    spec: _Method,
    cfg: SRAEConfig,
    seeds: Sequence[int],
    fitted: Mapping[str, Mapping[int, Any]],
    spatial: Tensor | None,
    bar: Any,
    n_jobs: int | None = None,
) -> list[dict[str, float]]:
    """The metrics of a concept method, one row per seed."""
    runs: list[dict[str, float]] = []
    features = []
    for j, seed in enumerate(seeds):
        bar.set_postfix_str(f"{name}, seed {seed}")
        start = time.perf_counter()
        if j == 0 and name in fitted:
            models = (
                dict(fitted[name])
                if spec.obj is None
                else {
                    t: _fitted_model(m, ctx, t, cfg, spec.label)
                    for t, m in fitted[name].items()
                }
            )
        elif spec.obj is None:
            jobs = [
                (name, ctx.z_fit, ctx.y_fit[:, t], cfg, seed)
                for t in range(ctx.n_classes)
            ]
            in_process = CONCEPT_METHODS[name] in IN_PROCESS_KINDS
            results = run_jobs(fit_concepts, jobs, 1 if in_process else n_jobs)
            for t, (_, caught) in enumerate(results):
                for message, category in caught:
                    warnings.warn(
                        f"{name}, class {t}: {message}", category, stacklevel=4
                    )
            models = {t: r[0] for t, r in enumerate(results)}
        else:
            models = {
                t: fit_concept_method(
                    spec.obj,
                    ctx.z_fit,
                    ctx.y_fit[:, t],
                    seed,
                    pooling=cfg.pooling,
                    spatial=spatial,
                    label=spec.label,
                )  # fmt: skip
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
    return runs
