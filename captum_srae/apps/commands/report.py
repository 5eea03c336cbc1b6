#!/usr/bin/env python3
r"""``captum-srae report``: an HTML report of a fitted explainer on an image folder.

Faithfulness of each fitted class on the folder (R² and RMSE of the XNN's
score against the model's), explanation figures of a few images, the concept
gallery (top images per x-feature), the training curves of the fit and the
faithfulness scatter, written by :func:`~captum_srae.visualization.write_report`.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from captum_srae.apps import common
from captum_srae.apps.commands.explain import (
    choose_targets,
    explain_batches,
    explanation_figure,
    load_explainer,
)
from captum_srae.apps.commands.fit import folder_data

__all__ = ["faithfulness", "run_report"]


def faithfulness(
    model_score: torch.Tensor, xnn_score: torch.Tensor
) -> dict[str, float]:
    r"""How faithfully the XNN's scores ``ŷ`` rebuild the model's scores ``y``.

    ``R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)²`` (higher is better; 1 is exact, 0 is no
    better than the mean score) and ``RMSE = √(mean (y − ŷ)²)`` (lower is
    better, in score units).

    Args:
        model_score (Tensor): ``y``, shape ``(N,)``.
        xnn_score (Tensor): ``ŷ``, shape ``(N,)``.

    Returns:
        *dict*: ``r2`` (NaN when ``y`` is constant), ``rmse``, ``score_std``
        (the population std of ``y``, for scale) and ``n``.
    """
    y, y_hat = model_score.double(), xnn_score.double()
    sse = float(((y - y_hat) ** 2).sum())
    sst = float(((y - y.mean()) ** 2).sum())
    return {
        "r2": 1.0 - sse / sst if sst > 0 else math.nan,
        "rmse": math.sqrt(sse / y.numel()),
        "score_std": float(y.std(unbiased=False)),
        "n": int(y.numel()),
    }


def _history_epochs(folder: str, target: int) -> list[dict[str, float]] | None:
    path = Path(folder) / "history.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        epochs = data[str(target)]["epochs"]
    except (ValueError, KeyError, TypeError):
        return None
    nan = math.nan
    return [{k: nan if v is None else v for k, v in e.items()} for e in epochs]


def run_report(args: argparse.Namespace) -> int:
    """The body of ``captum-srae report``; prints the path of index.html."""
    from captum_srae.visualization import (
        ConceptGalleryDisplay,
        FaithfulnessDisplay,
        TrainingCurvesDisplay,
        write_report,
    )

    out = common.check_out_dir(args.out, "index.html", "report")
    device = common.parse_device(args.device)
    record, model, explainer = load_explainer(args.explainer, device)
    trans = record["transform"]
    folder, data, _ = folder_data(
        args.data, int(trans["image_size"]), args.max_images, 0
    )
    folder.transform = common.transform_from_record(trans)
    names = record["class_names"]
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=False)
    bar = tqdm(loader, disable=not args.progress, desc="Loading images")
    x = torch.cat([batch for batch, _ in bar])
    n = x.shape[0]
    main = record["targets"][0]
    if args.target:
        main = choose_targets(args.target, record, torch.zeros(1, 1))[0]
    per_target, kept = {}, {}
    for t in record["targets"]:
        ex = explain_batches(explainer, x, [t] * n, args.batch_size, args.progress)
        per_target[f"class {common.class_label(t, names)}"] = faithfulness(
            ex.model_score, ex.xnn_score
        )
        if t == main:  # only its heatmaps are drawn
            kept[t] = ex
    main_ex = kept[main]
    shown = common.denormalize(x, trans)
    k = min(args.n_examples, n)
    figures = [
        explanation_figure(main_ex, shown, i, record, f"image {i}") for i in range(k)
    ]
    gallery = ConceptGalleryDisplay.from_explanation(main_ex, shown, k=min(4, n))
    label = common.class_label(main, names)
    scatter = FaithfulnessDisplay.from_explanation(main_ex, title=f"class {label}")
    epochs = _history_epochs(args.explainer, main)
    curves = None
    if epochs:
        curves = TrainingCurvesDisplay(epochs, title=f"fit of class {label}")
    metrics = {
        "explainer": str(Path(args.explainer).resolve()),
        "model": record["model"]["spec"],
        "layer": record["layer"],
        "data": str(Path(args.data).resolve()),
        "images": n,
        "faithfulness_on_data": per_target,
        "faithfulness_at_fit_held_out": {
            f"class {common.class_label(int(t), names)}": f.get("val_r2")
            for t, f in record.get("faithfulness", {}).items()
        },
    }
    index = write_report(
        out,
        explanation_figures=figures,
        gallery=gallery,
        curves=curves,
        scatter=scatter,
        metrics=metrics,
        title=f"SRAE explanation of {record['model']['spec']} ({record['layer']})",
    )
    lines = [f"Faithfulness on {n} images of {args.data} (R^2, higher is better):"]
    for name, f in per_target.items():
        lines.append(f"  {name}: R^2 {f['r2']:.3f}, RMSE {f['rmse']:.3g}")
    lines.append(f"Report: {index}")
    print("\n".join(lines))
    return 0
