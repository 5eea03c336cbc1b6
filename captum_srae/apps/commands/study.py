#!/usr/bin/env python3
r"""The ``study`` subcommand: a concept-quality study over a grid of SRAE
settings and seeds (:func:`captum_srae.evaluation.study.run_study`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from captum_srae.apps.commands.argtypes import nonnegative_int, positive_int
from captum_srae.utils.json_data import parse_json_object

__all__ = ["PROBLEM_NAMES", "add_study_command"]

#: The names of :data:`captum_srae.evaluation.study.PROBLEMS` (listed here so
#: that ``--help`` does not import torch).
PROBLEM_NAMES = ("synthetic", "two-part", "parts")

T = TypeVar("T")

DESCRIPTION = """\
Fit the SRAE on a problem with known answers for every point of a grid of
SRAEConfig settings and every seed, score each fit (held-out R^2, dead and
dominant x-features, orthogonality, reconstruction, and the problem's own
metrics: recovered factors, ignored distractors, separated parts), append
one JSON line per fit to --out, and print a Markdown table of the means with
95 % bootstrap intervals over seeds. Running again with the same problem,
grid and base config resumes: fits already in --out are skipped."""

EPILOG = """\
grids: quick (reconstruction {log,mse} x pull_away {off,images}), paper
(reconstruction x pull_away {off,images,features} x alpha_pred
{1,10,50,200,1000} x retune {off,on}), a JSON object or a JSON file, e.g.
'{"alpha_pred": [1, 50], "retune": {"off": {"retune_rounds": 1}}}'.

examples:
  captum-srae study --problem synthetic --grid quick --seeds 0 1 2 \\
      --out synthetic.jsonl
  captum-srae study --problem two-part --grid paper --seeds 0 1 2 3 4 \\
      --base-config '{"max_epochs": 20}' --out two_part.jsonl
  captum-srae study --out synthetic.jsonl --summary-only --metrics r2 \\
      factor_match --compare reconstruction=log,pull_away=off \\
      reconstruction=mse,pull_away=off --metric factor_match"""


def add_study_command(commands: Any) -> None:
    """Register ``study`` on the subparsers of the ``captum-srae`` parser."""
    p = commands.add_parser(
        "study",
        help="a concept-quality study over a grid of SRAE settings and seeds",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--problem", choices=PROBLEM_NAMES, default=None)
    p.add_argument(
        "--problem-args",
        default=None,
        metavar="JSON",
        help='arguments of the problem, e.g. \'{"n": 1000, "d": 64}\'',
    )
    p.add_argument(
        "--grid",
        default="quick",
        metavar="quick|paper|JSON|FILE",
        help="the grid of SRAEConfig settings (default: quick)",
    )
    p.add_argument(
        "--seeds",
        type=nonnegative_int,
        nargs="+",
        default=[0, 1, 2],
        metavar="N",
        help="seeds of the fits, at least 2 (default: 0 1 2)",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="results (JSONL)")
    p.add_argument(
        "--base-config",
        default=None,
        metavar="JSON|FILE",
        help="SRAEConfig fields shared by every fit (default: the defaults)",
    )
    _output_options(p)
    p.set_defaults(handler=_run)


def _output_options(p: argparse.ArgumentParser) -> None:
    """The options that choose what is printed."""
    p.add_argument(
        "--summary-only",
        action="store_true",
        help="fit nothing: print the summary of an existing --out",
    )
    p.add_argument(
        "--metrics", nargs="+", default=None, metavar="M", help="table columns"
    )
    p.add_argument(
        "--compare",
        nargs=2,
        default=None,
        metavar=("A", "B"),
        help="also print B - A of --metric, paired by seed",
    )
    p.add_argument(
        "--effect",
        nargs=3,
        default=None,
        metavar=("AXIS", "A", "B"),
        help="also print the effect of one grid axis on --metric: B - A, "
        "paired by seed and by the other axes' levels",
    )
    p.add_argument(
        "--metric", default=None, metavar="M", help="for --compare and --effect"
    )
    p.add_argument(
        "--n-boot",
        type=positive_int,
        default=2000,
        metavar="N",
        help="bootstrap resamples (default: 2000)",
    )
    p.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )
    p.add_argument(
        "--n-jobs",
        type=positive_int,
        default=None,
        metavar="N",
        help="fits side by side in N one-thread processes (default: one per CPU)",
    )


#: The library's argument names and the options they come from.
_OPTIONS = {
    "seeds": "--seeds",
    "base_config": "--base-config",
    "grid": "--grid",
    "out": "--out",
    "metrics": "--metrics",
    "metric": "--metric",
    "a": "--compare",
    "b": "--compare",
}


def _named(option: str, call: Callable[[], T]) -> T:
    """``call()``; a ValueError or TypeError becomes a one-line ValueError
    naming the option: a message that starts with a library argument's name
    (``seeds: ...``, ``grid axis ...``) gets that option's name instead,
    any other message the prefix ``option: ``."""
    try:
        return call()
    except (ValueError, TypeError) as exc:
        text = " ".join(str(exc).split())
        for name, flag in _OPTIONS.items():
            if text.startswith(f"{name}:") or (
                len(name) > 1 and text.startswith(f"{name} ")
            ):
                raise ValueError(flag + text[len(name) :]) from None
        raise ValueError(f"{option}: {text}") from None


def _grid(text: str) -> dict[str, Any]:
    from captum_srae.evaluation.study import PAPER_GRID, QUICK_GRID

    if text in ("quick", "paper"):
        return QUICK_GRID if text == "quick" else PAPER_GRID
    if not text.lstrip().startswith("{") and not Path(text).is_file():
        raise ValueError(
            f"--grid: {text!r} is not quick, paper, a JSON object or an existing "
            "JSON file"
        )
    return parse_json_object(text, "--grid")


def _fit(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run (or resume) the study the arguments describe."""
    from captum_srae.evaluation import study as S
    from captum_srae.evaluation.study.runner import base_fields, check_seeds

    if args.problem is None:
        raise ValueError("--problem is required unless --summary-only is given")
    seeds = _named("--seeds", lambda: check_seeds(args.seeds))
    kwargs = {}
    if args.problem_args is not None:
        kwargs = parse_json_object(args.problem_args, "--problem-args")
    problem = _named("--problem-args", lambda: S.PROBLEMS[args.problem](**kwargs))
    raw_base = None
    if args.base_config is not None:
        raw_base = parse_json_object(args.base_config, "--base-config")
    base = _named("--base-config", lambda: base_fields(raw_base))
    grid = _grid(args.grid)
    _named("--grid", lambda: S.expand_grid(grid, base))
    return _named(
        "--out",
        lambda: S.run_study(
            problem,
            grid,
            seeds,
            args.out,
            base_config=base,
            show_progress=args.progress,
            n_jobs=args.n_jobs,
        ),
    )


def _run(args: argparse.Namespace) -> int:
    from captum_srae.evaluation import study as S

    if (args.compare or args.effect) and args.metric is None:
        raise ValueError("--metric is required with --compare and --effect")
    if args.summary_only:
        if not Path(args.out).is_file():
            raise FileNotFoundError(f"--out: no results file {args.out}")
        header, records = _named("--out", lambda: S.load_results(args.out))
        grid = header["study"].get("grid")
    else:
        records, grid = _fit(args), _grid(args.grid)
    summary = _named(
        "--metrics",
        lambda: S.summarize(records, args.metrics, n_boot=args.n_boot),
    )
    diff = None
    if args.compare is not None:
        a, b = args.compare
        diff = _named(
            "--compare",
            lambda: S.paired_difference(records, args.metric, a, b, n_boot=args.n_boot),
        )
    effect = None
    if args.effect is not None:
        axis, a, b = args.effect
        if not isinstance(grid, dict):
            raise ValueError(f"--out: {args.out} records no grid for --effect")
        try:  # its a/b are the levels of --effect, not --compare's points
            effect = S.axis_effect(
                records, grid, args.metric, axis, a, b, n_boot=args.n_boot
            )
        except (ValueError, TypeError) as exc:
            text = str(exc)
            if text.startswith("metric:"):
                raise ValueError("--metric" + text[len("metric") :]) from None
            raise ValueError(f"--effect: {text}") from None
    print(f"Study {args.out}: {len(records)} fits; mean [95 % bootstrap CI]")
    print(S.format_summary(summary), end="")
    for line in (diff, effect):
        if line is not None:
            print(S.format_difference(line))
    return 0
