"""Getting a layer's activations out of the user's model: layer lookup, hooks
that are always removed, the early exit after the explained layer, pooling,
batched collection in memory and the disk-backed :class:`ActivationStore`.

Modules, lowest first: ``hooks`` (hooks of concurrent explainers kept
apart), ``layers`` (finding the layer), ``inputs`` (the accepted data
forms), ``early_exit`` (forward passes that stop after the needed layers),
``collect`` (pooling and collection in memory), ``store_files`` (the shard
and manifest files, the one shard writer), ``store_reader``
(:class:`ActivationStore`) and ``store`` (collection and writing to disk).

Imports :mod:`captum_srae.utils` and :mod:`captum_srae.core.config` (the
pooling names) only.
"""

from captum_srae.activations.collect import (
    activation_batches,
    collect_activations,
    pool_activations,
)
from captum_srae.activations.inputs import fold_row_arguments, iter_input_batches
from captum_srae.activations.layers import layer_name, resolve_layer
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
    "fold_row_arguments",
    "iter_input_batches",
    "layer_name",
    "pool_activations",
    "resolve_layer",
    "write_activations_to_disk",
]
