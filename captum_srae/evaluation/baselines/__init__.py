#!/usr/bin/env python3
r"""Baselines and controls for the SRAE, with the SRAE's interface.

Each baseline is fitted on the same pooled activations ``z`` ``(N, D)`` and
scores ``y`` ``(N,)`` or ``(N, K)``, with the same number of concepts, and is
an ``nn.Module`` with the SRAE's interface (:class:`ConceptModel`:
differentiable ``encode`` from raw activations to x-features, ``decode``,
``predict`` in score units, ``weight``, ``bias``, ``contributions``,
``n_concepts``). So ``SRAEAttribution.from_sraes(model, layer, {t: baseline})``
draws its heatmaps, contributions and explanations with the same machinery.

- ``"pca"``: top principal components + least-squares head;
- ``"nmf"``: NMF components, NNLS x-features + least-squares head;
- ``"autoencoder"``: the SRAE network and training with MSE reconstruction,
  no pull-away term and no re-tuning (the ablation; an ``SRAE``);
- ``"topk_sae"``: TopK sparse autoencoder (Gao et al. 2024) + least-squares
  head;
- ``"random"``: random orthonormal directions + least-squares head.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from captum_srae.evaluation.baselines.autoencoder import (
    ABLATED_FIELDS,
    autoencoder_config,
    fit_autoencoder,
)
from captum_srae.evaluation.baselines.base import (
    ConceptBaseline,
    ConceptModel,
    fit_linear_head,
)
from captum_srae.evaluation.baselines.linear import (
    ProjectionBaseline,
    fit_pca,
    fit_random_basis,
)
from captum_srae.evaluation.baselines.nmf import (
    NMFBaseline,
    NonnegativeLeastSquares,
    fit_nmf,
)
from captum_srae.evaluation.baselines.topk import TopK, TopKSAE, fit_topk_sae

__all__ = [
    "ABLATED_FIELDS",
    "BASELINES",
    "ConceptBaseline",
    "ConceptModel",
    "NMFBaseline",
    "NonnegativeLeastSquares",
    "ProjectionBaseline",
    "TopK",
    "TopKSAE",
    "autoencoder_config",
    "fit_autoencoder",
    "fit_baseline",
    "fit_linear_head",
    "fit_nmf",
    "fit_pca",
    "fit_random_basis",
    "fit_topk_sae",
]


def _fit_autoencoder_model(*args: Any, **kwargs: Any) -> nn.Module:
    return fit_autoencoder(*args, **kwargs)[0]


_FITTERS: dict[str, tuple[Callable[..., nn.Module], Callable[..., Any]]] = {
    # name: (fitter, function whose signature lists the options)
    "pca": (fit_pca, fit_pca),
    "nmf": (fit_nmf, fit_nmf),
    "autoencoder": (_fit_autoencoder_model, fit_autoencoder),
    "topk_sae": (fit_topk_sae, fit_topk_sae),
    "random": (fit_random_basis, fit_random_basis),
}

#: The names accepted by :func:`fit_baseline`.
BASELINES: tuple[str, ...] = tuple(_FITTERS)


def _options(name: str) -> list[str]:
    params = inspect.signature(_FITTERS[name][1]).parameters.values()
    return [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name != "seed"]


def fit_baseline(
    name: str, z: Any, y: Any, n_concepts: int = 5, *, seed: int = 0, **options: Any
) -> nn.Module:
    r"""Fit the baseline ``name`` on activations ``z`` and scores ``y``.

    Args:
        name (str): one of :data:`BASELINES`: ``"pca"`` (:func:`fit_pca`),
            ``"nmf"`` (:func:`fit_nmf`), ``"autoencoder"``
            (:func:`fit_autoencoder`, returns the :class:`~captum_srae.SRAE`),
            ``"topk_sae"`` (:func:`fit_topk_sae`) or ``"random"``
            (:func:`fit_random_basis`).
        z (Tensor or ndarray): pooled activations ``(N, D)``.
        y (Tensor or ndarray): scores ``(N,)`` or ``(N, K)``.
        n_concepts (int, optional): number of concepts. Default: 5
        seed (int, optional): seed of every random choice. Default: 0
        **options: options of that baseline's fitter (e.g. ``pooling`` for
            all, ``active`` and ``epochs`` for ``"topk_sae"``, ``config`` for
            ``"autoencoder"``).

    Returns:
        *nn.Module*: the fitted baseline, a :class:`ConceptModel`, in eval
        mode.

    Raises:
        ValueError: if ``name`` is unknown, or on bad data or options.
        TypeError: if an option does not exist for ``name``.

    Examples::

        >>> model = fit_baseline("pca", z, y, n_concepts=5)
        >>> sa = SRAEAttribution.from_sraes(net, "layer4", {3: model})
        >>> maps = sa.attribute(x, target=3)
    """
    if not isinstance(name, str) or name not in _FITTERS:
        raise ValueError(f"name must be one of {BASELINES}, got {name!r}")
    valid = _options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(
            f"options {unknown} are not options of baseline {name!r}; valid "
            f"options: {valid}"
        )
    return _FITTERS[name][0](z, y, n_concepts, seed=seed, **options)
