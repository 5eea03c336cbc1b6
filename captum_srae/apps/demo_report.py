#!/usr/bin/env python3
r"""The demo's output folder: the explainer, the HTML report and the summary.

Private to :mod:`captum_srae.apps.demo`; :func:`write_demo_output` builds the whole
folder next to its place and swaps it in atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from captum_srae.apps import common
from captum_srae.attribution import SRAEAttribution
from captum_srae.datasets import PartsData
from captum_srae.evaluation.compare.result import ComparisonResult, metric_rows
from captum_srae.utils.atomic import atomic_directory
from captum_srae.utils.json_data import to_jsonable
from captum_srae.visualization import (
    ConceptGalleryDisplay,
    ExplanationGridDisplay,
    FaithfulnessDisplay,
    TrainingCurvesDisplay,
    write_report,
)

__all__ = ["part_figure", "write_demo_output"]


def part_figure(summary: dict[str, Any]) -> Figure:
    """Per class, how each x-feature's contribution changes with each part.

    Args:
        summary (dict): :func:`~captum_srae.apps.demo.run_demo`'s result.

    Returns:
        *Figure*: one panel per class, x-features as rows, parts as columns:
        the mean contribution ``e_k v_k`` on held-out images with the part
        minus without it (red raises the class score, blue lowers it), the
        x-feature's share of the score on the row label.
    """
    classes = summary["classes"]
    fig = Figure(figsize=(3.2 * len(classes), 3.4), layout="constrained")
    axes = fig.subplots(1, len(classes), squeeze=False)[0]
    for ax, (name, entry) in zip(axes, classes.items(), strict=True):
        parts = list(entry["part_effect"])
        effect = np.array([entry["part_effect"][p] for p in parts], dtype=float).T
        if effect.size == 0:
            effect = np.zeros((len(entry["share"]), 0))
        top = float(np.abs(effect).max()) if effect.size else 1.0
        ax.imshow(effect, vmin=-top, vmax=top, cmap="RdBu_r", aspect="auto")
        for (k, j), value in np.ndenumerate(effect):
            colour = "white" if abs(value) > 0.6 * top else "black"
            ax.text(j, k, f"{value:+.1f}", ha="center", va="center", fontsize=8,
                    color=colour)  # fmt: skip
        ax.set_xticks(range(len(parts)), [f"+{p}" for p in parts], fontsize=8)
        ax.set_yticks(
            range(effect.shape[0]),
            [f"x{k + 1} ({100 * s:.0f}%)" for k, s in enumerate(entry["share"])],
            fontsize=8,
        )
        ax.set_title(f"class {entry['target']}: {name}", fontsize=9)
    fig.suptitle(
        "Mean contribution of each x-feature with the part minus without it "
        "(row label: the x-feature's share of the score)",
        fontsize="medium",
    )
    return fig


def faithfulness_figure(
    explainer: SRAEAttribution, z: Tensor, y: Tensor, names: list[str]
) -> Figure:
    """The XNN score against the CNN score on held-out images, one panel per class."""
    ts = explainer.targets_
    fig = Figure(figsize=(3.6 * len(ts), 3.8), layout="constrained")
    axes = fig.subplots(1, len(ts), squeeze=False)[0]
    for ax, t in zip(axes, ts, strict=True):
        srae = explainer.sraes_[t]
        with torch.no_grad():
            pred = srae.predict(srae.encode(z))[:, 0]
        FaithfulnessDisplay(y[:, t], pred, title=f"class {t}: {names[t]}").plot(ax=ax)
    fig.suptitle("Faithfulness on held-out images", fontsize="medium")
    return fig


def _tables(summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    parts = summary["data"]["part_names"]
    faith = [
        {
            "class": name,
            "XNN R²": e["r2"],
            f"PCA-{len(e['share'])} R²": e["baseline_r2"],
            "XNN RMSE": e["rmse"],
            "RMSE / score range": e["rmse_rel"],
        }
        for name, e in summary["classes"].items()
    ]
    rows = []
    for name, e in summary["classes"].items():
        for k, share in enumerate(e["share"]):
            mass = {p: e["part_mass"][p][k] for p in parts}
            top = max(mass, key=lambda p: -1.0 if mass[p] is None else mass[p])
            row: dict[str, Any] = {
                "class": name,
                "x-feature": f"x{k + 1}",
                "share": share,
                "heatmap mostly on": top,
            }
            row.update({f"mass {p}": mass[p] for p in parts})
            row.update({f"+{p}": e["part_effect"][p][k] for p in e["part_effect"]})
            rows.append(row)
    return {
        "Faithfulness of the per-class XNNs (held-out images)": faith,
        "x-features and parts (mass: share of the heatmap in the part mask; "
        "+part: mean contribution with the part minus without)": rows,
    }


def write_demo_output(
    path: Path,
    summary: dict[str, Any],
    explainer: SRAEAttribution,
    test: PartsData,
    maps: dict[int, Tensor],
    z_test: Tensor,
    y_test: Tensor,
    n_figures: int,
) -> None:
    """Write ``path/explainer``, ``path/report`` and ``path/summary.json``.

    Args:
        path (Path): The output folder (replaced atomically).
        summary (dict): :func:`~captum_srae.apps.demo.run_demo`'s result so far.
        explainer (SRAEAttribution): The fitted per-class explainer.
        test (PartsData): The held-out images.
        maps (dict[int, Tensor]): Per class, heatmaps of the first images.
        z_test, y_test (Tensor): Held-out activations and class scores.
        n_figures (int): Held-out images explained in the report.
    """
    names = list(test.class_names)
    n_maps = next(iter(maps.values())).shape[0]
    images = test.images[:n_maps]
    labels = test.labels[:n_maps]
    per_class = max(1, n_figures // len(explainer.targets_))
    explanations, galleries, curves = [], [], []
    for t in explainer.targets_:
        idx = torch.nonzero(labels == t).flatten()[:per_class]
        if idx.numel():
            ex = explainer.explain(images[idx], target=t)
            title = f"class {t}: {names[t]} (held-out images of this class)"
            explanations.append(
                ExplanationGridDisplay.from_explanation(ex, images[idx], title=title)
            )
        with torch.no_grad():  # the held-out activations: no model pass
            srae = explainer.sraes_[t]
            e = srae.encode(z_test[:n_maps])
            c = srae.contributions(e)[:, 0, :]
        gallery = ConceptGalleryDisplay(images, maps[t], e, c, k=5).plot()
        gallery.figure_.suptitle(
            f"class {t}: {names[t]} — top 5 held-out images per x-feature",
            fontsize="medium",
        )
        galleries.append(gallery)
        curves.append(TrainingCurvesDisplay.from_explainer(explainer, target=t))
    sections = [
        ("x-features and parts", [part_figure(summary)]),
        ("Concept galleries", galleries),
        ("Training curves", curves),
    ]
    tables = _tables(summary)
    if "comparison" in summary:
        result = ComparisonResult.from_dict(summary["comparison"])
        sections.insert(0, ("Comparison of methods", [result.plot()]))
        tables["Comparison of methods (same images and layer)"] = result.to_rows()
        tables["Metric definitions"] = metric_rows(result.metrics())
    with atomic_directory(path) as tmp:
        if summary["cnn"]["width"] == 16:  # PartsCNN() rebuilds the default CNN
            _save_explainer(tmp / "explainer", summary, explainer, test)
        else:
            explainer.save(tmp / "explainer")
        _save_images(tmp / IMAGES_DIR, test, per_class=3)
        write_report(
            tmp / "report",
            explanation_figures=explanations,
            scatter=faithfulness_figure(explainer, z_test, y_test, names),
            sections=sections,
            tables=tables,
            metrics=_metrics(summary),
            title="captum-srae demo: per-class XNNs on the parts data set",
            intro=_intro(summary),
        )
        text = json.dumps(to_jsonable(summary), indent=2, allow_nan=False) + "\n"
        (tmp / "summary.json").write_text(text, encoding="utf-8")


#: Held-out images written as PNG files, one subfolder per class named
#: ``<index>_<name>`` so that ImageFolder's sorted order is the class order.
IMAGES_DIR = "images"


def _save_images(folder: Path, test: PartsData, per_class: int) -> None:
    """A few held-out images per class, for trying ``captum-srae explain``."""
    from PIL import Image

    for c, name in enumerate(test.class_names):
        sub = folder / f"{c}_{name}"
        sub.mkdir(parents=True)
        for i in torch.nonzero(test.labels == c).flatten()[:per_class].tolist():
            pixels = (test.images[i].permute(1, 2, 0) * 255).round().to(torch.uint8)
            Image.fromarray(pixels.numpy()).save(sub / f"{i}.png")


def _save_explainer(
    folder: Path, summary: dict[str, Any], explainer: SRAEAttribution, test: PartsData
) -> None:
    """The explainer with the ``fit.json`` of ``captum-srae fit``, so that
    ``captum-srae explain`` and ``report`` rebuild the cached CNN."""
    size = int(test.images.shape[-1])
    model = common.model_record(
        "captum_srae.datasets.models:PartsCNN",
        None,
        summary["cnn"]["path"],
        summary["seed"],
    )
    record = common.fit_record(
        explainer,
        model_record=model,
        n_outputs=len(test.class_names),
        layer=summary["explainer"]["layer"],
        class_names=list(test.class_names),
        transform=common.transform_record(size, normalize=False, resize=size),
        data={"root": None, "n_images": summary["data"]["n_fit"]},
        config=explainer.config,
    )
    common.save_fitted(folder, explainer, record)


def _intro(summary: dict[str, Any]) -> str:
    cnn = summary["cnn"]
    return (
        f"{summary['data']['description']}. {cnn['name']} held-out accuracy "
        f"{100 * cnn['test_accuracy']:.1f} %. One XNN with "
        f"{summary['explainer']['n_concepts']} x-features per class on layer "
        f"{summary['explainer']['layer']}; the argmax of the four XNN scores "
        f"agrees with the CNN's prediction on {100 * summary['agreement']:.1f} % "
        "of the held-out images. Each explanation shows the image and one "
        "heatmap per x-feature, ordered by its contribution to the class score."
    )


def _metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """The machine-readable metrics: the comparison's ``methods`` (method →
    metric → value), ``std``, ..., and the demo's own numbers."""
    keys = ("r2", "rmse", "rmse_rel", "baseline_r2", "baseline_rmse")
    return {
        **summary.get("comparison", {}),
        "cnn_test_accuracy": summary["cnn"]["test_accuracy"],
        "top1_agreement": summary["agreement"],
        "classes": {
            name: {k: e[k] for k in keys} for name, e in summary["classes"].items()
        },
    }
