"""Adapters for the peer tools a user compares with (the ``peers`` extra).

Nothing heavy is imported here: every peer (pytorch-grad-cam, overcomplete,
Quantus, CRAFT) is imported lazily through :func:`import_peer` inside the
function that needs it, so ``import captum_srae`` works without the extra.
Install the peers with ``pip install 'captum-srae[peers]'``.
"""

from captum_srae.evaluation.peers.requirements import PEER_VERSIONS, import_peer

__all__ = ["PEER_VERSIONS", "import_peer"]
