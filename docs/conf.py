"""Sphinx configuration of the captum-srae documentation.

The package must be installed (``tox -e docs`` does it); the build needs no
network access.
"""

import captum_srae

project = "captum-srae"
author = "the captum-srae authors"
copyright = "2026, the captum-srae authors"
release = captum_srae.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

# Docstrings follow Captum's Google style (Args:/Returns:/Examples::).
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# Attributes: sections as :ivar: fields, so that NamedTuple fields documented
# by autodoc are not described twice.
napoleon_use_ivar = True

autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options = {"show-inheritance": True}

nitpicky = False
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []

html_theme = "furo"
html_title = f"captum-srae {release}"
