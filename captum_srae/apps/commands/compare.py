#!/usr/bin/env python3
r"""The ``compare`` subcommand: every method and metric on the parts data set."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_compare_command"]

DESCRIPTION = """\
Compare the SRAE with the baselines (autoencoder ablation, PCA, NMF, TopK SAE,
random basis) and with Captum's single-map methods (LayerGradCam,
GuidedGradCam, IntegratedGradients, Saliency) on the parts data set's CNN
(layer conv4): faithfulness, agreement, conciseness, orthogonality,
reconstruction, part localisation, deletion/insertion and stability across
seeds. Prints the table and writes comparison.csv, comparison.md,
comparison.json and an HTML report."""

EPILOG = """\
examples:
  captum-srae compare --quick
  captum-srae compare --seeds 0 1 2 --out results/compare
  captum-srae compare --quick --methods SRAE PCA NMF LayerGradCam"""


def add_compare_command(commands: Any) -> None:
    """Register ``compare`` on the subparsers of the ``captum-srae`` parser."""
    p = commands.add_parser(
        "compare",
        help="compare SRAE, baselines and Captum methods on the parts data set",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        action="store_const",
        const="quick",
        dest="mode",
        help="fewer images, maps and curve steps, one seed",
    )
    size.add_argument(
        "--tiny",
        action="store_const",
        const="tiny",
        dest="mode",
        help="a tiny CNN and tiny explainers, for testing the pipeline",
    )
    p.set_defaults(mode="full")
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        metavar="N",
        help="seeds of the methods that train (default: 0 1 2; --quick: 0)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        metavar="NAME",
        help=(
            "methods to compare (default: the package's own; with the peers "
            "extra also pgc-GradCAM, pgc-GradCAM++, pgc-ScoreCAM, pgc-EigenCAM "
            "and DFF); names with spaces in quotes, e.g. 'TopK SAE'"
        ),
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default="captum-srae-compare",
        help="output folder (default: ./captum-srae-compare)",
    )
    p.add_argument("--cache-dir", metavar="DIR", default=None, help="CNN cache")
    p.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bars"
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from captum_srae.apps.parts_comparison import (
        check_comparison_out,
        compare_parts,
        write_comparison,
    )
    from captum_srae.evaluation.compare import DEFAULT_METHODS

    check_comparison_out(args.out)  # before the long work
    seeds = args.seeds or ([0, 1, 2] if args.mode == "full" else [0])
    result = compare_parts(
        args.mode,
        seeds=seeds,
        methods=args.methods or DEFAULT_METHODS,
        cache_dir=args.cache_dir,
        show_progress=args.progress,
    )
    page = write_comparison(result, args.out)
    headline = [
        "r2",
        "top1_agreement",
        "significant_features",
        "part_purity",
        "stability",
        "pointing_game",
        "relevance_mass",
        "deletion_auc",
        "insertion_auc",
    ]
    shown = [m for m in headline if m in result.metrics()]
    print(result.to_markdown(shown), end="")
    print(f"\nAll metrics: {page.parent.parent / 'comparison.md'}\nReport: {page}")
    return 0
