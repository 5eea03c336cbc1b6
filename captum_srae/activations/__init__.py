"""Getting a layer's activations out of the user's model: layer lookup, hooks
that are always removed, the early exit after the explained layer, pooling,
batched collection in memory and the disk-backed :class:`ActivationStore`.

Imports :mod:`captum_srae.utils` only.
"""

from captum_srae.activations.collect import (
    activation_batches,
    collect_activations,
    iter_input_batches,
    layer_name,
    pool_activations,
    resolve_layer,
)
from captum_srae.activations.store import (
    ActivationStore,
    collect_activations_to_disk,
    write_activations_to_disk,
)

__all__ = [
    "ActivationStore",
    "activation_batches",
    "collect_activations",
    "collect_activations_to_disk",
    "iter_input_batches",
    "layer_name",
    "pool_activations",
    "resolve_layer",
    "write_activations_to_disk",
]
