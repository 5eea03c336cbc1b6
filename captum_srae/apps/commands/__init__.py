#!/usr/bin/env python3
r"""The ``fit``, ``explain`` and ``report`` subcommands of ``captum-srae``.

They run the demo's pipeline on the user's own classifier and image folder:

- ``fit``: collect a layer's activations over an image folder, fit one SRAE
  explainer (XNN) per target class, save it with ``fit.json`` (how to rebuild
  the model and the image transform);
- ``explain``: explain image files, one PNG and the numbers per image;
- ``report``: an HTML report (faithfulness, explanations, concept gallery,
  training curves) of the explainer on an image folder.

:func:`add_user_commands` registers them on the subparsers of
:func:`captum_srae.apps.cli.build_parser`. Heavy modules (torch, torchvision) are
imported when a command runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import functools
import re
import textwrap
from collections.abc import Callable
from typing import Any

from captum_srae.apps.commands.argtypes import nonnegative_int, positive_int

__all__ = ["add_user_commands"]

_RAW = argparse.RawDescriptionHelpFormatter

FIT_EPILOG = """\
The image folder holds one subfolder of images per class (torchvision's
ImageFolder): DIR/cat/1.jpg, DIR/dog/2.png, ... Classes are numbered in the
sorted order of the subfolder names; a CLASS of --target is such an index (of
the model's outputs) or a subfolder name. Images are resized, centre-cropped
to --image-size and normalised with the ImageNet mean and std (--no-normalize
keeps pixels in [0, 1]).

examples:
  captum-srae fit --model resnet18 --num-classes 10 --weights net.pt \\
      --data images/train --layer layer4 --target 3 --out explainer
  captum-srae fit --model my_models:make_net --weights net.pt --data images \\
      --layer features.8 --target cat dog --n-concepts 4 --out explainer
  captum-srae fit ... --config qi2021                  (the authors' weights)
  captum-srae fit ... --config '{"max_epochs": 50}'     (SRAEConfig fields)
"""

EXPLAIN_EPILOG = """\
Each image gets IMAGE.png in --out: the image and one heatmap per x-feature,
sorted by its contribution e_k*v_k to the class score (titled r=ratio to the
largest, and the contribution); explanations.json holds the numbers.

examples:
  captum-srae explain --explainer explainer --images cat1.jpg dog7.png --out expl
  captum-srae explain --explainer explainer --images photos/*.jpg --target dog \\
      --out expl
"""

REPORT_EPILOG = """\
The report folder holds index.html (open it in a browser), one PNG per figure
and metrics.json.

examples:
  captum-srae report --explainer explainer --data images/test --out report
  captum-srae report --explainer explainer --data images/test --max-images 200 \\
      --target dog --out report
"""


def _para(text: str) -> str:
    """A description wrapped for the raw formatter (which keeps line breaks)."""
    return textwrap.fill(text, width=79)


def _one_line(exc: BaseException, with_type: bool = False) -> str:
    """The message of ``exc`` on one line; ``with_type`` prefixes its type."""
    text = re.sub(r"\s+", " ", str(exc)).strip()
    if with_type:
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text or type(exc).__name__


def _guarded(run: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """Turn the errors of a command into one-line errors that ``main`` prints.

    ``main`` reports ``ValueError``, ``TypeError``, ``FileNotFoundError`` (exit
    2) and ``OSError`` (exit 1) without a traceback. A ``RuntimeError`` (from
    torch or from the user's model: CUDA out of memory, a device mismatch, a
    bug in its forward, a diverged fit) becomes a ``ValueError`` whose message
    starts with the original type and message, e.g. ``RuntimeError: CUDA out
    of memory ...``, chained to the original (``__cause__``).
    """

    @functools.wraps(run)
    def handler(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except FileNotFoundError as exc:
            raise FileNotFoundError(_one_line(exc)) from None
        except TypeError as exc:
            raise TypeError(_one_line(exc)) from None
        except ValueError as exc:
            raise ValueError(_one_line(exc)) from None
        except RuntimeError as exc:
            raise ValueError(_one_line(exc, with_type=True)) from exc
        except OSError as exc:
            raise OSError(_one_line(exc)) from None

    return handler


def _run(name: str) -> Callable[[argparse.Namespace], int]:
    """The command ``name``'s body, imported on use."""

    def run(args: argparse.Namespace) -> int:
        if name == "fit":
            from captum_srae.apps.commands.fit import run_fit as body
        elif name == "explain":
            from captum_srae.apps.commands.explain import run_explain as body
        else:
            from captum_srae.apps.commands.report import run_report as body
        return body(args)

    return _guarded(run)


def _common_options(p: argparse.ArgumentParser, name: str) -> None:
    """``--batch-size``, ``--device``, ``--no-progress``, ``--out`` and the
    handler of the command ``name``."""
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=32,
        metavar="N",
        help="images per forward pass (default: 32)",
    )
    p.add_argument(
        "--device",
        default=None,
        help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda if available)",
    )
    p.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="do not show progress bars",
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="new or empty output folder"
    )
    p.set_defaults(handler=_run(name))


def _fitted_options(p: argparse.ArgumentParser, target_help: str) -> None:
    """``--explainer`` (a fit folder) and ``--target`` (one fitted class)."""
    p.add_argument(
        "--explainer", required=True, metavar="DIR", help="a captum-srae fit folder"
    )
    p.add_argument("--target", nargs=1, default=None, metavar="CLASS", help=target_help)


def add_user_commands(commands: Any) -> None:
    """Add ``fit``, ``explain`` and ``report`` to the subparsers ``commands``.

    Args:
        commands (argparse._SubParsersAction): what
            ``ArgumentParser.add_subparsers`` returned.

    Examples::

        >>> parser = argparse.ArgumentParser(prog="captum-srae")
        >>> add_user_commands(parser.add_subparsers(dest="command"))
        >>> parser.parse_args(["explain", "--explainer", "e", "--images", "a.png",
        ...                    "--out", "o"]).command
        'explain'
    """
    _add_fit(commands)
    _add_explain(commands)
    _add_report(commands)


def _parser(
    commands: Any, name: str, help_text: str, description: str, epilog: str
) -> argparse.ArgumentParser:
    """The subparser ``name`` with a wrapped description and a raw epilog."""
    return commands.add_parser(
        name,
        help=help_text,
        description=_para(description),
        epilog=epilog,
        formatter_class=_RAW,
    )


def _add_fit(commands: Any) -> None:
    """The ``fit`` subcommand."""
    fit = _parser(
        commands,
        "fit",
        "fit an explainer on your model and image folder",
        (
            "Fit an SRAE explainer (XNN of Qi, Khorram and Li) on a layer of "
            "your classifier: run the images of DIR through the model, collect "
            "the layer's (average pooled) activations and the scores of the "
            "target classes, and train a few x-features that rebuild each "
            "score. Saves the explainer and fit.json (how to rebuild the model "
            "and the transforms) to --out."
        ),
        FIT_EPILOG,
    )
    fit.add_argument(
        "--model",
        required=True,
        metavar="NAME|module:callable",
        help=(
            "a torchvision model name (resnet18, vgg16, ...), or "
            "module:callable, a function of an importable module returning "
            "your nn.Module (called with num_classes=N when --num-classes is "
            "given)"
        ),
    )
    fit.add_argument(
        "--num-classes",
        type=positive_int,
        default=None,
        metavar="N",
        help="outputs of a torchvision model (default: the folder's classes)",
    )
    fit.add_argument(
        "--weights",
        metavar="FILE",
        default=None,
        help=(
            "the model's state dict (torch.save, read with weights_only=True, "
            "or .safetensors); default: random initialisation"
        ),
    )
    fit.add_argument(
        "--data",
        required=True,
        metavar="DIR",
        help="image folder with one subfolder per class",
    )
    fit.add_argument(
        "--layer",
        required=True,
        metavar="NAME",
        help="dotted name of the explained layer, e.g. layer4 or features.8",
    )
    fit.add_argument(
        "--target",
        required=True,
        nargs="+",
        metavar="CLASS",
        help="the explained class(es): output indices or subfolder names",
    )
    _fit_training_options(fit)
    _common_options(fit, "fit")


def _fit_training_options(fit: argparse.ArgumentParser) -> None:
    """The options of ``fit`` that shape the data and the SRAE."""
    fit.add_argument(
        "--n-concepts",
        type=positive_int,
        default=None,
        metavar="N",
        help="number of x-features (default: 5, or the --config value)",
    )
    fit.add_argument(
        "--image-size",
        type=positive_int,
        default=224,
        metavar="PX",
        help="height and width of the model's input (default: 224)",
    )
    fit.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_false",
        help=(
            "keep pixels in [0, 1] instead of normalising with the ImageNet mean "
            "and std (for models trained on raw pixels)"
        ),
    )
    fit.add_argument(
        "--max-images",
        type=positive_int,
        default=None,
        metavar="N",
        help="use a random subset of N images (default: all)",
    )
    fit.add_argument(
        "--config",
        default=None,
        metavar="JSON|PRESET",
        help=(
            "SRAE hyperparameters: a preset (default, qi2021), a JSON object "
            "of SRAEConfig fields, or a JSON file of them"
        ),
    )
    fit.add_argument(
        "--seed",
        type=nonnegative_int,
        default=None,
        metavar="N",
        help="seed of the subset and of the fit (default: the config's, 0)",
    )


def _add_explain(commands: Any) -> None:
    """The ``explain`` subcommand."""
    explain = _parser(
        commands,
        "explain",
        "explain image files with a fitted explainer",
        (
            "Rebuild the model of a 'captum-srae fit' folder (checking that "
            "its weights file is unchanged), transform the images as at fit "
            "time and write one explanation figure per image, plus the "
            "numbers in explanations.json."
        ),
        EXPLAIN_EPILOG,
    )
    _fitted_options(
        explain,
        "a fitted class (index or folder name); default: per image, the fitted "
        "class the model scores highest",
    )
    explain.add_argument(
        "--images", required=True, nargs="+", metavar="FILE", help="image files"
    )
    _common_options(explain, "explain")


def _add_report(commands: Any) -> None:
    """The ``report`` subcommand."""
    report = _parser(
        commands,
        "report",
        "write an HTML report of a fitted explainer on an image folder",
        (
            "Measure how faithfully the x-features rebuild the model's score "
            "on the images of DIR (R^2, RMSE), and draw explanations of a few "
            "images, the top images of each x-feature, the fit's training "
            "curves and the faithfulness scatter into an HTML report."
        ),
        REPORT_EPILOG,
    )
    _fitted_options(report, "the fitted class drawn (default: the first fitted one)")
    report.add_argument(
        "--data", required=True, metavar="DIR", help="image folder (DIR/class/image)"
    )
    report.add_argument(
        "--max-images",
        type=positive_int,
        default=64,
        metavar="N",
        help="a random subset of at most N images (default: 64)",
    )
    report.add_argument(
        "--n-examples",
        type=positive_int,
        default=4,
        metavar="N",
        help="images with an explanation figure (default: 4)",
    )
    _common_options(report, "report")
