"""Explaining inputs with a fitted SRAE: :class:`SRAEAttribution` (a Captum
layer attribution), its x-feature maps (the Grad-CAM closed form, Excitation
Backprop, any Captum method on the x-features) and explanations.

Imports :mod:`captum_srae.training`, :mod:`captum_srae.activations`,
:mod:`captum_srae.core` and :mod:`captum_srae.utils`. Inside, the modules
form one order, lowest first, without cycles: ``explanation``, ``checks``
and ``text`` (arguments, Captum's target forms, token ids); ``fitted`` (the
fitted state, :class:`~captum_srae.attribution.fitted.FittedXNNs`); ``shared_forward``,
``heatmaps`` and ``excitation`` (the map methods); ``fitting``, ``maps`` and
``persistence`` (the work of ``fit``, ``attribute`` and ``save``/``load`` on
that state); ``srae_attribution`` (the Captum class, which only checks
arguments and holds the state).
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
