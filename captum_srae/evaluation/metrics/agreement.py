#!/usr/bin/env python3
r"""Class-level faithfulness: does the explanation predict the same class?

With one XNN per class (the paper's one-vs-all protocol) each XNN rebuilds one
class score; the multi-class prediction "from the concepts" is the argmax over
the classes after replacing each explained class's score by its XNN score.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

from torch import Tensor

from captum_srae.evaluation.metrics.checks import matrix, number
from captum_srae.utils.validation import check_int

__all__ = ["completeness", "concept_scores", "top1_agreement"]

XNNScores = Union[  # noqa: UP007
    Tensor, Mapping[int, Tensor], Sequence[Tensor], Callable[[int], Tensor]
]


def _column(value: Any, c: int, n: int) -> Tensor:
    t = matrix(value, f"xnn_scores[{c}]", allow_1d=True)
    if t.shape != (n, 1):
        raise ValueError(
            f"xnn_scores[{c}] must have shape ({n},) or ({n}, 1), got {tuple(t.shape)}"
        )
    return t[:, 0]


def concept_scores(logits: Tensor, xnn_scores: XNNScores) -> Tensor:
    r"""The model's scores with each explained class's score replaced by its
    XNN score, ``(N, C)``.

    Args:
        logits (Tensor): the model's scores, ``(N, C)``.
        xnn_scores (Tensor, Mapping, Sequence or Callable): the XNN scores:
            a tensor ``(N, C)`` (every class explained); a mapping
            ``class -> (N,)`` (only those classes replaced, the others keep
            the model's score); a sequence of ``C`` tensors ``(N,)`` (class
            ``c`` at position ``c``); or a callable ``c -> (N,)`` called for
            every class.

    Returns:
        *Tensor*: ``(N, C)``.
    """
    lg = matrix(logits, "logits")
    n, n_cls = lg.shape
    out = lg.clone()
    if isinstance(xnn_scores, Tensor):
        xs = matrix(xnn_scores, "xnn_scores", allow_1d=True)
        if xs.shape != lg.shape:
            raise ValueError(
                f"xnn_scores must have the shape of logits {tuple(lg.shape)}, got "
                f"{tuple(xs.shape)}"
            )
        return xs.to(lg.dtype)
    if isinstance(xnn_scores, Mapping):
        items = list(xnn_scores.items())
    elif isinstance(xnn_scores, Sequence) and not isinstance(xnn_scores, str):
        if len(xnn_scores) != n_cls:
            raise ValueError(
                f"xnn_scores as a sequence must hold one tensor per class "
                f"({n_cls}), got {len(xnn_scores)}"
            )
        items = list(enumerate(xnn_scores))
    elif callable(xnn_scores):
        items = [(c, xnn_scores(c)) for c in range(n_cls)]
    else:
        raise TypeError(
            "xnn_scores must be a Tensor, a mapping class -> Tensor, a sequence "
            f"of Tensors or a callable, got {type(xnn_scores).__name__}"
        )
    for c, value in items:
        if check_int(c, "xnn_scores key", minimum=0) >= n_cls:
            raise ValueError(
                f"xnn_scores keys must be class indices in [0, {n_cls}), got {c!r}"
            )
        out[:, c] = _column(value, c, n).to(out.dtype)
    return out


def top1_agreement(logits: Tensor, xnn_scores: XNNScores) -> Tensor:
    r"""Fraction of examples where the XNN scores pick the model's class.

    ``agree = 1/N Σ_i 1[argmax_c f_c(x_i) = argmax_c ŝ_ic]`` where ``ŝ`` is
    :func:`concept_scores`. With a single output (``C = 1``, a one-vs-rest
    head) the signs are compared: ``1[(f(x_i) > 0) = (ŝ_i > 0)]``. Higher is
    better (1: the explanation never changes the decision). Ties in the argmax
    go to the lowest class index.

    Args:
        logits (Tensor): the model's scores, ``(N, C)``.
        xnn_scores: see :func:`concept_scores`.

    Returns:
        *Tensor*: a scalar in ``[0, 1]``.

    Examples::

        >>> logits = torch.tensor([[2.0, 1.0], [0.0, 3.0]])
        >>> top1_agreement(logits, {0: torch.tensor([0.5, 0.0])})
        tensor(0.5000)
    """
    lg = matrix(logits, "logits")
    s = concept_scores(lg, xnn_scores)
    if lg.shape[1] == 1:
        same = (lg[:, 0] > 0) == (s[:, 0] > 0)
    else:
        same = lg.argmax(dim=1) == s.argmax(dim=1)
    return same.to(lg.dtype).mean()


def completeness(
    labels: Tensor,
    logits: Tensor,
    xnn_scores: XNNScores,
    *,
    chance: float | None = None,
) -> Tensor:
    r"""Completeness of the concepts after Yeh et al. (NeurIPS 2020).

    ``η = (acc(concepts) − a_r) / (acc(model) − a_r)``, where ``acc(model)``
    is the accuracy of ``argmax logits`` against ``labels``, ``acc(concepts)``
    the accuracy of ``argmax`` :func:`concept_scores` (the XNN's own
    predictor as the concept model ``g``; Yeh et al. instead train a fresh
    2-layer network on the concept scores, which this variant does not do),
    and ``a_r`` the accuracy of random guessing. Higher is better: 1 means the
    concepts keep all of the model's accuracy above chance, 0 means none;
    values above 1 are possible when the concepts happen to be more accurate
    than the model.

    Citation: C.-K. Yeh, B. Kim, S. Arik, C.-L. Li, T. Pfister, P. Ravikumar,
    "On Completeness-aware Concept-Based Explanations in Deep Neural
    Networks", NeurIPS 2020. For a regression of the score itself the
    analogous quantity is :func:`~captum_srae.evaluation.metrics.r2_score` (a random
    predictor has R² 0 and the model itself 1).

    Args:
        labels (Tensor): true classes, ``(N,)`` integer.
        logits (Tensor): the model's scores, ``(N, C)``, ``C >= 2``.
        xnn_scores: see :func:`concept_scores`.
        chance (float, optional): ``a_r`` in ``[0, 1)``. Default: None
            (``1 / C``, uniform guessing)

    Returns:
        *Tensor*: scalar ``η``.

    Raises:
        ValueError: if the model is not more accurate than chance (η is
            undefined).
    """
    lg = matrix(logits, "logits")
    if lg.shape[1] < 2:
        raise ValueError(f"logits must have at least 2 classes, got {lg.shape[1]}")
    if not isinstance(labels, Tensor) or labels.is_floating_point():
        raise TypeError("labels must be an integer torch.Tensor of shape (N,)")
    if labels.shape != (lg.shape[0],):
        raise ValueError(
            f"labels must have shape ({lg.shape[0]},), got {tuple(labels.shape)}"
        )
    a_r = (
        1.0 / lg.shape[1]
        if chance is None
        else number(chance, "chance", low=0, high=1, high_open=True)
    )
    s = concept_scores(lg, xnn_scores)
    lab = labels.long().to(lg.device)
    acc_model = (lg.argmax(dim=1) == lab).to(lg.dtype).mean()
    acc_concepts = (s.argmax(dim=1) == lab).to(lg.dtype).mean()
    if float(acc_model) <= a_r:
        raise ValueError(
            f"completeness is undefined: the model's accuracy ({float(acc_model):.3g}) "
            f"is not above chance ({a_r:.3g})"
        )
    return (acc_concepts - a_r) / (acc_model - a_r)
