#!/usr/bin/env python3
r"""``captum-srae explain``: explain image files with a fitted explainer.

Writes one PNG per image (:class:`~captum_srae.visualization.ExplanationDisplay`:
the image, then one heatmap per x-feature sorted by contribution) and
``explanations.json`` with the numbers of each image.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from captum_srae.apps import common

__all__ = ["choose_targets", "explain_batches", "load_explainer", "run_explain"]

RESULT_FILE = "explanations.json"


def load_explainer(
    folder: str, device: torch.device
) -> tuple[common.FitRecord, Any, Any]:
    """``fit.json``, the rebuilt model and the loaded explainer of ``folder``."""
    from captum_srae.attribution import SRAEAttribution

    record = common.read_record(folder)
    model = common.rebuild_model(record, device)
    try:
        maps = record.get("maps", {})
        explainer = SRAEAttribution.load(folder, model, record["layer"], **maps)
    except (KeyError, OSError, RuntimeError) as exc:
        raise ValueError(
            f"--explainer {folder!r}: cannot load the explainer: {exc}"
        ) from None
    return record, model, explainer


def choose_targets(
    tokens: list[str] | None, record: common.FitRecord, scores: Tensor
) -> list[int]:
    """``--target`` as one class per image; default: the fitted class that the
    model scores highest on each image."""
    fitted = list(record["targets"])
    names = record["class_names"]
    if tokens:
        (t,) = common.resolve_targets(tokens, names, record.get("n_outputs"))
        if t not in fitted:
            known = ", ".join(common.class_label(c, names) for c in fitted)
            raise ValueError(
                f"--target {common.class_label(t, names)} was not fitted; the "
                f"explainer explains classes {known}"
            )
        return [t] * scores.shape[0]
    best = scores[:, fitted].argmax(dim=1)
    return [fitted[int(i)] for i in best]


def explain_batches(
    explainer: Any, x: Tensor, targets: list[int], batch_size: int, progress: bool
) -> Any:
    """``explainer.explain`` over batches of ``x``, concatenated on the CPU."""
    from captum_srae.attribution import SRAEExplanation

    device = next(explainer.forward_func.parameters()).device
    parts = []
    starts = range(0, x.shape[0], batch_size)
    for i in tqdm(starts, disable=not progress, desc="Explaining", unit="batch"):
        ex = explainer.explain(
            x[i : i + batch_size].to(device), target=targets[i : i + batch_size]
        )
        parts.append(ex)
    fields = {
        f.name: torch.cat([getattr(p, f.name).detach().cpu() for p in parts])
        for f in dataclasses.fields(SRAEExplanation)
    }
    return SRAEExplanation(**fields)


def model_scores(model: Any, x: Tensor, batch_size: int) -> Tensor:
    """The model's scores ``(N, C)`` of ``x``, on the CPU."""
    device = next(model.parameters()).device
    with torch.no_grad():
        out = [
            model(x[i : i + batch_size].to(device)).cpu()
            for i in range(0, x.shape[0], batch_size)
        ]
    return torch.cat(out)


def explanation_figure(
    ex: Any, images: Tensor, i: int, record: common.FitRecord, title: str
) -> Any:
    """The :class:`ExplanationDisplay` of image ``i``, plotted, with a header."""
    from captum_srae.visualization import ExplanationDisplay

    disp = ExplanationDisplay.from_explanation(ex, images, i).plot()
    label = common.class_label(int(ex.target[i]), record["class_names"])
    disp.figure_.suptitle(
        f"{title}: class {label} | model score {float(ex.model_score[i]):.3g} | "
        f"XNN score {float(ex.xnn_score[i]):.3g}",
        fontsize="medium",
    )
    return disp


def run_explain(args: argparse.Namespace) -> int:
    """The body of ``captum-srae explain``; prints where it wrote, returns 0."""
    from captum_srae.utils.atomic import atomic_directory

    out = common.check_out_dir(args.out, RESULT_FILE, "explain")
    device = common.parse_device(args.device)
    record, model, explainer = load_explainer(args.explainer, device)
    transform = common.transform_from_record(record["transform"])
    x = common.load_images(args.images, transform)
    scores = model_scores(model, x, args.batch_size)
    targets = choose_targets(args.target, record, scores)
    ex = explain_batches(explainer, x, targets, args.batch_size, args.progress)
    shown = common.denormalize(x, record["transform"])
    names = record["class_names"]
    used: set[str] = set()
    items = []
    with atomic_directory(out) as tmp:
        for i, file in enumerate(
            tqdm(args.images, disable=not args.progress, desc="Writing figures")
        ):
            stem = Path(file).stem or "image"
            png = f"{stem}.png"
            k = 2
            while png in used:
                png, k = f"{stem}_{k}.png", k + 1
            used.add(png)
            disp = explanation_figure(ex, shown, i, record, Path(file).name)
            disp.save(tmp / png)
            t = int(ex.target[i])
            items.append(
                {
                    "image": str(Path(file).resolve()),
                    "figure": png,
                    "target": t,
                    "target_name": names[t] if t < len(names) else None,
                    "predicted_class": int(scores[i].argmax()),
                    "model_score": float(ex.model_score[i]),
                    "xnn_score": float(ex.xnn_score[i]),
                    "bias": float(ex.bias[i]),
                    "x_features": ex.x_features[i].tolist(),
                    "weights": ex.weights[i].tolist(),
                    "contributions": ex.contributions[i].tolist(),
                    "ratios": ex.ratios[i].tolist(),
                }
            )
        doc = {
            "explainer": str(Path(args.explainer).resolve()),
            "layer": record["layer"],
            "images": items,
        }
        (tmp / RESULT_FILE).write_text(common.dump_json(doc), "utf-8")
    lines = [f"Explained {len(items)} image(s) with {args.explainer}:"]
    for item in items:
        label = common.class_label(item["target"], names)
        lines.append(
            f"  {out / item['figure']}  class {label}, model score "
            f"{item['model_score']:.3g}, XNN score {item['xnn_score']:.3g}"
        )
    lines.append(f"Numbers (contributions e_k*v_k, x-features): {out / RESULT_FILE}")
    print("\n".join(lines))
    return 0
