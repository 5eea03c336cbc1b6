"""Where :mod:`captum_srae` caches trained models, and how entries are keyed.

The cache folder is, in order of precedence: the ``cache_dir`` argument, the
environment variable ``CAPTUM_SRAE_CACHE``, ``$XDG_CACHE_HOME/captum-srae``,
and ``~/.cache/captum-srae``. An entry is named by a hash of the settings
that produced it, so that different settings never share an entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["CACHE_ENV", "cache_key", "resolve_cache_dir"]

CACHE_ENV = "CAPTUM_SRAE_CACHE"
"""Environment variable that overrides the default cache folder."""


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder to use (not created here).

    Args:
        cache_dir (str or PathLike, optional): Explicit folder; wins over the
            environment. Default: None

    Returns:
        *Path*: ``cache_dir``, else ``$CAPTUM_SRAE_CACHE``, else
        ``$XDG_CACHE_HOME/captum-srae``, else ``~/.cache/captum-srae``.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "captum-srae"


def cache_key(settings: Mapping[str, Any]) -> str:
    """A 16-hex-digit hash of JSON-serialisable ``settings`` (order-independent)."""
    text = json.dumps(dict(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
