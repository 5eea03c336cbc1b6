"""Data sets that need no downloads, for demos and tests.

- :func:`make_shapes_dataset` (module ``captum_srae.datasets.shapes``):
  procedurally generated RGB images that may contain a disc and a horizontal
  bar, labelled by the parts they contain.
"""

from __future__ import annotations

from captum_srae.datasets.shapes import make_shapes_dataset

__all__ = ["make_shapes_dataset"]
