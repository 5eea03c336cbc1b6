#!/usr/bin/env python3
r"""Figures and reports of SRAE explanations.

- :mod:`~captum_srae.visualization.render`: pure numpy renderers (normalising,
  sorting, labels, colours, blending);
- Display objects in the scikit-learn style, each with ``from_explanation`` /
  ``from_explainer``, ``plot(ax=None) -> self`` (``figure_``, ``ax_``) and
  ``save(path)``: :class:`ExplanationDisplay`, :class:`ExplanationGridDisplay`,
  :class:`ConceptGalleryDisplay`, :class:`TrainingCurvesDisplay`,
  :class:`FaithfulnessDisplay`;
- :func:`write_report`: a self-contained HTML folder;
- text classifiers (:mod:`~captum_srae.visualization.text`):
  :func:`visualize_text_concepts` (one row per x-feature through Captum's
  ``visualize_text``) and :func:`concept_snippets` / :func:`format_snippets`
  (a gallery of text snippets per x-feature).

Heatmap panels are drawn by :func:`captum.attr.visualization.visualize_image_attr`
with ``use_pyplot=False``; nothing here calls ``plt.show()``.
"""

from captum_srae.visualization import render
from captum_srae.visualization.curves import FaithfulnessDisplay, TrainingCurvesDisplay
from captum_srae.visualization.display import (
    ConceptGalleryDisplay,
    ExplanationDisplay,
    ExplanationGridDisplay,
)
from captum_srae.visualization.report import write_report
from captum_srae.visualization.text import (
    concept_snippets,
    format_snippets,
    text_concept_records,
    visualize_text_concepts,
)

__all__ = [
    "ConceptGalleryDisplay",
    "ExplanationDisplay",
    "ExplanationGridDisplay",
    "FaithfulnessDisplay",
    "TrainingCurvesDisplay",
    "concept_snippets",
    "format_snippets",
    "render",
    "text_concept_records",
    "visualize_text_concepts",
    "write_report",
]
