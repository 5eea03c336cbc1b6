#!/usr/bin/env python3
r"""The comparison on the parts data set, and writing any comparison to disk.

:func:`compare_parts` runs :func:`~captum_srae.evaluation.compare.compare` on the demo's
CNN and data (``class = wing + 2 * tail``, so the wing and tail masks are the
ground truth of the class maps); :func:`write_comparison` writes a result as
``comparison.csv``, ``comparison.md``, ``comparison.json`` and an HTML report.
``captum-srae compare`` calls both.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

from captum_srae.apps.demo import (
    CNN_TRAIN_IMAGES,
    DEMO_CONFIG,
    TEST_SEED_OFFSET,
    TINY,
    demo_data,
)
from captum_srae.core.config import SRAEConfig
from captum_srae.datasets import make_parts_dataset
from captum_srae.datasets.models import PARTS_MAPS, train_or_load
from captum_srae.evaluation.compare.methods import DEFAULT_METHODS
from captum_srae.evaluation.compare.result import ComparisonResult, metric_rows
from captum_srae.evaluation.compare.runner import compare
from captum_srae.utils.atomic import atomic_directory
from captum_srae.visualization import write_report

__all__ = [
    "PARTS_SETTINGS",
    "PartsSettings",
    "check_comparison_out",
    "compare_parts",
    "write_comparison",
]

PathLike = str | os.PathLike[str]


@dataclasses.dataclass(frozen=True)
class PartsSettings:
    """Sizes of one :func:`compare_parts` mode.

    Attributes:
        n_fit (int): images the concepts are fitted on (the CNN's training
            images).
        n_test (int): held-out images.
        n_maps (int): held-out images that get maps.
        n_steps (int): deletion/insertion steps.
        config (SRAEConfig): the SRAE settings (``n_concepts`` for all; the
            demo's :data:`~captum_srae.apps.demo.DEMO_CONFIG` for "full" and
            "quick").
        cnn (dict): arguments of :func:`~captum_srae.datasets.models.train_or_load`;
            empty for the demo's CNN.
        size (int): image size.
    """

    n_fit: int
    n_test: int
    n_maps: int
    n_steps: int
    config: SRAEConfig
    cnn: dict = dataclasses.field(default_factory=dict)
    size: int = 64


#: ``"full"``, ``"quick"`` and ``"tiny"`` (for tests: a 4-channel CNN trained
#: one epoch on 32×32 images, 3 concepts, a few epochs).
PARTS_SETTINGS: dict[str, PartsSettings] = {
    "full": PartsSettings(4000, 1000, 200, 20, DEMO_CONFIG),
    "quick": PartsSettings(2000, 300, 60, 10, DEMO_CONFIG),
    "tiny": PartsSettings(
        TINY.n_fit,
        TINY.n_test,
        TINY.compare_maps,
        TINY.compare_steps,
        TINY.srae_config,
        TINY.cnn,
        TINY.cnn["size"],
    ),  # fmt: skip
}


def compare_parts(
    mode: str = "quick",
    seeds: Sequence[int] = (0,),
    methods: Sequence[str] = DEFAULT_METHODS,
    *,
    seed: int = 0,
    cache_dir: PathLike | None = None,
    show_progress: bool = True,
) -> ComparisonResult:
    r"""Compare the methods on the parts data set's CNN (layer ``conv4``).

    The concepts are fitted on the first ``n_fit`` training images of the
    CNN; the metrics use held-out images drawn with another seed, with the
    wing and tail masks (the parts that decide the class) as the ground
    truth of the class maps and all four part masks for the concepts' part
    association.

    Args:
        mode (str, optional): a key of :data:`PARTS_SETTINGS`.
            Default: "quick"
        seeds (Sequence[int], optional): seeds of the concept methods.
            Default: (0,)
        methods (Sequence[str], optional): the methods. Default: all but the
            peers
        seed (int, optional): seed of the data and the CNN. Default: 0
        cache_dir (str or PathLike, optional): the CNN cache. Default: None
        show_progress (bool, optional): progress bars. Default: True

    Returns:
        *ComparisonResult*

    Examples::

        >>> res = compare_parts("quick", seeds=(0, 1, 2))  # doctest: +SKIP
        >>> print(res.to_markdown(["r2", "top1_agreement", "part_purity"]))
    """

    if mode not in PARTS_SETTINGS:
        raise ValueError(f"mode must be one of {sorted(PARTS_SETTINGS)}, got {mode!r}")
    st = PARTS_SETTINGS[mode]
    if st.cnn:
        model, _ = train_or_load(
            seed=seed, cache_dir=cache_dir, show_progress=show_progress, **st.cnn
        )
        train = make_parts_dataset(st.cnn["n_train"], seed=seed, size=st.size)
        fit_images = train.images[: st.n_fit]
        test = make_parts_dataset(st.n_test, seed=seed + TEST_SEED_OFFSET, size=st.size)
    else:
        model, _ = train_or_load(
            CNN_TRAIN_IMAGES,
            seed=seed,
            cache_dir=cache_dir,
            show_progress=show_progress,
        )
        fit, test = demo_data(st.n_fit, st.n_test, seed)
        fit_images = fit.images
    result = compare(
        model,
        "conv4",
        fit_images,
        test.images,
        labels=test.labels,
        masks=test.masks,
        relevant_parts=[2, 3],
        methods=methods,
        config=st.config,
        seeds=seeds,
        n_maps=st.n_maps,
        n_steps=st.n_steps,
        show_progress=show_progress,
        **PARTS_MAPS,
    )
    result.settings.update(mode=mode, data_seed=seed, data="parts data set")
    return result


def check_comparison_out(out: PathLike) -> Path:
    """The folder ``out`` as a Path, if writing a comparison there is safe: new,
    empty, or a previous comparison (holding ``comparison.json``).

    Raises:
        ValueError: if ``out`` is a file or a non-empty folder of something else.
    """
    path = Path(os.fspath(out)).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"out {path} exists and is not a directory")
        if any(path.iterdir()) and not (path / "comparison.json").is_file():
            raise ValueError(
                f"out {path} is a non-empty folder that holds no previous "
                "comparison; writing would replace its content: choose a new or "
                "empty folder"
            )
    return path


def write_comparison(result: ComparisonResult, out: PathLike) -> Path:
    r"""Write a comparison to the folder ``out`` (replaced atomically).

    The folder holds ``comparison.csv`` (mean and sd columns),
    ``comparison.md``, ``comparison.json`` (:meth:`ComparisonResult.to_dict`)
    and ``report/`` (an HTML page with the table, the bar charts and the
    metric definitions; its ``metrics.json`` is the same dict).

    Args:
        result (ComparisonResult): the comparison.
        out (str or PathLike): the folder.

    Returns:
        *Path*: the report's ``index.html``.

    Raises:
        ValueError: see :func:`check_comparison_out`.
    """

    target = check_comparison_out(out)
    data = result.to_dict()
    with atomic_directory(target) as tmp:
        (tmp / "comparison.csv").write_text(result.to_csv(), encoding="utf-8")
        (tmp / "comparison.md").write_text(result.to_markdown(), encoding="utf-8")
        text = json.dumps(data, indent=2, allow_nan=False) + "\n"
        (tmp / "comparison.json").write_text(text, encoding="utf-8")
        write_report(
            tmp / "report",
            sections=[("Metrics by method", [result.plot()])],
            tables={
                "Comparison (mean ± sd over seeds)": result.to_rows(),
                "Metric definitions": metric_rows(result.metrics()),
            },
            metrics=data,
            title="captum-srae: comparison of explanation methods",
            intro=(
                f"Settings: {json.dumps(result.settings)}; seeds "
                f"{result.seeds}. ↑: higher is better, ↓: lower is better."
            ),
        )
    return target / "report" / "index.html"
