#!/usr/bin/env python3
r"""Lazy, version-checked imports of the peer tools (the ``peers`` extra).

:func:`import_peer` is the one way the adapters of
:mod:`captum_srae.evaluation.peers` import a peer: it checks that the
distribution is installed and that its version is one the adapters were
written and tested against (:data:`PEER_VERSIONS`), then imports the module.
Either failure is a one-line ``ValueError`` that says what to install.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from types import ModuleType

__all__ = ["INSTALL_HINT", "PEER_VERSIONS", "import_peer"]

#: Distribution name → the versions the adapters support (a PEP 440
#: specifier, the same ranges as the ``peers`` extra of ``setup.py``).
PEER_VERSIONS: dict[str, str] = {
    "grad-cam": ">=1.5,<2",
    "overcomplete": ">=0.3,<0.4",
    "quantus": ">=0.6,<0.7",
    "craft-xai": "==0.0.3",
}

#: What to run to install every supported peer.
INSTALL_HINT = "pip install 'captum-srae[peers]'"


def _installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``; None when it is missing."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def import_peer(distribution: str, module: str) -> ModuleType:
    r"""Import ``module`` of the peer ``distribution`` after checking its version.

    Args:
        distribution (str): the peer's distribution (PyPI) name, a key of
            :data:`PEER_VERSIONS`, e.g. ``"grad-cam"``.
        module (str): the module to import, e.g. ``"pytorch_grad_cam"`` or
            ``"pytorch_grad_cam.utils.model_targets"``.

    Returns:
        *ModuleType*: the imported module.

    Raises:
        ValueError: if ``distribution`` is not a known peer, is not installed
            (or its module cannot be imported), or its installed version is
            outside the supported range; the message names the peer and what
            to install.

    Examples::

        >>> from captum_srae.evaluation.peers import import_peer
        >>> pgc = import_peer("grad-cam", "pytorch_grad_cam")
        >>> cam = pgc.GradCAM(model=cnn, target_layers=[cnn.conv4])
    """
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    if distribution not in PEER_VERSIONS:
        known = ", ".join(PEER_VERSIONS)
        raise ValueError(
            f"distribution must be a supported peer ({known}), got {distribution!r}"
        )
    supported = PEER_VERSIONS[distribution]
    wanted = f"{distribution}{supported}"
    installed = _installed_version(distribution)
    if installed is None:
        raise ValueError(
            f"peer {distribution!r} is not installed; install it with "
            f"{INSTALL_HINT} (or pip install '{wanted}')"
        )
    try:
        ok = Version(installed) in SpecifierSet(supported)
    except InvalidVersion:
        ok = False
    if not ok:
        raise ValueError(
            f"peer {distribution!r} {installed} is installed, but captum-srae "
            f"supports {distribution}{supported}; install a supported version "
            f"with {INSTALL_HINT} (or pip install '{wanted}')"
        )
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(
            f"peer {distribution!r} {installed}: importing {module!r} failed "
            f"({reason}); reinstall it with {INSTALL_HINT}"
        ) from exc
