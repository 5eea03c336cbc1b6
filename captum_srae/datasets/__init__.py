"""Data sets that need no downloads, for demos and tests, and the user's own.

- :func:`make_shapes_dataset` (module ``captum_srae.datasets.shapes``):
  procedurally generated RGB images that may contain a disc and a horizontal
  bar, labelled by the parts they contain.
- :func:`make_parts_dataset` and :class:`PartsDataset` (module
  ``captum_srae.datasets.parts``): procedural bird-like objects made of a
  head, body, wing and tail, classed by which parts they have, with a
  ground-truth mask per part.
- :func:`load_digits_dataset` (module ``captum_srae.datasets.digits``):
  scikit-learn's handwritten digits, upsampled to RGB.
- :func:`make_keyword_sentences` (module ``captum_srae.datasets.text``):
  padded sentences of token ids, positive iff they hold a key word, for
  text classifiers (with :class:`~captum_srae.datasets.text.KeywordTextNet`).
- :func:`image_folder_dataset` (module ``captum_srae.datasets.folders``):
  the user's own ``root/<class>/<image>`` folders through torchvision.
"""

from __future__ import annotations

from captum_srae.datasets.digits import (
    load_digits_dataset,
    load_digits_tensors,
    train_test_split_indices,
)
from captum_srae.datasets.folders import image_folder_dataset, image_transform
from captum_srae.datasets.parts import (
    CLASS_NAMES,
    CLASS_RULES,
    PART_NAMES,
    PartsData,
    PartsDataset,
    label_from_presence,
    make_parts_dataset,
)
from captum_srae.datasets.shapes import make_shapes_dataset
from captum_srae.datasets.text import TextData, make_keyword_sentences

__all__ = [
    "CLASS_NAMES",
    "CLASS_RULES",
    "PART_NAMES",
    "PartsData",
    "PartsDataset",
    "TextData",
    "image_folder_dataset",
    "image_transform",
    "label_from_presence",
    "load_digits_dataset",
    "load_digits_tensors",
    "make_keyword_sentences",
    "make_parts_dataset",
    "make_shapes_dataset",
    "train_test_split_indices",
]
