#!/usr/bin/env python3
"""Packaging of captum-srae (setuptools, in the manner of Captum 0.8.0)."""

import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read(*parts: str) -> str:
    with open(os.path.join(HERE, *parts), encoding="utf-8") as f:
        return f.read()


def find_version() -> str:
    """Read ``__version__`` from the package without importing it."""
    match = re.search(
        r"^__version__\s*=\s*['\"]([^'\"]+)['\"]",
        read("captum_srae", "utils", "version.py"),
        re.MULTILINE,
    )
    if match is None:
        raise RuntimeError("__version__ not found in captum_srae/utils/version.py")
    return match.group(1)


REQUIRED = [
    "torch>=2.3",
    "torchvision",
    "captum>=0.8,<0.10",
    "numpy",
    "matplotlib",
    "tqdm",
    "safetensors",
    "scikit-learn",
]

TEST_REQUIRES = ["pytest", "pytest-benchmark", "hypothesis", "pillow", "ipython"]
DOCS_REQUIRES = ["sphinx", "furo"]
BENCH_REQUIRES = ["pytest-benchmark"]
# Executing the tutorial notebooks (tutorials/*.ipynb) as tests.
NOTEBOOKS_REQUIRES = ["pytest", "nbmake", "ipykernel", "pillow"]
# Peers used only for side-by-side comparisons; imported lazily and checked
# against the same ranges (captum_srae.evaluation.peers.PEER_VERSIONS).
PEERS_REQUIRES = [
    "grad-cam>=1.5,<2",
    "overcomplete>=0.3,<0.4",
    "quantus>=0.6,<0.7",
    "craft-xai==0.0.3",
]
DEV_REQUIRES = TEST_REQUIRES + DOCS_REQUIRES + ["ruff", "import-linter", "tox"]

setup(
    name="captum-srae",
    version=find_version(),
    description=(
        "XNN / Sparse Reconstruction Autoencoder explanations "
        "(Qi, Khorram and Li) as a Captum plugin"
    ),
    long_description=read("README.md"),
    long_description_content_type="text/markdown",
    author="the captum-srae authors",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    packages=find_packages(exclude=("tests", "tests.*")),
    package_data={"captum_srae": ["py.typed"]},
    include_package_data=True,
    zip_safe=False,
    install_requires=REQUIRED,
    extras_require={
        "test": TEST_REQUIRES,
        "docs": DOCS_REQUIRES,
        "bench": BENCH_REQUIRES,
        "notebooks": NOTEBOOKS_REQUIRES,
        "peers": PEERS_REQUIRES,
        "dev": DEV_REQUIRES,
    },
    entry_points={"console_scripts": ["captum-srae = captum_srae.apps.cli:main"]},
    keywords=["interpretability", "explainability", "captum", "pytorch", "xnn"],
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Science/Research",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
