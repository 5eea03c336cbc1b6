#!/usr/bin/env python3
"""The ``captum-srae`` command line (also ``python -m captum_srae``).

Subcommands:

- ``demo``: train a small CNN on procedurally generated images, fit an SRAE
  explainer on one of its layers and print its faithfulness and each
  x-feature's share of the score (see :func:`captum_srae.demo.run_demo`).

Errors in the user's input end with a message on stderr and exit status 2,
as for argparse's own usage errors; nothing prints a traceback for them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["build_parser", "format_summary", "main"]

PROG = "captum-srae"


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be nonnegative, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the command line, with its subcommands."""
    from captum_srae import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Explain a PyTorch classifier with a few learned x-features "
            "(XNN / sparse reconstruction autoencoder of Qi, Khorram and Li)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands"
    )
    commands.required = True
    demo = commands.add_parser(
        "demo",
        help="train a small CNN on generated images and explain it (no downloads)",
        description=(
            "Train a small CNN on procedurally generated images (a disc and a "
            "bar, each present or not), fit an SRAE explainer on its last "
            "convolutional layer for the class 'disc + bar', and print how "
            "faithfully the x-features rebuild the score, each x-feature's "
            "share, and how the contributions change with the parts present."
        ),
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help="smaller data and explainer (about 20 s instead of 40 s on two cores)",
    )
    demo.add_argument(
        "--seed",
        type=_nonnegative_int,
        default=0,
        metavar="N",
        help="seed of the data, the CNN and the explainer (default: 0)",
    )
    demo.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help=(
            "save the explainer (SRAE.load can read it), summary.json, the CNN "
            "weights and the test activations to this new or empty folder"
        ),
    )
    demo.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="do not show progress bars",
    )
    demo.set_defaults(handler=_run_demo_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv (sequence of str, optional): The arguments, without the program
            name. Default: None (``sys.argv[1:]``)

    Returns:
        int: the exit status: 0 on success, 2 when the library rejects the
        input (``ValueError``, ``TypeError``, ``FileNotFoundError``; the
        message goes to stderr), 1 on another ``OSError``, 130 on Ctrl-C.
        Usage errors found by argparse (unknown subcommand or option, bad
        value) and ``--help``/``--version`` raise ``SystemExit`` as usual
        (status 2, resp. 0).

    Examples::

        >>> from captum_srae.cli import main
        >>> main(["demo", "--quick", "--no-progress"])  # doctest: +SKIP
        0
    """
    parser = build_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _run_demo_command(args: argparse.Namespace) -> int:
    from captum_srae.demo import run_demo

    summary = run_demo(
        quick=args.quick, seed=args.seed, out=args.out, show_progress=args.progress
    )
    print(format_summary(summary))
    return 0


# ------------------------------------------------------------------- output
def format_summary(summary: dict[str, Any]) -> str:
    """Render the dictionary returned by :func:`~captum_srae.demo.run_demo`.

    Args:
        summary (dict): The demo's result.

    Returns:
        str: short plain-ASCII tables for a terminal, without a final newline.

    Examples::

        >>> print(format_summary(run_demo(quick=True)))  # doctest: +SKIP
        captum-srae demo (quick mode, seed 0)
        ...
    """
    data, cnn, xp = summary["data"], summary["cnn"], summary["explainer"]
    faith = summary["faithfulness"]
    outcome = (
        f"accepted in round {xp['chosen_round'] + 1}"
        if xp["accepted"]
        else f"not accepted after {xp['rounds']} rounds, last round kept"
    )
    lines = [
        f"captum-srae demo ({summary['mode']} mode, seed {summary['seed']})",
        "",
        f"Data        {data['description']}",
        f"CNN         {cnn['name']}, {cnn['parameters']:,} parameters, "
        f"{cnn['epochs']} epochs: train accuracy {_pct(cnn['train_accuracy'])}, "
        f"test accuracy {_pct(cnn['test_accuracy'])}",
        f"Explained   score of class {xp['target']} '{xp['target_name']}' from "
        f"layer {xp['layer']} ({xp['in_features']} channels, average pooled)",
        f"Explainer   SRAE, {xp['n_concepts']} x-features, hidden sizes "
        f"{tuple(xp['hidden_sizes'])}; {outcome}",
        "",
        f"Faithfulness on the {data['n_test']} test images (std of the model's "
        f"score: {faith['score_std']:.3f})",
    ]
    rows = [
        [f"SRAE, {xp['n_concepts']} x-features", faith["r2"], faith["rmse"]],
        [faith["baseline"], faith["baseline_r2"], faith["baseline_rmse"]],
    ]
    lines += _table(
        ["", "R^2", "RMSE"],
        [[name, f"{r2:.4f}", f"{rmse:.3f}"] for name, r2, rmse in rows],
    )
    lines += ["", *_contribution_lines(summary), ""]
    timings = summary["timings"]
    steps = [
        ("data", "data"),
        ("cnn", "CNN"),
        ("activations", "activations"),
        ("srae_fit", "SRAE fit"),
        ("evaluation", "evaluation"),
    ]
    spent = [f"{label} {timings[key]:.1f} s" for key, label in steps if key in timings]
    lines.append(f"Timings     {', '.join(spent)}; total {timings['total']:.1f} s")
    if summary.get("out"):
        lines.append(
            f"Saved to    {summary['out']} (load the explainer with SRAE.load; "
            "also summary.json, cnn.safetensors, test_data.safetensors)"
        )
    else:
        lines.append("Saved to    nothing (use --out DIR to keep the explainer)")
    return "\n".join(lines)


def _contribution_lines(summary: dict[str, Any]) -> list[str]:
    """The per-x-feature table: share, mean, part effects, means by parts."""
    contrib = summary["contributions"]
    effects: dict[str, list[float]] = contrib["part_effect"]
    groups: dict[str, dict[str, Any]] = contrib["by_parts"]
    header = ["x-feature", "share", "mean"] + [f"+{p}" for p in effects]
    header += ["|"] + list(groups)
    rows = []
    for k, mean in enumerate(contrib["mean"]):
        row = [f"x{k + 1}", _pct(contrib["share"][k]), _num(mean)]
        row += [_num(effects[p][k]) for p in effects]
        row += ["|"] + [_num(g["mean"][k]) for g in groups.values()]
        rows.append(row)
    bias = _num(contrib["bias"])
    blank = [""] * len(effects)
    rows.append(["bias", "", bias, *blank, "|"] + [bias] * len(groups))
    for label, key in (("XNN score", "xnn_score"), ("model score", "model_score")):
        values = [_num(g[key]) for g in groups.values()]
        rows.append([label, "", "", *blank, "|", *values])
    rows.append(
        ["images", "", "", *blank, "|"] + [str(g["n"]) for g in groups.values()]
    )
    return [
        "Contributions e_k*v_k of the x-features to the score on the test images",
        *_table(header, rows),
        "  share: of the mean absolute contribution; mean: over all test images;",
        "  +part: mean with the part minus mean without it; right of '|': mean",
        "  over the test images with exactly these parts",
    ]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Indented columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.ljust(width) if c == 0 else cell.rjust(width)
            for c, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append(("  " + "  ".join(cells)).rstrip())
    return lines


def _num(x: float) -> str:
    text = f"{x:+.2f}"
    return "+0.00" if text == "-0.00" else text


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"
