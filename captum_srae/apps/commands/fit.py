#!/usr/bin/env python3
r"""``captum-srae fit``: fit an SRAE explainer on a user's model and image folder.

The folder written (``--out``) is an :meth:`SRAEAttribution.save` folder plus
``fit.json`` (how to rebuild the model and the image transform, the class
names and the fit's held-out faithfulness) and ``history.json`` (the training
histories, for the report's curves), replaced atomically as a whole.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from captum_srae.apps import common

__all__ = ["CheckedImages", "folder_data", "run_fit"]


class CheckedImages(Dataset):
    """An ``ImageFolder`` whose unreadable files raise a one-line ValueError."""

    def __init__(self, folder: Any) -> None:
        self.folder = folder

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int) -> Any:
        try:
            return self.folder[index]
        except (OSError, ValueError, SyntaxError) as exc:
            path = self.folder.samples[index][0]
            raise ValueError(f"cannot read image {path}: {exc}") from None


def folder_data(
    root: str, size: int, max_images: int | None, seed: int, normalize: bool = True
) -> tuple[Any, Dataset, list[str]]:
    """The image folder, its (random, seeded) subset and its class names."""
    from captum_srae.datasets.folders import image_folder_dataset

    folder = image_folder_dataset(root, size=size, normalize=normalize)
    n = len(folder)
    if n == 0:
        raise ValueError(f"image folder {root!r} holds no images")
    data: Dataset = CheckedImages(folder)
    if max_images is not None and max_images < n:
        g = torch.Generator().manual_seed(seed)
        keep = sorted(torch.randperm(n, generator=g)[:max_images].tolist())
        data = Subset(data, keep)
    return folder, data, list(folder.classes)


def _probe(
    model: nn.Module, data: Dataset, device: torch.device, layer: nn.Module
) -> tuple[int, int]:
    """Run one image through the model; return its number of outputs and the
    number of dimensions of ``layer``'s output (batch included)."""
    x = data[0][0].unsqueeze(0).to(device)
    seen: list[int] = []
    handle = layer.register_forward_hook(
        lambda _m, _i, o: seen.append(o.ndim if isinstance(o, torch.Tensor) else 0)
    )
    try:
        with torch.no_grad():
            out = model(x)
    except RuntimeError as exc:
        raise ValueError(
            f"the model cannot process the images ({tuple(x.shape)}): {exc}"
        ) from None
    finally:
        handle.remove()
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out)
        raise ValueError(f"the model must return scores (N, C), got {shape}")
    return int(out.shape[1]), (seen[0] if seen else 0)


def _check_token_pooling(layer_ndim: int, pooling: str, layer: str) -> None:
    """Warn when a 3-D layer, maybe tokens ``(N, T, D)``, is average pooled."""
    from captum_srae.core.config import TOKEN_POOLINGS

    if layer_ndim == 3 and pooling not in TOKEN_POOLINGS:
        print(
            f"captum-srae: warning: layer {layer} outputs 3-D activations and "
            f"pooling={pooling!r} averages over the last dimension; for the "
            f"tokens (N, T, D) of a vision transformer set a token pooling: "
            f'--config \'{{"pooling": "cls"}}\' (or '
            f"{', '.join(TOKEN_POOLINGS[1:])})",
            file=sys.stderr,
        )


def run_fit(args: argparse.Namespace) -> int:
    """The body of ``captum-srae fit``; prints a summary, returns 0."""
    from captum_srae.activations import resolve_layer
    from captum_srae.attribution import SRAEAttribution
    from captum_srae.utils.atomic import atomic_directory

    out = common.check_out_dir(args.out, common.SIDE_FILE, "fit")
    device = common.parse_device(args.device)
    config = common.parse_config(args.config)
    if args.n_concepts is not None:
        config = config.replace(n_concepts=args.n_concepts)
    if args.seed is not None:
        config = config.replace(seed=args.seed)
    seed = config.seed
    folder, data, class_names = folder_data(
        args.data, args.image_size, args.max_images, seed, args.normalize
    )
    num_classes = args.num_classes
    if num_classes is None and ":" not in args.model:
        num_classes = len(class_names)
    model = common.build_model(args.model, num_classes, args.weights, seed)
    try:
        layer = resolve_layer(model, args.layer)
    except ValueError as exc:
        raise ValueError(f"--layer: {exc}") from None
    model = model.to(device)
    n_outputs, layer_ndim = _probe(model, data, device, layer)
    _check_token_pooling(layer_ndim, config.pooling, args.layer)
    targets = common.resolve_targets(args.target, class_names, n_outputs)
    if args.weights is None:
        print(
            f"captum-srae: warning: no --weights; explaining the randomly "
            f"initialised {args.model} (seed {seed})",
            file=sys.stderr,
        )
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=False)
    explainer = SRAEAttribution(model, args.layer, config=config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explainer.fit(
            loader,
            target=targets,
            show_progress=args.progress,
            batch_size=args.batch_size,
        )
    for w in caught:  # one line each, not Python's two-line format
        text = " ".join(str(w.message).split())
        print(f"captum-srae: warning: {text}", file=sys.stderr)
    record = common.fit_record(
        explainer,
        model_record=common.model_record(args.model, num_classes, args.weights, seed),
        n_outputs=n_outputs,
        layer=args.layer,
        class_names=class_names,
        transform=common.transform_record(args.image_size, args.normalize),
        data={
            "root": str(Path(args.data).resolve()),
            "n_images": len(data),
            "n_folder_images": len(folder),
        },
        config=config,
    )
    with atomic_directory(out) as tmp:
        common.save_fitted(tmp, explainer, record)
    print(_summary(record, out))
    return 0


def _summary(record: dict[str, Any], out: Path) -> str:
    names = record["class_names"]
    shape = record["layer_shape"]
    channels = f" ({shape[0]} channels)" if shape else ""
    if len(shape) == 2:  # a token layer (T, D)
        channels = f" ({shape[0]} tokens of width {shape[1]})"
    lines = [
        f"Fitted an SRAE explainer ({record['config']['n_concepts']} x-features) "
        f"for {record['model']['spec']}, layer {record['layer']}{channels}, "
        f"on {record['data']['n_images']} images of {record['data']['root']}",
        "Faithfulness (R^2 of the XNN's score against the model's, higher is "
        "better, 1 = exact) on the held-out split:",
    ]
    for t, f in record["faithfulness"].items():
        r2 = f["val_r2"]
        text = "n/a" if r2 is None or r2 != r2 else f"{r2:.3f}"
        note = "" if f["accepted"] else "; not accepted by the re-tuning rule"
        label = common.class_label(int(t), names)
        lines.append(f"  class {label}: R^2 {text} on {f['n_val']} images{note}")
    lines.append(f"Saved to {out} (SRAEAttribution.load reads it; fit.json)")
    lines.append(f"Next: captum-srae explain --explainer {out} --images IMAGE ...")
    return "\n".join(lines)
