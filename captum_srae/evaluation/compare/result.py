#!/usr/bin/env python3
r"""The table of a comparison: every metric for every method, over seeds."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = ["METRIC_INFO", "ComparisonResult", "metric_rows"]

#: Metric name → (short description, True when higher is better, None when
#: neither direction is better). The keys are the columns of the table.
METRIC_INFO: dict[str, tuple[str, bool | None]] = {
    "r2": ("held-out R² of the class score rebuilt from the concepts", True),
    "rmse": ("held-out RMSE of the rebuilt class score", False),
    "relative_rmse": ("RMSE over the range of the model's score", False),
    "ice_error": ("mean relative error of the rebuilt score (ICE-style)", False),
    "top1_agreement": ("argmax over per-class XNN scores = model's argmax", True),
    "completeness": ("completeness of the concepts (Yeh et al. 2020)", True),
    "significant_features": (
        "positive contributions reaching 90 % of the positive score, over the "
        "images of the explained class that have a positive contribution",
        False,
    ),
    "l0": ("fraction of nonzero x-features per image", False),
    "hoyer": ("Hoyer sparsity of the x-features (1: one active)", True),
    "mean_abs_cosine": ("mean |cosine| between x-feature columns", False),
    "max_abs_cosine": ("max |cosine| between x-feature columns", False),
    "mean_abs_cosine_weighted": (
        "mean |cosine| with pairs weighted by |v_k v_l|",
        False,
    ),
    "pull_away_images": ("pull-away value across images", False),
    "pull_away_features": ("pull-away value across x-features", False),
    "correlation_offdiag": ("‖corr(E) − I‖_F", False),
    "reconstructed_dims": ("fraction of activation dims with R²_d > 0.5", True),
    "part_purity": ("mean purity of the x-features' part association", True),
    "part_iou": (
        "mean best part IoU of the x-features that overlap a part",
        True,
    ),
    "concept_deletion_auc": (
        "deletion AUC of the top x-feature's own value, summed over images and "
        "divided by its summed value on the intact images",
        False,
    ),
    "concept_insertion_auc": (
        "insertion AUC of the top x-feature's own value, summed over images "
        "and divided by its summed value on the intact images",
        True,
    ),
    "stability": (
        "Hungarian-matched |corr| of x-features between seeds (one value per "
        "pair of seeds)",
        True,
    ),
    "pointing_game": ("class map's peak inside the class's parts", True),
    "relevance_mass": ("share of the class map's positive mass in the parts", True),
    "deletion_auc": ("deletion AUC of the class score (logit)", False),
    "insertion_auc": ("insertion AUC of the class score (logit)", True),
    "fit_seconds": ("time to fit the concepts of all classes", None),
    "map_seconds": ("time to compute the class maps", None),
}


@dataclasses.dataclass
class ComparisonResult:
    r"""Every metric for every method: the mean and the standard deviation
    over seeds, and the value of each seed.

    Attributes:
        methods (list[str]): the method names, in the order compared.
        kinds (dict[str, str]): ``"concept"`` or ``"map"`` per method.
        per_seed (dict[str, list[dict[str, float]]]): per method, one
            ``metric → value`` dict per seed (one for methods that involve no
            training).
        seeds (list[int]): the seeds of the concept methods.
        settings (dict[str, Any]): what was compared (layer, sizes, ...).
        errors (dict[str, str]): per method that raised (a peer or an extra
            method), its error in one line; such a method has no rows.
    """

    methods: list[str]
    kinds: dict[str, str]
    per_seed: dict[str, list[dict[str, float]]]
    seeds: list[int]
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    errors: dict[str, str] = dataclasses.field(default_factory=dict)

    def metrics(self) -> list[str]:
        """The metric names that at least one method has, in table order."""
        present = {m for runs in self.per_seed.values() for r in runs for m in r}
        known = [m for m in METRIC_INFO if m in present]
        return known + sorted(present - set(known))

    def mean(self, method: str, metric: str) -> float:
        """Mean over seeds (NaN where the method lacks the metric)."""
        vals = self._values(method, metric)
        return float(np.mean(vals)) if vals else math.nan

    def std(self, method: str, metric: str) -> float:
        """Sample standard deviation over seeds (NaN with fewer than two)."""
        vals = self._values(method, metric)
        return float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan

    def _values(self, method: str, metric: str) -> list[float]:
        runs = self.per_seed[method]
        return [float(r[metric]) for r in runs if metric in r]

    def to_dict(self) -> dict[str, Any]:
        """JSON data: ``{"methods": {method: {metric: mean}}, "std": ...}``.

        Non-finite values become None; ``per_seed``, ``seeds``, ``kinds``,
        ``settings``, ``errors`` and ``higher_is_better`` are included.
        """

        def clean(x: float) -> float | None:
            return x if math.isfinite(x) else None

        ms = self.metrics()
        return {
            "methods": {
                m: {k: clean(self.mean(m, k)) for k in ms if self._values(m, k)}
                for m in self.methods
            },
            "std": {
                m: {k: clean(self.std(m, k)) for k in ms if self._values(m, k)}
                for m in self.methods
            },
            "per_seed": {
                m: [{k: clean(float(v)) for k, v in r.items()} for r in runs]
                for m, runs in self.per_seed.items()
            },
            "higher_is_better": {k: METRIC_INFO.get(k, ("", None))[1] for k in ms},
            "kinds": dict(self.kinds),
            "seeds": list(self.seeds),
            "settings": dict(self.settings),
            "errors": dict(self.errors),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComparisonResult:
        """Rebuild a result from :meth:`to_dict` (None back to NaN)."""
        per_seed = {
            m: [
                {k: math.nan if v is None else float(v) for k, v in r.items()}
                for r in runs
            ]
            for m, runs in data["per_seed"].items()
        }
        return cls(
            list(data["per_seed"]),
            dict(data["kinds"]),
            per_seed,
            list(data["seeds"]),
            dict(data.get("settings", {})),
            dict(data.get("errors", {})),
        )

    def to_rows(self, metrics: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """One row per method: ``"method"``, then ``"<metric>"`` as
        ``"mean ± sd"`` text (or the mean alone with one seed, "" if absent)."""
        rows = []
        for m in self.methods:
            row: dict[str, Any] = {"method": m}
            for k in metrics or self.metrics():
                row[k] = self._text(m, k)
            rows.append(row)
        return rows

    def _text(self, method: str, metric: str) -> str:
        mean, sd = self.mean(method, metric), self.std(method, metric)
        if math.isnan(mean):
            return ""
        return f"{mean:.4g}" if math.isnan(sd) else f"{mean:.4g} ± {sd:.2g}"

    def to_csv(self) -> str:
        """CSV text: ``method``, then ``<metric>`` and ``<metric>_sd`` columns."""
        ms = self.metrics()
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["method", *[c for k in ms for c in (k, f"{k}_sd")]])
        for m in self.methods:
            cells: list[Any] = [m]
            for k in ms:
                for v in (self.mean(m, k), self.std(m, k)):
                    cells.append("" if math.isnan(v) else repr(v))
            writer.writerow(cells)
        return buf.getvalue()

    def to_markdown(self, metrics: Sequence[str] | None = None) -> str:
        """A Markdown table: methods as rows, metrics (with ↑/↓) as columns;
        a note below it gives the error of each method that failed."""
        ms = list(metrics or self.metrics())
        arrow = {True: " ↑", False: " ↓", None: ""}
        head = [f"{k}{arrow[METRIC_INFO.get(k, ('', None))[1]]}" for k in ms]
        lines = ["| method | " + " | ".join(head) + " |"]
        lines.append("|---" * (len(ms) + 1) + "|")
        for row in self.to_rows(ms):
            lines.append(
                f"| {row['method']} | " + " | ".join(row[k] for k in ms) + " |"
            )
        if self.errors:
            lines.append("")
            lines.extend(
                f"Note: {m} failed and has no results ({msg})."
                for m, msg in self.errors.items()
            )
        return "\n".join(lines) + "\n"

    def plot(self, metrics: Sequence[str] | None = None) -> Figure:
        """Bar charts, one panel per metric, error bars over seeds."""
        ms = [k for k in (metrics or self.metrics()) if not k.endswith("_seconds")]
        cols = 4
        rows = max(1, math.ceil(len(ms) / cols))
        fig = Figure(figsize=(3.3 * cols, 2.6 * rows), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        colours = {
            m: f"C{i % 10}" for i, m in enumerate(self.methods)
        }  # same colour per method in every panel
        for ax, k in zip(axes, ms, strict=False):
            names = [m for m in self.methods if self._values(m, k)]
            means = [self.mean(m, k) for m in names]
            sds = [0.0 if math.isnan(s) else s for s in (self.std(m, k) for m in names)]
            ax.barh(names, means, xerr=sds, color=[colours[m] for m in names])
            ax.invert_yaxis()
            better = METRIC_INFO.get(k, ("", None))[1]
            suffix = {True: " (higher better)", False: " (lower better)", None: ""}
            ax.set_title(f"{k}{suffix[better]}", fontsize=8)
            ax.tick_params(labelsize=7)
        for ax in axes[len(ms) :]:
            ax.set_visible(False)
        fig.suptitle("Comparison of explanation methods", fontsize="medium")
        return fig


def metric_rows(metrics: Sequence[str]) -> list[dict[str, str]]:
    """One row per metric of :data:`METRIC_INFO`: name, meaning, better direction.

    Args:
        metrics (Sequence[str]): metric names (unknown ones get empty cells).

    Returns:
        *list[dict[str, str]]*: rows with keys ``metric``, ``meaning``,
        ``better`` (``"higher"``, ``"lower"`` or ``"—"``).
    """
    word = {True: "higher", False: "lower", None: "—"}
    return [
        {
            "metric": k,
            "meaning": METRIC_INFO.get(k, ("", None))[0],
            "better": word[METRIC_INFO.get(k, ("", None))[1]],
        }
        for k in metrics
    ]
