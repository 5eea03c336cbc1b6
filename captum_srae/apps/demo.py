#!/usr/bin/env python3
r"""The end-to-end demo: explain a CNN on images whose right answer is known.

The demo needs no downloads. :func:`~captum_srae.datasets.make_parts_dataset`
draws bird-like objects made of a head, body, wing and tail, with an exact
mask per part; the class is ``wing + 2 * tail``, so a classifier must look at
the wing and the tail, while the head is a distractor present in 60 % of the
images of every class. :func:`~captum_srae.datasets.models.train_or_load` trains
:class:`~captum_srae.datasets.models.PartsCNN` on them (or loads it from the user's
cache), and :func:`run_demo`

1. fits one XNN per class (:class:`~captum_srae.SRAEAttribution` on layer
   ``conv4``, average pooled, 5 x-features each) on the CNN's training images;
2. measures on held-out images how faithfully each XNN rebuilds its class
   score (R², RMSE, against PCA + linear regression with as many components)
   and how often the argmax over the four XNN scores agrees with the CNN's
   prediction;
3. relates every x-feature to the parts: the mean change of its contribution
   when a part is present, and where its heatmap lands (the share of the
   map's positive mass inside each part mask);
4. writes the HTML report (:func:`~captum_srae.visualization.write_report`):
   explanations of held-out images, a concept gallery and training curves per
   class, the faithfulness scatter, the tables and ``metrics.json``; the
   explainer (loadable with :meth:`SRAEAttribution.load`) and ``summary.json``
   go next to it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from captum_srae.activations import collect_activations
from captum_srae.apps.demo_report import write_demo_output
from captum_srae.attribution import SRAEAttribution
from captum_srae.core.config import SRAEConfig
from captum_srae.datasets import PartsData, make_parts_dataset
from captum_srae.datasets.models import PARTS_MAPS, accuracy, train_or_load
from captum_srae.datasets.parts import PARTS_CHUNK
from captum_srae.evaluation.baselines import fit_pca
from captum_srae.evaluation.compare import (
    DEFAULT_METHODS,
    DEMO_PEER_METHODS,
    compare,
    installed_peer_methods,
)
from captum_srae.evaluation.metrics import (
    relative_rmse,
    relevance_mass_accuracy,
    rmse,
    top1_agreement,
)
from captum_srae.utils.atomic import atomic_write_bytes
from captum_srae.utils.json_data import to_jsonable
from captum_srae.utils.stats import r2_score
from captum_srae.utils.validation import check_int

__all__ = [
    "FULL",
    "LAYER",
    "QUICK",
    "DEMO_CONFIG",
    "DemoMode",
    "MODES",
    "TINY",
    "demo_data",
    "evaluate_demo",
    "part_mass",
    "run_demo",
]

PathLike = str | os.PathLike[str]

#: The explained layer of :class:`~captum_srae.datasets.models.PartsCNN` (8×8 maps).
LAYER = "conv4"
#: Seed offset of the held-out draw: its images never meet the training ones.
TEST_SEED_OFFSET = 1_000_003
SUMMARY_FILE = "summary.json"
EXPLAINER_DIR = "explainer"
REPORT_DIR = "report"
#: Images the CNN is trained on (all modes share the cached CNN).
CNN_TRAIN_IMAGES = 8000


@dataclasses.dataclass(frozen=True)
class DemoMode:
    """Sizes of one mode of :func:`run_demo`.

    Attributes:
        name (str): ``"quick"`` or ``"full"``.
        n_fit (int): Training images the XNNs are fitted on (the first
            ``n_fit`` of the CNN's training images).
        n_test (int): Held-out images for every reported measure.
        n_maps (int): Held-out images whose heatmaps are scored against the
            part masks and fill the concept galleries.
        n_figures (int): Held-out images explained in the report.
        srae_config (SRAEConfig): The XNNs' hyperparameters; its seed is
            replaced by the seed of :func:`run_demo`.
        compare_maps (int): Held-out images that get maps in the comparison
            of methods (:func:`~captum_srae.evaluation.compare.compare`); 0 skips the
            comparison.
        compare_steps (int): Its deletion/insertion steps.
        cnn (dict): Arguments of :func:`~captum_srae.datasets.models.train_or_load`
            (``n_train``, ``epochs``, ``width``, ``size``); empty for the
            cached demo CNN (8000 images of 64×64, 12 epochs with flips and
            shifts, width 16).
        compare_methods (tuple[str, ...], optional): The methods of the
            comparison before the installed fast peers; None for
            ``DEFAULT_METHODS``. The quick mode leaves out the
            ``"Autoencoder"`` ablation, a second full fit per class.
    """

    name: str
    n_fit: int
    n_test: int
    n_maps: int
    n_figures: int
    srae_config: SRAEConfig
    compare_maps: int = 100
    compare_steps: int = 10
    cnn: dict = dataclasses.field(default_factory=dict)
    compare_methods: tuple[str, ...] | None = None


#: The XNN settings of the demo: the library's defaults, exactly what a user
#: gets (until 0.2 the demo used hidden sizes (200, 50), alpha_pred 1000 and
#: no re-tuning; on "winged+tailed", 4 seeds, that gave the largest
#: x-feature 77 % of the positive score instead of 54 % and class maps that
#: point at the wing or tail on 21 % of images instead of 48 %:
#: docs/concepts.rst).
DEMO_CONFIG = SRAEConfig()
#: ``run_demo(quick=True)``: fewer held-out images, maps (120 images; 30 in
#: the comparison) and curve steps, and a comparison without the autoencoder
#: ablation.
QUICK = DemoMode(
    "quick",
    4000,
    600,
    120,
    4,
    DEMO_CONFIG,
    30,
    10,
    compare_methods=tuple(m for m in DEFAULT_METHODS if m != "Autoencoder"),
)
#: ``run_demo()``: more held-out images, maps and steps.
FULL = DemoMode("full", 4000, 2000, 600, 8, DEMO_CONFIG, 150, 20)
#: ``run_demo(mode="tiny")``: a 4-channel CNN trained one epoch on 96 images of
#: 32×32 and XNNs of a few epochs, for testing the pipeline in seconds.
TINY = DemoMode(
    "tiny",
    96,
    40,
    12,
    4,
    SRAEConfig(
        n_concepts=3,
        hidden_sizes=(16, 8),
        pretrain_epochs=1,
        max_epochs=3,
        retune_rounds=1,
        batch_size=32,
        epoch_samples=None,
    ),
    12,
    4,
    {"n_train": 96, "epochs": 1, "width": 4, "size": 32},
)
#: The modes by name.
MODES = {m.name: m for m in (QUICK, FULL, TINY)}


def demo_data(
    n_fit: int,
    n_test: int,
    seed: int = 0,
    *,
    n_train: int = CNN_TRAIN_IMAGES,
    size: int = 64,
) -> tuple[PartsData, PartsData]:
    """The images the XNNs are fitted on and the held-out images.

    Args:
        n_fit (int): The first ``n_fit`` of the CNN's training images
            (``make_parts_dataset(n_train, seed, size)``), at most ``n_train``.
        n_test (int): Held-out images, drawn with seed
            ``seed + TEST_SEED_OFFSET``.
        seed (int, optional): The seed of the CNN's training data. Default: 0
        n_train (int, optional): The CNN's training images. Default: 8000
        size (int, optional): Image size. Default: 64

    Returns:
        *tuple[PartsData, PartsData]*: fit and test data.
    """
    if not 1 <= n_fit <= n_train:
        raise ValueError(f"n_fit must be in 1..{n_train}, got {n_fit}")
    # only the chunks that hold the first n_fit images (PARTS_CHUNK)
    n_drawn = min(n_train, -(-n_fit // PARTS_CHUNK) * PARTS_CHUNK)
    train = make_parts_dataset(n_drawn, seed=seed, size=size)
    fit = PartsData(*(getattr(train, f.name)[:n_fit] for f in _TENSOR_FIELDS))
    return fit, make_parts_dataset(n_test, seed=seed + TEST_SEED_OFFSET, size=size)


_TENSOR_FIELDS = [f for f in dataclasses.fields(PartsData) if f.type == "Tensor"]


def _pca_baseline(z_fit: Tensor, y_fit: Tensor, z_test: Tensor, k: int) -> Tensor:
    """Held-out scores of PCA(k) + least squares (the ``"pca"`` baseline)."""
    pca = fit_pca(z_fit, y_fit, k)
    with torch.no_grad():
        return pca.predict(pca.encode(z_test))[:, 0]


def part_mass(maps: Tensor, masks: Tensor) -> Tensor:
    r"""Share of each map's positive mass inside each part mask.

    ``mass[k, p] = mean_i Σ_{hw∈mask_ip} max(m_ik, 0) / Σ_hw max(m_ik, 0)``
    over the images ``i`` where part ``p`` is present and map ``k`` is not all
    zero: :func:`~captum_srae.evaluation.metrics.relevance_mass_accuracy` (Arras et al.
    2022) per x-feature and part; NaN where no image qualifies.

    Args:
        maps (Tensor): ``(N, K, H, W)`` heatmaps at the masks' size.
        masks (Tensor): ``(N, P, H, W)`` boolean part masks.

    Returns:
        *Tensor*: ``(K, P)`` float64.
    """
    n_maps, n_parts = maps.shape[1], masks.shape[1]
    return torch.tensor(
        [
            [
                float(relevance_mass_accuracy(maps[:, k], masks[:, p]).score)
                for p in range(n_parts)
            ]
            for k in range(n_maps)
        ],
        dtype=torch.float64,
    )


def evaluate_demo(
    explainer: SRAEAttribution,
    z_fit: Tensor,
    y_fit: Tensor,
    z_test: Tensor,
    y_test: Tensor,
    test: PartsData,
    maps: dict[int, Tensor],
    n_maps: int,
) -> dict[str, Any]:
    r"""Faithfulness, agreement and part relations of per-class XNNs.

    Args:
        explainer (SRAEAttribution): Fitted with one XNN per class.
        z_fit, y_fit (Tensor): Pooled activations ``(N, D)`` and all class
            scores ``(N, C)`` of the fit images (for the PCA baseline).
        z_test, y_test (Tensor): The same on the held-out images.
        test (PartsData): The held-out images with labels and masks.
        maps (dict[int, Tensor]): For each class, the x-feature heatmaps
            ``(n_maps, K, H, W)`` of the first ``n_maps`` held-out images.
        n_maps (int): Number of images in ``maps``.

    Returns:
        dict: JSON-serialisable. ``classes``: per class (keyed by its name)
        ``r2``, ``rmse``, ``rmse_rel`` (RMSE over the score range), the PCA
        baseline's ``baseline_r2``/``baseline_rmse``, ``score_std``, the
        x-features' ``share`` (of the mean absolute contribution), ``mean``
        contribution, ``part_effect[part]`` (mean contribution with the part
        minus without) and ``part_mass[part]`` (see :func:`part_mass`);
        ``agreement``: the fraction of held-out images where the argmax of the
        XNN scores equals the CNN's argmax; ``baseline``: the baseline's name.
    """
    classes: dict[str, Any] = {}
    xnn_scores = []
    names, parts = test.class_names, test.part_names
    presence = test.part_presence
    baseline = ""
    for t in explainer.targets_:
        srae = explainer.sraes_[t]
        with torch.no_grad():
            e = srae.encode(z_test)
            pred = srae.predict(e)[:, 0]
            contrib = srae.contributions(e)[:, 0, :].double()
        xnn_scores.append(pred)
        y = y_test[:, t]
        base = _pca_baseline(z_fit, y_fit[:, t], z_test, srae.n_concepts)
        baseline = f"PCA ({srae.n_concepts} components) + linear regression"
        mean_abs = contrib.abs().mean(dim=0)
        effect = {
            p: (contrib[presence[:, j]].mean(0) - contrib[~presence[:, j]].mean(0))
            for j, p in enumerate(parts)
            if bool(presence[:, j].any()) and bool((~presence[:, j]).any())
        }
        mass = part_mass(maps[t], test.masks[:n_maps])
        classes[names[t]] = {
            "target": t,
            "r2": r2_score(y, pred),
            "rmse": float(rmse(pred, y)),
            "rmse_rel": float(relative_rmse(pred, y)),
            "score_std": float(y.double().std()),
            "baseline_r2": r2_score(y, base),
            "baseline_rmse": float(rmse(base, y)),
            "bias": float(srae.bias.detach()[0]),
            "share": (mean_abs / mean_abs.sum().clamp_min(1e-12)).tolist(),
            "mean": contrib.mean(dim=0).tolist(),
            "part_effect": {p: v.tolist() for p, v in effect.items()},
            "part_mass": {p: mass[:, j].tolist() for j, p in enumerate(parts)},
        }
    xnn = torch.stack(xnn_scores, dim=1)
    agreement = float(top1_agreement(y_test[:, explainer.targets_], xnn))
    return {"classes": classes, "agreement": agreement, "baseline": baseline}


def _check_out(out: PathLike | None) -> Path | None:
    """Refuse an ``out`` that the save would damage, before any work is done."""
    if out is None:
        return None
    path = Path(os.fspath(out)).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"out {path} exists and is not a directory")
        if any(path.iterdir()) and not (path / SUMMARY_FILE).is_file():
            raise ValueError(
                f"out {path} is a non-empty folder that holds no previous demo "
                "output; saving would replace its content: choose a new or empty "
                "folder"
            )
    return path


def run_demo(
    quick: bool = False,
    seed: int = 0,
    out: PathLike | None = None,
    show_progress: bool = True,
    cache_dir: PathLike | None = None,
    mode: str | None = None,
) -> dict[str, Any]:
    r"""Train (or load) the parts CNN, explain every class with an XNN, report.

    The steps, each timed (``timings``):

    1. ``data``: :func:`demo_data` (4000 fit images; held-out: 600 with
       ``quick``, else 2000);
    2. ``cnn``: :func:`~captum_srae.datasets.models.train_or_load` (about
       40 s on two CPU cores the first time, then read from the cache);
    3. ``fit``: one XNN per class on ``conv4`` (:data:`DEMO_CONFIG`);
    4. ``evaluation``: held-out activations, scores and heatmaps,
       :func:`evaluate_demo`; ``comparison``:
       :func:`~captum_srae.evaluation.compare.compare` of these XNNs, the
       baselines and Captum's methods on the same images;
    5. ``report`` (with ``out``): the HTML report in ``out/report``, the
       explainer in ``out/explainer``, ``out/summary.json`` (the returned
       dictionary); the folder is replaced atomically.

    Args:
        quick (bool, optional): The :data:`QUICK` mode. Default: False
        seed (int, optional): Seed of the data, the CNN and the XNNs.
            Default: 0
        out (str or PathLike, optional): Folder to write; it must be new,
            empty or a previous demo output (which is replaced).
            Default: None (nothing is written)
        show_progress (bool, optional): Show ``tqdm`` progress bars.
            Default: True
        cache_dir (str or PathLike, optional): Where the trained CNN is
            cached. Default: None (see
            :func:`~captum_srae.datasets.models.train_or_load`)
        mode (str, optional): A name of :data:`MODES` (``"tiny"`` tests the
            pipeline in seconds); overrides ``quick``. Default: None

    Returns:
        dict: JSON-serialisable: ``mode``, ``seed``, ``data``, ``cnn``,
        ``explainer``, the entries of :func:`evaluate_demo`, ``timings``
        and ``out`` (the report's ``index.html``, or None).

    Raises:
        TypeError: if ``seed`` is not an int.
        ValueError: if ``seed`` is negative or ``out`` is a file or a
            non-empty folder that is not a previous demo output.

    Examples::

        >>> from captum_srae.apps.demo import run_demo
        >>> summary = run_demo(quick=True, show_progress=False)  # doctest: +SKIP
        >>> summary["agreement"] > 0.95
        True
    """
    check_int(seed, "seed", minimum=0)
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
    out_path = _check_out(out)
    run = MODES[mode] if mode is not None else QUICK if quick else FULL
    timings: dict[str, float] = {}
    fit_data, test, model, info, test_acc = _data_and_cnn(
        run, seed, cache_dir, show_progress, timings
    )
    explainer, state = _explain(
        model, fit_data, test, run, seed, show_progress, timings
    )
    summary = _summary(run, seed, fit_data, test, model, info, test_acc, explainer)
    summary.update(state.evaluation)
    summary["timings"] = timings
    summary["out"] = None
    if out_path is not None:
        _write(out_path, summary, explainer, test, state, run.n_figures)
    timings["total"] = sum(v for k, v in timings.items() if k != "total")
    if out_path is not None:  # the final timings into summary.json
        text = json.dumps(to_jsonable(summary), indent=2, allow_nan=False) + "\n"
        atomic_write_bytes(out_path / SUMMARY_FILE, text.encode("utf-8"))
    return summary


def _write(
    out_path: Path,
    summary: dict[str, Any],
    explainer: SRAEAttribution,
    test: PartsData,
    state: _Evaluation,
    n_figures: int,
) -> None:
    """The report, the explainer and the images into ``out_path`` (timed)."""
    with _timed(summary["timings"], "report"):
        summary["out"] = str(out_path / REPORT_DIR / "index.html")
        write_demo_output(
            out_path,
            summary,
            explainer,
            test,
            state.maps,
            state.z_test,
            state.y_test,
            n_figures,
        )


def _data_and_cnn(
    run: DemoMode,
    seed: int,
    cache_dir: PathLike | None,
    show_progress: bool,
    timings: dict[str, float],
) -> tuple[PartsData, PartsData, nn.Module, dict[str, Any], float]:
    """The fit and held-out images, the (cached) CNN, its held-out accuracy."""
    cnn = {"n_train": CNN_TRAIN_IMAGES, **run.cnn}
    with _timed(timings, "data"):
        fit_data, test = demo_data(
            run.n_fit,
            run.n_test,
            seed,
            n_train=cnn["n_train"],
            size=cnn.get("size", 64),
        )
    with _timed(timings, "cnn"):
        model, info = train_or_load(
            seed=seed, cache_dir=cache_dir, show_progress=show_progress, **cnn
        )
        test_acc = accuracy(model, test.images, test.labels)
    return fit_data, test, model, info, test_acc


class _Evaluation(NamedTuple):
    """What :func:`run_demo` keeps of the evaluation step."""

    evaluation: dict[str, Any]
    maps: dict[int, Tensor]
    z_test: Tensor
    y_test: Tensor
    fit_activations: tuple[Tensor, Tensor]


def _explain(
    model: nn.Module,
    fit_data: PartsData,
    test: PartsData,
    run: DemoMode,
    seed: int,
    show_progress: bool,
    timings: dict[str, float],
) -> tuple[SRAEAttribution, _Evaluation]:
    """Fit one XNN per class, evaluate them and (if ``run`` says) compare."""
    explainer = SRAEAttribution(
        model,
        LAYER,
        **PARTS_MAPS,
        config=run.srae_config.replace(seed=seed),
    )
    with _timed(timings, "fit"):
        explainer.fit(
            fit_data.images,
            all_targets=True,
            show_progress=show_progress,
            batch_size=500,
            keep_activations=True,  # for the baselines: no second pass
        )
    state = _evaluate(explainer, model, test, run, timings)
    if run.compare_maps:
        with _timed(timings, "comparison"):
            state.evaluation["comparison"] = _compare(
                model, explainer, fit_data, test, run, seed, show_progress, state
            ).to_dict()
    return explainer, state


def _evaluate(
    explainer: SRAEAttribution,
    model: nn.Module,
    test: PartsData,
    run: DemoMode,
    timings: dict[str, float],
) -> _Evaluation:
    """Held-out activations, the first ``n_maps`` heatmaps, :func:`evaluate_demo`."""
    with _timed(timings, "evaluation"):
        pooling = (explainer.config or DEMO_CONFIG).pooling
        fit_activations = explainer.fit_activations_
        if fit_activations is None:
            raise ValueError("the demo's explainer must keep its activations")
        z_fit, y_fit = fit_activations  # every class (all_targets=True)
        z_test, y_test = _activations(model, test.images, pooling)
        n_maps = min(run.n_maps, run.n_test)
        maps = {
            t: explainer.attribute(
                test.images[:n_maps], target=t, internal_batch_size=200
            )
            for t in explainer.targets_
        }
        evaluation = evaluate_demo(
            explainer, z_fit, y_fit, z_test, y_test, test, maps, n_maps
        )
    return _Evaluation(evaluation, maps, z_test, y_test, (z_fit, y_fit))


def _compare(
    model: nn.Module,
    explainer: SRAEAttribution,
    fit_data: PartsData,
    test: PartsData,
    mode: DemoMode,
    seed: int,
    show_progress: bool,
    state: _Evaluation,
) -> Any:
    """The comparison of every method on the demo's data, reusing its XNNs
    and activations (with the fast peer methods when the ``peers`` extra is
    installed)."""
    own = DEFAULT_METHODS if mode.compare_methods is None else mode.compare_methods
    methods = [*own, *installed_peer_methods(DEMO_PEER_METHODS)]
    return compare(
        model,
        LAYER,
        fit_data.images,
        test.images,
        labels=test.labels,
        masks=test.masks,
        relevant_parts=[test.part_names.index("wing"), test.part_names.index("tail")],
        config=explainer.config,
        seeds=(seed,),
        n_maps=min(mode.compare_maps, len(test)),
        n_steps=mode.compare_steps,
        fitted={"SRAE": explainer.sraes_} if "SRAE" in methods else None,
        show_progress=show_progress,
        **PARTS_MAPS,
        activations=(*state.fit_activations, state.z_test, state.y_test),
        methods=methods,
    )


def _activations(
    model: nn.Module, images: Tensor, pooling: str
) -> tuple[Tensor, Tensor]:
    """Pooled ``conv4`` activations (``pooling``) and all class scores."""
    return collect_activations(model, LAYER, images, pooling=pooling, batch_size=500)


def _summary(
    mode: DemoMode,
    seed: int,
    fit_data: PartsData,
    test: PartsData,
    model: nn.Module,
    info: dict[str, Any],
    test_acc: float,
    explainer: SRAEAttribution,
) -> dict[str, Any]:
    histories = explainer.history_
    config = explainer.config or SRAEConfig()
    return {
        "mode": mode.name,
        "seed": seed,
        "data": {
            "description": (
                f"parts data set: {len(fit_data)} fit / {len(test)} held-out "
                f"images of {test.images.shape[-1]}x{test.images.shape[-1]} pixels, "
                f"{len(test.class_names)} classes (class = wing + 2 * tail; the "
                "head is a distractor)"
            ),
            "n_fit": len(fit_data),
            "n_test": len(test),
            "part_names": list(test.part_names),
            "class_names": list(test.class_names),
        },
        "cnn": {
            "name": type(model).__name__,
            "parameters": sum(p.numel() for p in model.parameters()),
            "cached": bool(info["cached"]),
            "path": str(info["path"]),
            "width": int(model.conv1[0].out_channels),
            "train_accuracy": info["train_accuracy"],
            "test_accuracy": test_acc,
        },
        "explainer": {
            "layer": LAYER,
            "in_features": int(explainer.sraes_[explainer.targets_[0]].in_features),
            "n_concepts": config.n_concepts,
            "hidden_sizes": list(config.hidden_sizes),
            "accepted": {
                test.class_names[t]: bool(histories[t].accepted)
                for t in explainer.targets_
            },
            "fit_val_r2": {
                test.class_names[t]: histories[t].val_r2 for t in explainer.targets_
            },
        },
    }


@contextlib.contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the seconds spent in the ``with`` block to ``timings[name]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
