"""One pixel-exact reference picture of a composed explanation.

The picture is :func:`captum_srae.visualization.render.explanation_strip` of
image 0 of the hand-built explanation in ``conftest.py``: the image, then the
three x-feature maps blended over it in contribution order, framed warm or
cool. It is pure numpy, so it is identical on every platform.

To regenerate ``assets/explanation_strip.png`` after an intended change, run::

    SRAE_ACCEPT=1 pytest tests/visualization/test_vis_reference.py

and review the new picture before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from captum_srae.visualization import render

REFERENCE = Path(__file__).parent / "assets" / "explanation_strip.png"


def test_explanation_strip_matches_reference(explanation) -> None:
    ex, images = explanation
    strip = render.explanation_strip(images[0], ex.heatmaps[0], ex.contributions[0])
    assert strip.shape == (10, 4 * 11 - 1, 3)
    if os.environ.get("SRAE_ACCEPT") == "1":
        REFERENCE.parent.mkdir(exist_ok=True)
        Image.fromarray(strip).save(REFERENCE)
        pytest.skip(f"reference written to {REFERENCE}")
    assert REFERENCE.exists(), "missing reference; run with SRAE_ACCEPT=1"
    with Image.open(REFERENCE) as ref:
        expected = np.asarray(ref.convert("RGB"))
    np.testing.assert_array_equal(strip, expected)
