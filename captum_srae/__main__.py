#!/usr/bin/env python3
"""``python -m captum_srae``: the command line, see :mod:`captum_srae.apps.cli`."""

from __future__ import annotations

from captum_srae.apps.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
