#!/usr/bin/env python3
r"""One class of the parts data set as a study problem: :class:`PartsProblem`.

The demo's CNN (:func:`~captum_srae.datasets.models.train_or_load`), or its
small ViT (:func:`~captum_srae.datasets.vit.train_or_load_vit`, with
``model="vit"``), is explained at ``layer`` (average pooled; the class token
for the ViT) for one ``target`` class, fitted on the network's training
images and scored on held-out images with their part masks. The class is
``wing + 2 * tail``, so the evidence parts of a class are the parts it
requires (:data:`EVIDENCE_PARTS`): the wing for "winged", the
tail for "tailed", both for "winged+tailed", none for "plain".
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from captum_srae.activations.collect import collect_activations
from captum_srae.attribution.checks import check_map_method
from captum_srae.attribution.smoothing import check_smoothing
from captum_srae.attribution.srae_attribution import SRAEAttribution
from captum_srae.datasets import make_parts_dataset
from captum_srae.datasets.models import PARTS_MAPS, train_or_load
from captum_srae.datasets.vit import (
    VIT_LAYER,
    VIT_MAP_METHOD,
    VIT_POOLING,
    train_or_load_vit,
)
from captum_srae.evaluation.metrics.localisation import part_association, pointing_game
from captum_srae.evaluation.study.problems import ProblemData, tensor_fingerprint
from captum_srae.evaluation.study.scoring import positive_shares
from captum_srae.utils.validation import check_int

__all__ = [
    "EVIDENCE_PARTS",
    "OWN_POINTING",
    "OWN_SHARE",
    "PartsProblem",
    "own_part_features",
    "part_pointing_rates",
]

#: The parts whose presence raises each class's score (indices of
#: :data:`~captum_srae.datasets.parts.PART_NAMES`: 2 wing, 3 tail).
EVIDENCE_PARTS: tuple[tuple[int, ...], ...] = ((), (2,), (3,), (2, 3))
#: An x-feature "stands for" a part when its map peaks on that part on at
#: least this fraction of the images where both are present (pointing game).
OWN_POINTING = 0.7
#: ... and it carries at least this share of the positive score.
OWN_SHARE = 0.2
#: Seed offset of the held-out images (the demo's).
TEST_SEED_OFFSET = 1_000_003
PART_NAMES = ("head", "body", "wing", "tail")


def own_part_features(
    pointing: Tensor, shares: Tensor, parts: tuple[int, ...]
) -> list[int | None]:
    """For each evidence part, a distinct x-feature that stands for it.

    Parts are served in order; each takes, among the x-features not yet
    taken whose pointing rate on it is at least :data:`OWN_POINTING` and
    whose share of the positive score is at least :data:`OWN_SHARE`, the
    one with the highest pointing rate (None if there is none).

    Args:
        pointing (Tensor): ``(n_concepts, n_parts)`` pointing rates (NaN
            where undefined).
        shares (Tensor): ``(n_concepts,)`` shares of the positive score.
        parts (tuple[int, ...]): the evidence parts.

    Returns:
        *list[int | None]*: one x-feature index (or None) per part.
    """
    taken: set[int] = set()
    out: list[int | None] = []
    for p in parts:
        rate = torch.nan_to_num(pointing[:, p].double(), nan=-1.0)
        ok = (rate >= OWN_POINTING) & (shares.double() >= OWN_SHARE)
        best = None
        for k in torch.argsort(rate, descending=True).tolist():
            if bool(ok[k]) and k not in taken:
                best = k
                break
        if best is not None:
            taken.add(best)
        out.append(best)
    return out


@dataclasses.dataclass
class PartsProblem:
    r"""One class of the parts data set, explained at a layer of the demo CNN.

    Args:
        target (int, optional): the explained class (0..3). Default: 3
            ("winged+tailed", two evidence parts)
        n_fit (int, optional): training images (the CNN's first ``n_fit``).
            Default: 4000
        n_test (int, optional): held-out images. Default: 1000
        n_maps (int, optional): held-out images whose maps are scored.
            Default: 300
        layer (str, optional): the explained layer. Default: "conv4"
        heatmap_layer (str, optional): where the x-feature maps are computed
            (None: ``layer``). Default: "conv1"
        map_method (str, optional): ``method`` of
            :meth:`~captum_srae.SRAEAttribution.attribute` ("gradcam",
            "excitation" or a class name of ``captum.attr``).
            Default: "LayerGradientXActivation"
        smoothing (float, optional): ``smoothing`` of ``attribute``.
            Default: 2.0 (these three:
            :data:`~captum_srae.datasets.models.PARTS_MAPS`)
        cnn (dict, optional): arguments of
            :func:`~captum_srae.datasets.models.train_or_load` (or of
            :func:`~captum_srae.datasets.vit.train_or_load_vit`; empty: the
            demo's network). Default: {}
        seed (int, optional): seed of the images. Default: 0
        pointing_tolerance (int, optional): ``tolerance`` of every pointing
            game of the problem (pixels by which a map's peak may miss the
            part; see :func:`~captum_srae.evaluation.metrics.pointing_game`).
            Default: 0 (the peak inside the part)
        model (str, optional): ``"cnn"`` (the demo's ``PartsCNN``) or
            ``"vit"`` (the small ViT). With ``"vit"``, the CNN's defaults of
            ``layer``, ``heatmap_layer``, ``map_method`` and ``smoothing``
            become :data:`~captum_srae.datasets.vit.VIT_LAYER`, None (maps on
            the input), :data:`~captum_srae.datasets.vit.VIT_MAP_METHOD` and 0, the
            activations are pooled as
            :data:`~captum_srae.datasets.vit.VIT_POOLING` (the class token),
            and the fitted SRAEs must have that pooling
            (``base_config={"pooling": "cls"}``). Default: "cnn"

    Examples::

        >>> problem = PartsProblem(target=3)
        >>> data = problem.load()  # doctest: +SKIP
    """

    name: ClassVar[str] = "parts"
    target: int = 3
    n_fit: int = 4000
    n_test: int = 1000
    n_maps: int = 300
    layer: str = "conv4"
    heatmap_layer: str | None = PARTS_MAPS["heatmap_layer"]
    map_method: str = PARTS_MAPS["map_method"]
    smoothing: float = PARTS_MAPS["map_smoothing"]
    cnn: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = 0
    model: str = "cnn"
    pointing_tolerance: int = 0

    def __post_init__(self) -> None:
        if self.model not in ("cnn", "vit"):
            raise ValueError(f"model must be 'cnn' or 'vit', got {self.model!r}")
        if self.model == "vit":  # the CNN's map defaults become the ViT's
            if self.layer == "conv4":
                self.layer = VIT_LAYER
            default_layer = self.heatmap_layer == PARTS_MAPS["heatmap_layer"]
            if self.map_method == PARTS_MAPS["map_method"]:
                self.map_method = VIT_MAP_METHOD if default_layer else "gradcam"
            if self.smoothing == PARTS_MAPS["map_smoothing"]:
                self.smoothing = 0.0
            if default_layer:
                self.heatmap_layer = None
        check_map_method(self.map_method)  # a misspelt name fails before any fit
        self.smoothing = check_smoothing(self.smoothing)
        check_int(self.target, "target", minimum=0)
        check_int(self.pointing_tolerance, "pointing_tolerance", minimum=0)
        if not 0 <= self.target < 4:
            raise ValueError(f"target must be a class in 0..3, got {self.target}")
        for field in ("n_fit", "n_test", "n_maps"):
            check_int(getattr(self, field), field)
            if getattr(self, field) < 2:
                raise ValueError(f"{field} must be at least 2")
        self._model: torch.nn.Module | None = None
        self._data: ProblemData | None = None

    @property
    def pooling(self) -> str:
        """The pooling of the explained layer: "avg", or "cls" for the ViT."""
        return VIT_POOLING if self.model == "vit" else "avg"

    def fingerprint(self) -> dict[str, Any]:
        """The problem's settings and a hash of its activations and scores."""
        settings = dataclasses.asdict(self)
        if self.model == "cnn":  # the fingerprints from before the ViT
            del settings["model"]
        if self.smoothing == 0:  # ... and from before smoothing
            del settings["smoothing"]
        if self.pointing_tolerance == 0:  # ... and before the tolerance
            del settings["pointing_tolerance"]
        return {"problem": self.name, **settings, **tensor_fingerprint(self.load())}

    def load(self) -> ProblemData:
        """Train (or load) the network and collect the activations and scores.

        ``truth`` holds the held-out ``logits`` ``(M, 4)``, and for the first
        ``n_maps`` held-out images their ``images``, part ``masks`` and
        ``presence``.
        """
        if self._data is not None:
            return self._data
        trainer = train_or_load_vit if self.model == "vit" else train_or_load
        model, _ = trainer(show_progress=False, **self.cnn)
        size = int(self.cnn.get("size", 64))
        fit = make_parts_dataset(self.n_fit, seed=self.seed, size=size)
        test = make_parts_dataset(
            self.n_test, seed=self.seed + TEST_SEED_OFFSET, size=size
        )
        pool = {"pooling": self.pooling, "batch_size": 500}
        z_tr, y_tr = collect_activations(model, self.layer, fit.images, **pool)
        z_te, y_te = collect_activations(model, self.layer, test.images, **pool)
        m = min(self.n_maps, self.n_test)
        truth = {
            "logits": y_te,
            "images": test.images[:m],
            "masks": test.masks[:m],
            "presence": test.part_presence[:m],
        }
        t = self.target
        self._model = model
        self._data = ProblemData(z_tr, y_tr[:, t], z_te, y_te[:, t], truth)
        return self._data

    def score(self, srae: Any, data: ProblemData) -> dict[str, float]:
        """Agreement, part association, and whether each evidence part has
        its own x-feature (see :func:`own_part_features`).

        - ``class_agreement``: held-out images whose top-1 class is unchanged
          when the CNN's score of ``target`` is replaced by the XNN's;
        - ``part_purity``, ``part_iou``: :func:`part_association` of the
          x-feature maps (x-features whose maps touch a part);
        - ``pointing_<part>``: the best pointing rate on that evidence part
          among x-features with at least :data:`OWN_SHARE` of the positive
          score;
        - ``parts_own``: 1 if every evidence part has its own x-feature;
        - ``class_pointing``: pointing game of the class map on the union of
          the evidence parts.
        """
        self.load()
        assert self._model is not None
        if srae.config.pooling != self.pooling:
            raise ValueError(
                f"the SRAE's config has pooling={srae.config.pooling!r}; the "
                f"{self.model} problem needs pooling={self.pooling!r}"
            )
        logits = data.truth["logits"]
        with torch.no_grad():
            e = srae.encode(data.z_test)
            yhat = srae.predict(e)[:, 0]
            c = srae.contributions(e)[:, 0, :]
        replaced = logits.clone()
        replaced[:, self.target] = yhat
        agree = (replaced.argmax(1) == logits.argmax(1)).double().mean()
        rows = logits.argmax(1) == self.target
        mean_c = c[rows].mean(0) if bool(rows.any()) else c.mean(0)
        shares = positive_shares(mean_c[None])[0].nan_to_num(0.0)
        out: dict[str, float] = {"class_agreement": float(agree)}
        out.update(self._map_scores(srae, data, shares))
        return out

    def _map_scores(
        self, srae: Any, data: ProblemData, shares: Tensor
    ) -> dict[str, float]:
        """The scores of the x-feature and class maps on the mapped images."""
        x, masks = data.truth["images"], data.truth["masks"]
        sa = SRAEAttribution.from_sraes(
            self._model,
            self.layer,
            {self.target: srae},
            n_outputs=4,
            heatmap_layer=self.heatmap_layer,
        )
        kw = {"method": self.map_method, "smoothing": self.smoothing}
        maps = sa.attribute(x, target=self.target, **kw)
        with torch.no_grad():
            e = srae.encode(data.z_test[: x.shape[0]])
        out: dict[str, float] = {}
        assoc = part_association(maps, masks)
        active = assoc.iou.sum(dim=1) > 0
        if bool(active.any()):
            out["part_purity"] = float(assoc.purity[active].mean())
            out["part_iou"] = float(assoc.iou[active].max(dim=1).values.mean())
        tol = self.pointing_tolerance
        pointing = part_pointing_rates(maps, masks, e, tolerance=tol)
        parts = EVIDENCE_PARTS[self.target]
        for p in parts:
            eligible = shares >= OWN_SHARE
            rates = pointing[eligible, p].nan_to_num(0.0)
            best = float(rates.max()) if rates.numel() else 0.0
            out[f"pointing_{PART_NAMES[p]}"] = best
        if parts:
            own = own_part_features(pointing, shares, parts)
            out["parts_own"] = float(all(k is not None for k in own))
            cls = sa.attribute(x, target=self.target, output="class", **kw)
            union = masks[:, list(parts)].any(dim=1)
            score = pointing_game(cls, union, tolerance=tol).score
            out["class_pointing"] = float(score)
        return out


def part_pointing_rates(
    maps: Tensor, masks: Tensor, e: Tensor, *, tolerance: int = 0
) -> Tensor:
    """The pointing game of each x-feature's maps on each part.

    Args:
        maps (Tensor): x-feature maps ``(N, n_concepts, H, W)``.
        masks (Tensor): boolean part masks ``(N, n_parts, H, W)``.
        e (Tensor): the x-features of the same images ``(N, n_concepts)``.
        tolerance (int, optional): ``tolerance`` of
            :func:`~captum_srae.evaluation.metrics.pointing_game`. Default: 0

    Returns:
        *Tensor*: ``(n_concepts, n_parts)`` float64 rates, each over the
        images where the part is present and the x-feature active (NaN with
        fewer than 5 such images).
    """
    n_k, n_p = maps.shape[1], masks.shape[1]
    out = torch.full((n_k, n_p), math.nan, dtype=torch.float64)
    for k in range(n_k):
        on = e[:, k] > 0
        for p in range(n_p):
            rows = on & masks[:, p].flatten(1).any(dim=1)
            if int(rows.sum()) >= 5:
                score = pointing_game(
                    maps[rows, k], masks[rows, p], tolerance=tolerance
                ).score
                out[k, p] = float(score)
    return out
