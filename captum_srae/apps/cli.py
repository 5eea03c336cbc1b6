#!/usr/bin/env python3
"""The ``captum-srae`` command line (also ``python -m captum_srae``).

Subcommands:

- ``demo``: train (or load) a small CNN on the procedural parts data set, fit
  one SRAE explainer per class, print faithfulness and agreement and write an
  HTML report (see :func:`captum_srae.apps.demo.run_demo`);
- ``fit``, ``explain``, ``report``: the same pipeline on a user's own model
  and image folder (see :mod:`captum_srae.apps.commands` and the command line page of
  the documentation);
- ``compare``: the SRAE, the baselines and Captum's methods side by side on
  the parts data set (see :func:`captum_srae.apps.parts_comparison.compare_parts`);
- ``study``: many SRAE fits over a grid of settings and seeds on problems with
  known answers, with bootstrap intervals (see
  :func:`captum_srae.evaluation.study.run_study`).

Errors in the user's input end with a message on stderr and exit status 2,
as for argparse's own usage errors; nothing prints a traceback for them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from captum_srae.apps.commands import add_user_commands
from captum_srae.apps.commands.argtypes import nonnegative_int
from captum_srae.apps.commands.compare import add_compare_command
from captum_srae.apps.commands.study import add_study_command
from captum_srae.utils.version import __version__

__all__ = ["build_parser", "format_summary", "main"]

PROG = "captum-srae"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the command line, with its subcommands."""
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
    _add_demo_command(commands)
    add_user_commands(commands)
    add_compare_command(commands)
    add_study_command(commands)
    return parser


def _add_demo_command(commands: Any) -> None:
    """Register ``demo`` on the subparsers ``commands``."""
    demo = commands.add_parser(
        "demo",
        help="explain a CNN on generated bird-like images (no downloads)",
        description=(
            "Draw the parts data set (bird-like objects; the class says whether "
            "a wing and a tail are present, the head is a distractor), train a "
            "small CNN on it or load it from the cache, fit one SRAE explainer "
            "(XNN) per class on its layer conv4, measure on held-out images how "
            "faithfully the x-features rebuild the class scores and where their "
            "heatmaps land, and write an HTML report."
        ),
        epilog=(
            "examples:\n  captum-srae demo --quick\n"
            "  captum-srae demo --out results/demo --seed 1"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    size = demo.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        action="store_true",
        help="fewer held-out images, maps and curve steps (faster; see README)",
    )
    size.add_argument(
        "--tiny",
        action="store_true",
        help="a tiny CNN and explainers: tests the installation in seconds",
    )
    demo.add_argument(
        "--seed",
        type=nonnegative_int,
        default=0,
        metavar="N",
        help="seed of the data, the CNN and the explainers (default: 0)",
    )
    demo.add_argument(
        "--out",
        metavar="DIR",
        default="captum-srae-demo",
        help=(
            "folder for the report (DIR/report/index.html), the explainer and "
            "summary.json; new, empty or a previous demo output "
            "(default: ./captum-srae-demo)"
        ),
    )
    demo.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=None,
        help=(
            "where the trained CNN is cached (default: $CAPTUM_SRAE_CACHE, else "
            "~/.cache/captum-srae)"
        ),
    )
    demo.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="do not show progress bars",
    )
    demo.set_defaults(handler=_run_demo_command)


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

        >>> from captum_srae.apps.cli import main
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
    from captum_srae.apps.demo import run_demo

    summary = run_demo(
        quick=args.quick,
        seed=args.seed,
        out=args.out,
        show_progress=args.progress,
        cache_dir=args.cache_dir,
        mode="tiny" if args.tiny else None,
    )
    print(format_summary(summary))
    return 0


# ------------------------------------------------------------------- output
def format_summary(summary: dict[str, Any]) -> str:
    """Render the dictionary returned by :func:`~captum_srae.apps.demo.run_demo`.

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
    cached = "loaded from the cache" if cnn["cached"] else "trained now"
    lines = [
        f"captum-srae demo ({summary['mode']} mode, seed {summary['seed']})",
        "",
        f"Data        {data['description']}",
        f"CNN         {cnn['name']}, {cnn['parameters']:,} parameters, {cached}: "
        f"train accuracy {_pct(cnn['train_accuracy'])}, held-out accuracy "
        f"{_pct(cnn['test_accuracy'])}",
        f"Explainer   one XNN per class on layer {xp['layer']} "
        f"({xp['in_features']} channels, average pooled), {xp['n_concepts']} "
        f"x-features, hidden sizes {tuple(xp['hidden_sizes'])}",
        "",
        f"Faithfulness on the {data['n_test']} held-out images",
    ]
    k = xp["n_concepts"]
    rows = []
    for name, e in summary["classes"].items():
        rows.append(
            [
                name,
                f"{e['r2']:.4f}",
                f"{e['baseline_r2']:.4f}",
                f"{e['rmse']:.3f}",
                _pct(e["rmse_rel"]),
                _top_features(e),
            ]
        )
    header = ["class", "XNN R^2", f"PCA-{k} R^2", "RMSE", "RMSE/range"]
    lines += _table([*header, "largest x-features: share, part followed"], rows)
    lines += [
        "  part followed: the part whose presence changes the x-feature's mean",
        "  contribution most (+: raises it, -: lowers it)",
    ]
    lines += [
        "",
        f"Top-1 agreement: the argmax of the {len(summary['classes'])} XNN scores "
        f"equals the CNN's prediction on {_pct(summary['agreement'])} of the "
        "held-out images",
        "",
    ]
    if "comparison" in summary:
        lines += [*_comparison_lines(summary["comparison"]), ""]
    timings = summary["timings"]
    steps = ["data", "cnn", "fit", "evaluation", "comparison", "report"]
    spent = [f"{key} {timings[key]:.1f} s" for key in steps if key in timings]
    lines.append(f"Timings     {', '.join(spent)}; total {timings['total']:.1f} s")
    if summary.get("out"):
        lines.append(f"Report      {summary['out']}")
        root = Path(summary["out"]).parent.parent
        if summary["cnn"].get("width", 16) == 16:  # the explainer has fit.json
            lines.append(
                f"Try         captum-srae explain --explainer {root / 'explainer'} "
                f"--images {root / 'images' / '3_winged+tailed'}/*.png --out explained"
            )
    return "\n".join(lines)


#: (metric, column title) of the comparison table printed by the demo.
_HEADLINE = [
    ("r2", "R^2"),
    ("top1_agreement", "agreement"),
    ("significant_features", "signif."),
    ("part_purity", "purity"),
    ("pointing_game", "pointing"),
    ("relevance_mass", "rel.mass"),
    ("deletion_auc", "del.AUC"),
    ("insertion_auc", "ins.AUC"),
]


def _comparison_lines(data: dict[str, Any]) -> list[str]:
    """A few metrics of every method of the comparison, ASCII only."""
    rows = []
    for method, values in data["methods"].items():
        cells = [method]
        for key, _ in _HEADLINE:
            value = values.get(key)
            cells.append("" if value is None else f"{value:.4g}")
        rows.append(cells)
    n = data["settings"].get("n_maps")
    return [
        f"Comparison of methods (maps of {n} held-out images; all metrics and "
        "their definitions in the report)",
        *_table(["method", *[title for _, title in _HEADLINE]], rows),
        "  higher is better except signif. (significant x-features per image)",
        "  and del.AUC (class score while the most relevant pixels are removed)",
    ]


def _top_features(entry: dict[str, Any], n: int = 3) -> str:
    """The ``n`` x-features with the largest share and the part they follow.

    The part is the one whose presence changes the x-feature's mean
    contribution most, with the sign of the change.
    """
    order = sorted(range(len(entry["share"])), key=lambda k: -entry["share"][k])
    effects: dict[str, list[float]] = entry["part_effect"]
    cells = []
    for k in order[:n]:
        follows = "n/a"
        if effects:
            part = max(effects, key=lambda p: abs(effects[p][k]))
            follows = f"{part}{'+' if effects[part][k] >= 0 else '-'}"
        cells.append(f"x{k + 1} {100 * entry['share'][k]:.0f}% {follows}")
    return ", ".join(cells)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Indented columns: the first and last left-aligned, the others right."""
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.ljust(width) if c in (0, len(widths) - 1) else cell.rjust(width)
            for c, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append(("  " + "  ".join(cells)).rstrip())
    return lines


def _num(x: float) -> str:
    text = f"{x:+.2f}"
    return "+0.00" if text == "-0.00" else text


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"
