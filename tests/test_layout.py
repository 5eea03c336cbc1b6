"""The package's layout rules, checked on its source: public ``__all__``
names exist, no private name crosses a module boundary, functions stay short.

The stage layering and the absence of import cycles are checked by
import-linter (``lint-imports``, contracts in ``pyproject.toml``, run by
``tox -e lint``).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import captum_srae

PACKAGE = Path(captum_srae.__file__).parent
MAX_FUNCTION_LINES = 80


def _modules() -> list[str]:
    names = ["captum_srae"]
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="captum_srae."):
        names.append(info.name)
    return sorted(names)


def _sources() -> dict[Path, ast.Module]:
    return {p: ast.parse(p.read_text(encoding="utf-8")) for p in PACKAGE.rglob("*.py")}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined_names(tree: ast.Module) -> set[str]:
    """Every name a module defines: functions, classes, assignments, attributes
    assigned on objects (``self._x = ...``) and imported aliases."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def test_every_name_in_every_all_exists() -> None:
    missing = []
    for name in _modules():
        module = importlib.import_module(name)
        for public in getattr(module, "__all__", ()):
            if not hasattr(module, public):
                missing.append(f"{name}.{public}")
    assert missing == []


def test_star_import_of_the_package() -> None:
    namespace: dict[str, object] = {}
    exec("from captum_srae import *", namespace)  # noqa: S102
    assert {"SRAEAttribution", "fit_srae", "write_report", "r2_score"} <= set(namespace)
    assert set(captum_srae.__all__) <= set(namespace)


def test_old_module_paths_are_the_moved_modules() -> None:
    for old, new in captum_srae.MOVED_MODULES.items():
        module = importlib.import_module(old)
        assert module is importlib.import_module(new)
        assert module.__spec__.name == new  # the real module keeps its own spec
    from captum_srae.metrics.faithfulness import rmse  # a submodule, old path

    metrics = importlib.import_module("captum_srae.evaluation.metrics")
    assert rmse is metrics.rmse
    # the old path of a submodule does not replace the package's function of
    # the same name with the submodule
    assert callable(metrics.faithfulness) and metrics.faithfulness.__name__ == (
        "faithfulness"
    )
    assert not isinstance(metrics.faithfulness, type(importlib))


def test_no_private_name_imported_across_modules() -> None:
    crossings = []
    for path, tree in _sources().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "captum_srae"
            ):
                crossings += [
                    f"{path.relative_to(PACKAGE)}:{node.lineno} {a.name}"
                    for a in node.names
                    if _is_private(a.name)
                ]
                if _is_private(node.module.rsplit(".", 1)[-1]):
                    crossings.append(f"{path.relative_to(PACKAGE)}: {node.module}")
    assert crossings == []


def test_no_private_attribute_of_another_module_is_used() -> None:
    """``x._name`` is only allowed where this module defines ``_name`` itself
    (its own classes' attributes); torch's and Captum's own private attributes
    (``module._forward_hooks``) are their business, not ours."""
    sources = _sources()
    ours: set[str] = set()
    for tree in sources.values():
        ours |= {n for n in _defined_names(tree) if _is_private(n)}
    crossings = []
    for path, tree in sources.items():
        own = _defined_names(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and _is_private(node.attr)
                and node.attr in ours
                and node.attr not in own
            ):
                crossings.append(
                    f"{path.relative_to(PACKAGE)}:{node.lineno} {node.attr}"
                )
    assert crossings == []


@pytest.mark.parametrize("limit", [MAX_FUNCTION_LINES])
def test_no_function_is_longer_than_the_limit(limit: int) -> None:
    long = []
    for path, tree in _sources().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {lines}")
    assert long == []


def test_every_stage_package_says_what_it_owns() -> None:
    for child in PACKAGE.iterdir():
        init = child / "__init__.py"
        if init.is_file():
            doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
            assert doc, f"{child.name}/__init__.py has no docstring"
