#!/usr/bin/env python3
"""A small end-to-end demo: explain a CNN trained on procedurally generated images.

The demo needs no downloads.
:func:`~captum_srae.datasets.make_shapes_dataset` draws RGB images whose class
says which of two *parts* they contain (a filled disc, part A, and a
horizontal bar, part B), :class:`~captum_srae.models.SmallCNN` learns to
classify them, and :func:`run_demo` fits an :class:`~captum_srae.SRAE` on the
globally pooled activations of its last convolutional block for the class
"both parts". It then measures on held-out images how faithfully the
x-features rebuild the model's score (against a PCA + linear regression
baseline with as many components) and how each x-feature's contribution
changes with the parts present, which shows whether the x-features track the
parts. The CNN's head has a hidden layer, so the explained score is a
nonlinear function of the pooled activations, as for a layer deep inside a
large network: a linear model of a few principal components rebuilds it less
faithfully than the x-features.

The steps are separate functions (data, classifier, activations, explainer,
evaluation, saving), so that a richer dataset or report can replace one step.
The data set lives in :mod:`captum_srae.datasets` and the classifier in
:mod:`captum_srae.models`; their names are re-exported here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import safetensors.torch as _st
import torch
from torch import Tensor, nn

from captum_srae._atomic import atomic_write_bytes
from captum_srae.activations import collect_activations
from captum_srae.config import SRAEConfig
from captum_srae.datasets import make_shapes_dataset
from captum_srae.model import SRAE
from captum_srae.models import SmallCNN, accuracy, train_classifier
from captum_srae.training import fit_srae, r2_score

__all__ = [
    "CLASS_NAMES",
    "FULL",
    "QUICK",
    "DemoData",
    "DemoMode",
    "PART_NAMES",
    "SmallCNN",
    "accuracy",
    "evaluate_explainer",
    "make_shapes_dataset",
    "run_demo",
    "shapes_demo_data",
    "train_classifier",
]

PathLike = str | os.PathLike[str]

#: Names of the two parts; ``label = 2 * has_disc + has_bar``.
PART_NAMES: tuple[str, str] = ("disc", "bar")
#: Name of each class, indexed by the label.
CLASS_NAMES: tuple[str, ...] = ("none", "bar only", "disc only", "disc + bar")
#: The explained class: both parts present.
TARGET_CLASS = 3
#: The explained layer of :class:`~captum_srae.models.SmallCNN`.
LAYER = "conv3"
SUMMARY_FILE = "summary.json"
CNN_FILE = "cnn.safetensors"
TEST_DATA_FILE = "test_data.safetensors"


@dataclasses.dataclass(frozen=True)
class DemoMode:
    """Sizes and schedules of one mode of :func:`run_demo`.

    Attributes:
        name (str): ``"quick"`` or ``"full"``.
        n_train (int): Training images (for the CNN and the explainer).
        n_test (int): Held-out images for every reported measure.
        cnn_epochs (int): Training epochs of
            :class:`~captum_srae.models.SmallCNN`.
        srae_config (SRAEConfig): The explainer's hyperparameters; its seed is
            replaced by the seed of :func:`run_demo`.
    """

    name: str
    n_train: int
    n_test: int
    cnn_epochs: int
    srae_config: SRAEConfig


#: ``run_demo(quick=True)``: about 20 seconds on two CPU cores.
QUICK = DemoMode("quick", 1500, 500, 30, SRAEConfig(hidden_sizes=(200, 50)))
#: ``run_demo()``: about 40 seconds on two CPU cores.
FULL = DemoMode("full", 4000, 1000, 30, SRAEConfig())


@dataclasses.dataclass(eq=False)
class DemoData:
    """Training and test images of the demo, with the parts present in each.

    Attributes:
        x_train, y_train (Tensor): Training images and labels.
        x_test, y_test (Tensor): Test images and labels.
        parts_test (Tensor): Boolean ``(n_test, n_parts)``: which parts each
            test image contains, in the order of ``part_names``.
        part_names (tuple[str, ...]): Names of the parts.
        class_names (tuple[str, ...]): Name of each class.
        description (str): One line describing the data.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    parts_test: Tensor
    part_names: tuple[str, ...]
    class_names: tuple[str, ...]
    description: str


def shapes_demo_data(n_train: int, n_test: int, seed: int = 0) -> DemoData:
    """The demo's data: one :func:`.make_shapes_dataset` draw split in two.

    Args:
        n_train (int): Number of training images.
        n_test (int): Number of test images.
        seed (int, optional): Seed of
            :func:`~captum_srae.datasets.make_shapes_dataset`. Default: 0

    Returns:
        *DemoData*: the first ``n_train`` images for training, the rest for
        testing.
    """
    x, y = make_shapes_dataset(n_train + n_test, seed=seed)
    parts = torch.stack([y // 2 == 1, y % 2 == 1], dim=1)
    return DemoData(
        x[:n_train],
        y[:n_train],
        x[n_train:],
        y[n_train:],
        parts[n_train:],
        PART_NAMES,
        CLASS_NAMES,
        f"{n_train} train / {n_test} test images of 32x32 pixels, "
        f"{len(CLASS_NAMES)} classes (parts: {', '.join(PART_NAMES)})",
    )


def evaluate_explainer(
    srae: SRAE,
    z_train: Tensor,
    y_train: Tensor,
    z_test: Tensor,
    y_test: Tensor,
    parts_test: Tensor,
    part_names: Sequence[str],
) -> dict[str, Any]:
    r"""Faithfulness and contributions of an explainer on held-out activations.

    Args:
        srae (SRAE): The fitted explainer of one output.
        z_train (Tensor): Training activations ``(N, D)``, for the baseline.
        y_train (Tensor): Training scores ``(N, 1)``, for the baseline.
        z_test (Tensor): Test activations ``(M, D)``.
        y_test (Tensor): The model's test scores ``(M, 1)``.
        parts_test (Tensor): Boolean ``(M, P)``: the parts in each test image.
        part_names (sequence of str): Names of the ``P`` parts.

    Returns:
        dict: JSON-serialisable, with

        - ``faithfulness``: ``r2`` and ``rmse`` of the XNN's reconstructed score
          against the model's score, ``score_std`` (the scale of the scores),
          and ``baseline_r2``/``baseline_rmse`` of a PCA with as many
          components as x-features followed by a linear regression (both
          fitted on the training activations), named in ``baseline``;
        - ``contributions``: ``bias``, per x-feature the ``mean`` and
          ``mean_abs`` contribution :math:`e_k v_k` over the test images and
          its ``share`` (``mean_abs`` over the sum of ``mean_abs``);
          ``part_effect[part]``: the mean contribution of each x-feature on
          images with the part minus images without it; ``by_parts``: for each
          combination of parts present (``"none"``, ``"disc"``, ...), the
          number of images ``n``, the ``mean`` contribution of each x-feature,
          and the mean ``xnn_score`` and ``model_score``.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    with torch.no_grad():
        e = srae.encode(z_test)
        pred = srae.predict(e)
        contrib = srae.contributions(e)[:, 0, :].double()
    y = y_test[:, :1]
    n_concepts = srae.n_concepts
    baseline = make_pipeline(PCA(n_components=n_concepts), LinearRegression())
    baseline.fit(z_train.double().numpy(), y_train[:, 0].double().numpy())
    base_pred = torch.from_numpy(baseline.predict(z_test.double().numpy()))[:, None]
    mean = contrib.mean(dim=0)
    mean_abs = contrib.abs().mean(dim=0)
    share = mean_abs / mean_abs.sum().clamp_min(1e-12)
    part_effect = {}
    for p, name in enumerate(part_names):
        has = parts_test[:, p]
        if bool(has.any()) and bool((~has).any()):
            effect = contrib[has].mean(dim=0) - contrib[~has].mean(dim=0)
            part_effect[name] = effect.tolist()
    by_parts: dict[str, dict[str, Any]] = {}
    for key, rows in _part_groups(parts_test, part_names):
        by_parts[key] = {
            "n": int(rows.sum()),
            "mean": contrib[rows].mean(dim=0).tolist(),
            "xnn_score": float(pred[rows, 0].mean()),
            "model_score": float(y[rows, 0].mean()),
        }
    return {
        "faithfulness": {
            "r2": r2_score(y, pred),
            "rmse": _rmse(y, pred),
            "score_std": float(y.double().std()),
            "baseline": f"PCA ({n_concepts} components) + linear regression",
            "baseline_r2": r2_score(y, base_pred),
            "baseline_rmse": _rmse(y, base_pred),
        },
        "contributions": {
            "bias": float(srae.bias.detach()[0]),
            "mean": mean.tolist(),
            "mean_abs": mean_abs.tolist(),
            "share": share.tolist(),
            "part_effect": part_effect,
            "by_parts": by_parts,
        },
    }


def _rmse(y: Tensor, y_hat: Tensor) -> float:
    return float(((y.double() - y_hat.double()) ** 2).mean().sqrt())


def _part_groups(
    parts: Tensor, part_names: Sequence[str]
) -> Iterator[tuple[str, Tensor]]:
    """``(name, rows)`` for each combination of parts that occurs, fewest first.

    A combination is named by its parts joined with ``"+"``, or ``"none"``.
    """
    n_parts = parts.shape[1]
    combos = sorted(range(2**n_parts), key=lambda c: (bin(c).count("1"), c))
    for combo in combos:
        want = torch.tensor([bool(combo >> i & 1) for i in range(n_parts)])
        rows = (parts == want).all(dim=1)
        if bool(rows.any()):
            names = [name for i, name in enumerate(part_names) if combo >> i & 1]
            yield "+".join(names) or "none", rows


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
) -> dict[str, Any]:
    r"""Train a small CNN on procedural images, explain it with an SRAE, evaluate.

    The steps, each timed:

    1. ``data``: :func:`~captum_srae.datasets.make_shapes_dataset` (quick: 1500
       training and 500 test images; full: 4000 and 1000);
    2. ``cnn``: train :class:`~captum_srae.models.SmallCNN` with
       :func:`~captum_srae.models.train_classifier`;
    3. ``activations``: :func:`~captum_srae.collect_activations` of layer
       ``conv3`` (global average pooled, 64 channels) and of the score of class
       3, "disc + bar", on the training and test images;
    4. ``srae_fit``: :func:`~captum_srae.fit_srae` on the training activations
       (quick: ``SRAEConfig(hidden_sizes=(200, 50))``; full: the defaults);
    5. ``evaluation``: :func:`evaluate_explainer` on the test images;
    6. with ``out``: ``srae.save(out)`` (``config.json`` and
       ``weights.safetensors``), then in the same folder ``summary.json`` (the
       returned dictionary), ``cnn.safetensors`` (the CNN's state dict) and
       ``test_data.safetensors`` (test activations ``z``, model scores ``y``,
       labels, x-features ``e`` and the explainer's predictions ``y_hat``).

    Args:
        quick (bool, optional): Smaller data and explainer, see :data:`QUICK`
            (about 20 seconds on two CPU cores, against about 40 for
            :data:`FULL`). Default: False
        seed (int, optional): Seed of the data, the CNN and the explainer.
            Default: 0
        out (str or PathLike, optional): Folder to save the explainer and the
            summary into. It must be new, empty or a previous demo output
            (which is replaced). Default: None (nothing is saved)
        show_progress (bool, optional): Show ``tqdm`` progress bars.
            Default: True

    Returns:
        dict: JSON-serialisable: ``mode``, ``seed``, ``data``, ``cnn``
        (``parameters``, ``epochs``, ``train_accuracy``, ``test_accuracy``),
        ``explainer`` (layer, target, architecture, re-tuning outcome and the
        fit's own held-out R^2), ``faithfulness`` and ``contributions`` (see
        :func:`evaluate_explainer`), ``timings`` (seconds per step and
        ``total``) and ``out`` (the folder written, or None).

    Raises:
        ValueError: if ``seed`` is negative or ``out`` is a file or a
            non-empty folder that is not a previous demo output.
        TypeError: if ``seed`` is not an int.

    Examples::

        >>> from captum_srae.demo import run_demo
        >>> summary = run_demo(quick=True, show_progress=False)  # doctest: +SKIP
        >>> summary["faithfulness"]["r2"] > summary["faithfulness"]["baseline_r2"]
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be nonnegative, got {seed}")
    out_path = _check_out(out)
    mode = QUICK if quick else FULL
    timings: dict[str, float] = {}

    with _timed(timings, "data"):
        data = shapes_demo_data(mode.n_train, mode.n_test, seed=seed)
    with _timed(timings, "cnn"), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallCNN(n_classes=len(data.class_names))
        train_acc = train_classifier(
            model,
            data.x_train,
            data.y_train,
            epochs=mode.cnn_epochs,
            seed=seed,
            show_progress=show_progress,
        )
        test_acc = accuracy(model, data.x_test, data.y_test)
    with _timed(timings, "activations"):
        z_train, y_train = collect_activations(
            model, LAYER, data.x_train, target=TARGET_CLASS, batch_size=500
        )
        z_test, y_test = collect_activations(
            model, LAYER, data.x_test, target=TARGET_CLASS, batch_size=500
        )
    config: SRAEConfig = mode.srae_config.replace(seed=seed)
    with _timed(timings, "srae_fit"):
        srae, history = fit_srae(z_train, y_train, config, show_progress=show_progress)
    with _timed(timings, "evaluation"):
        evaluation = evaluate_explainer(
            srae, z_train, y_train, z_test, y_test, data.parts_test, data.part_names
        )
    timings["total"] = sum(timings.values())

    summary: dict[str, Any] = {
        "mode": mode.name,
        "seed": seed,
        "data": {
            "description": data.description,
            "n_train": int(data.x_train.shape[0]),
            "n_test": int(data.x_test.shape[0]),
            "image_size": list(data.x_train.shape[1:]),
            "part_names": list(data.part_names),
            "class_names": list(data.class_names),
        },
        "cnn": {
            "name": type(model).__name__,
            "parameters": sum(p.numel() for p in model.parameters()),
            "epochs": mode.cnn_epochs,
            "train_accuracy": train_acc,
            "test_accuracy": test_acc,
        },
        "explainer": {
            "layer": LAYER,
            "in_features": int(z_train.shape[1]),
            "target": TARGET_CLASS,
            "target_name": data.class_names[TARGET_CLASS],
            "n_concepts": config.n_concepts,
            "hidden_sizes": list(config.hidden_sizes),
            "accepted": history.accepted,
            "rounds": len(history.rounds),
            "chosen_round": history.chosen_round,
            "fit_val_r2": history.val_r2,
        },
        **evaluation,
        "timings": timings,
        "out": None if out_path is None else str(out_path),
    }
    if out_path is not None:
        _save(out_path, summary, srae, model, z_test, y_test, data.y_test)
    return summary


def _save(
    path: Path,
    summary: dict[str, Any],
    srae: SRAE,
    model: nn.Module,
    z_test: Tensor,
    y_test: Tensor,
    labels_test: Tensor,
) -> None:
    metadata = {
        "demo": {
            key: summary[key] for key in ("mode", "seed", "data", "cnn", "explainer")
        },
        "faithfulness": summary["faithfulness"],
    }
    srae.save(path, metadata=metadata)
    with torch.no_grad():
        e = srae.encode(z_test)
        y_hat = srae.predict(e)
    test_data = {
        "z": z_test,
        "y": y_test,
        "labels": labels_test,
        "e": e,
        "y_hat": y_hat,
    }
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(path / CNN_FILE, _st.save(state))
    atomic_write_bytes(path / TEST_DATA_FILE, _st.save(test_data))
    text = json.dumps(summary, indent=2) + "\n"
    atomic_write_bytes(path / SUMMARY_FILE, text.encode("utf-8"))


@contextlib.contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the seconds spent in the ``with`` block to ``timings[name]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
