"""Measuring explanations: :mod:`~captum_srae.evaluation.metrics` (the
project's metrics), :mod:`~captum_srae.evaluation.baselines` (PCA, NMF, the
ablation, TopK SAE, random directions with the SRAE's interface) and
:mod:`~captum_srae.evaluation.compare` (methods side by side).

Imports every lower stage (attribution, training, activations, core,
datasets, visualization, utils), never :mod:`captum_srae.apps`.
"""
