#!/usr/bin/env python3
r"""Text explanations: one row per x-feature through Captum's
``visualize_text``, and a gallery of text snippets per x-feature.

For a text classifier explained at a token layer ``(N, T, D)`` (token ids
``(N, T)`` in, see :class:`~captum_srae.attribution.SRAEAttribution`):

- :func:`text_concept_records` / :func:`visualize_text_concepts`: for one
  sentence, a Captum ``VisualizationDataRecord`` per x-feature (word
  attributions = the x-feature's map over the tokens, scaled to ``[-1, 1]``;
  attribution score = its contribution ``e_k·v_k``), highest contribution
  first, rendered by :func:`captum.attr.visualization.visualize_text`;
- :func:`concept_snippets` / :func:`format_snippets`: for each x-feature,
  the ``k`` sentences of a corpus where it is largest, each cut to a window
  of tokens around its map's maximum.

``mask`` (``(N, T)``, nonzero for real tokens) says which tokens are shown;
the model gets its own attention mask through ``additional_forward_args``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import torch
from captum.attr import visualization as viz
from torch import Tensor

from captum_srae.utils.validation import check_int
from captum_srae.visualization import render

__all__ = [
    "concept_snippets",
    "format_snippets",
    "text_concept_records",
    "visualize_text_concepts",
]


def _batch(ids: Tensor, mask: Tensor | None, tokens: Sequence[Any]) -> Tensor:
    """The mask ``(N, T)`` (all ones by default), checked against ids and
    per-example token strings."""
    n, t = ids.shape
    if mask is None:
        mask = torch.ones(n, t, dtype=torch.bool)
    if mask.numel() != n * t:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} must be {(n, t)} like the ids"
        )
    if len(tokens) != n or any(len(row) != t for row in tokens):
        raise ValueError(
            f"tokens must hold {n} lists of {t} strings (one per token id, "
            f"padding included) for ids of shape {(n, t)}"
        )
    return mask.reshape(n, t).cpu() != 0


def _extra(additional_forward_args: Any) -> tuple[Any, ...]:
    if additional_forward_args is None:
        return ()
    if isinstance(additional_forward_args, tuple):
        return additional_forward_args
    return (additional_forward_args,)


def text_concept_records(
    explainer: Any,
    ids: Tensor,
    tokens: Sequence[str],
    target: int | None = None,
    *,
    additional_forward_args: Any = None,
    mask: Tensor | None = None,
    true_class: Any = None,
    method: Any = "gradcam",
    attribution_kwargs: dict[str, Any] | None = None,
) -> list[viz.VisualizationDataRecord]:
    r"""One Captum ``VisualizationDataRecord`` per x-feature of one sentence.

    Args:
        explainer (SRAEAttribution): fitted at a token layer of a text model.
        ids (Tensor): the token ids of one sentence, ``(T,)`` or ``(1, T)``.
        tokens (Sequence[str]): the ``T`` token strings.
        target (int, optional): the explained class. Default: None (the only
            fitted class)
        additional_forward_args (Any, optional): extra model arguments (the
            attention mask ``(1, T)``). Default: None
        mask (Tensor, optional): ``(T,)`` or ``(1, T)``, nonzero for the
            tokens shown. Default: None (all)
        true_class (Any, optional): the true label shown. Default: ``target``
        method (str or type, optional): the map method of
            :meth:`~captum_srae.SRAEAttribution.attribute` (with the
            explainer's ``heatmap_layer``), e.g. ``LayerIntegratedGradients``
            at the embedding of a model with attention. Default: "gradcam"
        attribution_kwargs (dict, optional): its arguments. Default: None

    Returns:
        *list[VisualizationDataRecord]*: by decreasing contribution; word
        attributions are the maps over the shown tokens divided by their
        largest absolute value (signed, no ReLU), ``attr_class`` is
        ``"x-feature k"`` and ``attr_score`` its contribution ``e_k·v_k``.

    Raises:
        ValueError: if ``tokens`` or ``mask`` do not match ``ids``.

    Examples::

        >>> recs = text_concept_records(sa, ids[0], vocab_tokens, target=1)
        >>> [r.attr_class for r in recs]
        ['x-feature 2', 'x-feature 0', 'x-feature 1']
    """
    ids = ids.reshape(1, -1)
    keep = _batch(ids, mask, [list(tokens)])[0]
    extra = _extra(additional_forward_args)
    ex = explainer.explain(
        ids,
        target,
        extra or None,
        interpolate="tokens",
        relu_attributions=False,
        smoothing=0.0,  # token maps are not a grid to blur
        method=method,
        attribution_kwargs=attribution_kwargs,
    )
    with torch.no_grad():
        probs = torch.softmax(explainer.forward_func(ids, *extra).float(), dim=-1)
    pred = int(probs[0].argmax())
    words = [tok for tok, k in zip(tokens, keep.tolist(), strict=True) if k]
    label = int(ex.target[0]) if true_class is None else true_class
    records = []
    for k in render.contribution_order(ex.contributions[0]):
        row = ex.heatmaps[0, int(k)].cpu()[keep]
        records.append(
            viz.VisualizationDataRecord(
                torch.as_tensor(render.unit_scale(row)),
                float(probs[0, pred]),
                pred,
                label,
                f"x-feature {int(k)}",  # type: ignore[arg-type]
                float(ex.contributions[0, int(k)]),
                words,
                None,  # type: ignore[arg-type]
            )
        )
    return records


def visualize_text_concepts(
    explainer: Any,
    ids: Tensor,
    tokens: Sequence[str],
    target: int | None = None,
    *,
    legend: bool = True,
    **kwargs: Any,
) -> Any:
    r"""Show one row per x-feature of one sentence with Captum's
    :func:`~captum.attr.visualization.visualize_text`.

    Args:
        explainer, ids, tokens, target: see :func:`text_concept_records`.
        legend (bool, optional): Captum's colour legend. Default: True
        **kwargs: ``additional_forward_args``, ``mask``, ``true_class``,
            ``method`` and ``attribution_kwargs`` of
            :func:`text_concept_records`.

    Returns:
        *IPython.display.HTML*: Captum's HTML object (also displayed, as
        Captum does, in a notebook); its ``.data`` is the HTML text.

    Raises:
        ValueError: without IPython (Captum's ``visualize_text`` needs it).

    Examples::

        >>> page = visualize_text_concepts(sa, ids[0], tokens, target=1)
        >>> "x-feature" in page.data
        True
    """
    try:
        import IPython  # noqa: F401  (Captum's visualize_text needs it)
    except ImportError as exc:
        raise ValueError(
            "visualize_text_concepts needs IPython (pip install ipython); "
            "text_concept_records and format_snippets work without it"
        ) from exc
    records = text_concept_records(explainer, ids, tokens, target, **kwargs)
    return viz.visualize_text(records, legend=legend)


def concept_snippets(
    explainer: Any,
    ids: Tensor,
    tokens: Sequence[Sequence[str]],
    target: int | None = None,
    *,
    k: int = 5,
    window: int = 2,
    additional_forward_args: Any = None,
    mask: Tensor | None = None,
    method: Any = "gradcam",
    attribution_kwargs: dict[str, Any] | None = None,
) -> list[list[str]]:
    r"""For each x-feature, the ``k`` snippets of a corpus where it is largest.

    The sentences are ranked by the x-feature's value ``e_k``, highest first;
    each is cut to the ``window`` shown tokens on either side of the token
    where the x-feature's map (ReLU'd Grad-CAM over the tokens) is largest.

    Args:
        explainer (SRAEAttribution): fitted at a token layer of a text model.
        ids (Tensor): token ids of the corpus, ``(N, T)``.
        tokens (Sequence[Sequence[str]]): ``N`` lists of ``T`` token strings.
        target (int, optional): the explained class. Default: None
        k (int, optional): snippets per x-feature. Default: 5
        window (int, optional): tokens on each side. Default: 2
        additional_forward_args (Any, optional): extra model arguments (the
            attention mask ``(N, T)``). Default: None
        mask (Tensor, optional): ``(N, T)``, nonzero for the real tokens;
            padding is never the centre nor part of a snippet. Default: None
        method (str or type, optional): the map method that places the
            window (see :func:`text_concept_records`). Default: "gradcam"
        attribution_kwargs (dict, optional): its arguments. Default: None

    Returns:
        *list[list[str]]*: per x-feature (in order), up to ``k`` snippets,
        tokens joined by spaces.

    Raises:
        ValueError: if ``tokens`` or ``mask`` do not match ``ids``, or ``k``
            or ``window`` is not a valid int.

    Examples::

        >>> snippets = concept_snippets(sa, ids, tokens, target=1, k=3)
        >>> print(format_snippets(snippets))
    """
    k, window = check_int(k, "k"), check_int(window, "window", minimum=0)
    keep = _batch(ids, mask, tokens)
    extra = _extra(additional_forward_args) or None
    e = explainer.concepts(ids, target, extra).cpu()
    maps = explainer.attribute(
        ids,
        target,
        extra,
        interpolate="tokens",
        smoothing=0.0,  # token maps are not a grid to blur
        method=method,
        attribution_kwargs=attribution_kwargs,
    ).cpu()
    maps = maps.masked_fill(~keep.unsqueeze(1), float("-inf"))
    out: list[list[str]] = []
    for c in range(e.shape[1]):
        rows = torch.argsort(-e[:, c], stable=True)[:k].tolist()
        out.append([_snippet(maps[i, c], keep[i], tokens[i], window) for i in rows])
    return out


def _snippet(row: Tensor, keep: Tensor, tokens: Sequence[str], window: int) -> str:
    """The shown tokens within ``window`` of the map's maximum."""
    shown = keep.nonzero().flatten().tolist()
    centre = shown.index(int(row.argmax()))
    lo, hi = max(0, centre - window), centre + window + 1
    return " ".join(str(tokens[t]) for t in shown[lo:hi])


def format_snippets(
    snippets: Sequence[Sequence[str]],
    contributions: Any = None,
    *,
    as_html: bool = False,
) -> str:
    r"""Render :func:`concept_snippets` as plain text or an HTML table.

    Args:
        snippets (Sequence[Sequence[str]]): the snippets per x-feature.
        contributions (Tensor or ndarray, optional): ``(n,)``, e.g. the mean
            contribution of each x-feature over the corpus, shown in the
            headings. Default: None
        as_html (bool, optional): an HTML table (text escaped) instead of
            plain text. Default: False

    Returns:
        *str*: one block (or table row) per x-feature.

    Examples::

        >>> print(format_snippets([["a good day"], ["not bad"]]))
        x-feature 0:
          1. a good day
        x-feature 1:
          1. not bad
    """
    c = None if contributions is None else render.to_numpy(contributions).ravel()
    heads = [
        f"x-feature {i}" + ("" if c is None else f" (contribution {c[i]:+.3g})")
        for i in range(len(snippets))
    ]
    if not as_html:
        lines = []
        for head, rows in zip(heads, snippets, strict=True):
            lines.append(f"{head}:")
            lines.extend(f"  {j}. {s}" for j, s in enumerate(rows, 1))
        return "\n".join(lines)
    cells = [
        f"<tr><th>{html.escape(head)}</th><td>"
        + "<br>".join(html.escape(s) for s in rows)
        + "</td></tr>"
        for head, rows in zip(heads, snippets, strict=True)
    ]
    return "<table>" + "".join(cells) + "</table>"
