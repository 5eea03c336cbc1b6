"""The tutorial notebooks are stored clean and listed in both indexes.

Notebooks are committed without outputs (small, readable diffs; CI executes
them with ``tox -e notebooks``). Read with the standard library only, so the
test suite does not need nbformat.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
SMALL_SWITCH = "CAPTUM_SRAE_TUTORIAL_SMALL"


def dirty_cells(notebook: dict[str, Any]) -> list[int]:
    """Indices of the code cells that hold outputs or an execution count."""
    return [
        i
        for i, cell in enumerate(notebook.get("cells", []))
        if cell.get("cell_type") == "code"
        and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def test_dirty_cells_finds_outputs_and_counts() -> None:
    code = {"cell_type": "code", "source": "1", "metadata": {}}
    nb = {
        "cells": [
            {**code, "outputs": [], "execution_count": None},  # clean
            {**code, "outputs": [{"output_type": "stream"}], "execution_count": None},
            {"cell_type": "markdown", "source": "text"},  # never dirty
            {**code, "outputs": [], "execution_count": 3},
        ]
    }
    assert dirty_cells(nb) == [1, 3]
    assert dirty_cells({"cells": [nb["cells"][0], nb["cells"][2]]}) == []


def test_tutorials_exist() -> None:
    names = [p.name for p in NOTEBOOKS]
    stems = (
        "01_getting_started",
        "02_side_by_side",
        "03_benchmarking",
        "04_your_own_model",
    )
    for stem in stems:
        assert f"{stem}.ipynb" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = _load(path)
    assert nb["nbformat"] == 4
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, f"{path.name} has no code cell"
    assert dirty_cells(nb) == [], (
        f"{path.name}: clear the outputs and execution counts of these cells"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_honours_the_small_switch(path: Path) -> None:
    sources = [_source(c) for c in _load(path)["cells"] if c["cell_type"] == "code"]
    assert any(SMALL_SWITCH in s for s in sources), path.name


@pytest.mark.parametrize(
    "index", [TUTORIALS / "README.md", ROOT / "docs" / "tutorials.rst"]
)
def test_indexes_list_every_notebook(index: Path) -> None:
    text = index.read_text(encoding="utf-8")
    missing = [p.name for p in NOTEBOOKS if p.name not in text]
    assert missing == []
