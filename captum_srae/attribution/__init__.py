"""Explaining inputs with a fitted SRAE: :class:`SRAEAttribution` (a Captum
layer attribution), its x-feature maps (the Grad-CAM closed form, Excitation
Backprop, any Captum method on the x-features) and explanations.

Imports :mod:`captum_srae.training`, :mod:`captum_srae.activations`,
:mod:`captum_srae.core` and :mod:`captum_srae.utils`.
"""

from captum_srae.attribution.explanation import NotFittedError, SRAEExplanation
from captum_srae.attribution.heatmaps import XFeatureModel
from captum_srae.attribution.srae_attribution import SRAEAttribution

__all__ = [
    "NotFittedError",
    "SRAEAttribution",
    "SRAEExplanation",
    "XFeatureModel",
]
