"""Old import paths of modules that moved into the stage packages.

Version 0.1 had flat modules (``captum_srae.metrics``, ``captum_srae.config``,
``captum_srae.store``, ...); they now live in stage packages
(``captum_srae.evaluation.metrics``, ``captum_srae.core.config``, ...). So
that code written against the old paths keeps working, :func:`install`
registers an import hook that answers an old name (and any submodule of it)
with the module at its new path, the *same* module object: classes compare
equal and there is one copy of every module-level state.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Mapping
from types import ModuleType

__all__ = ["MovedModuleFinder", "install"]


class _KeepsItsNames(ModuleType):
    """A package whose names an old import path cannot rebind.

    After importing ``old.child`` the import system sets ``old.child =
    module`` on the (shared) package object; where the package already binds
    ``child`` to something else (``metrics.faithfulness``, a function), that
    would replace it with the submodule of the same name.
    """

    def __setattr__(self, name: str, value: object) -> None:
        current = self.__dict__.get(name)
        if isinstance(value, ModuleType) and not (
            current is None or isinstance(current, ModuleType)
        ):
            return
        super().__setattr__(name, value)


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A meta path finder mapping old module names to their new homes.

    Args:
        moves (Mapping[str, str]): old dotted module name -> new dotted name.
            A submodule of an old name maps to the same submodule of the new
            name (``old.sub`` -> ``new.sub``) unless it has a move of its own
            (the longest matching old name wins).
    """

    def __init__(self, moves: Mapping[str, str]) -> None:
        self.moves = dict(moves)
        self._specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def new_name(self, fullname: str) -> str | None:
        """The new name of ``fullname``, or None if it did not move."""
        for old, new in sorted(self.moves.items(), key=lambda m: -len(m[0])):
            if fullname == old or fullname.startswith(old + "."):
                return new + fullname[len(old) :]
        return None

    def find_spec(
        self,
        fullname: str,
        path: object = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        new = self.new_name(fullname)
        if new is None or importlib.util.find_spec(new) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = self.new_name(spec.name)
        assert new is not None  # find_spec answered only for moved names
        module = importlib.import_module(new)
        parent = sys.modules.get(new.rpartition(".")[0])
        if parent is not None and type(parent) is ModuleType:
            parent.__class__ = _KeepsItsNames  # see its docstring
        # the import system overwrites __spec__ of what we return; keep the
        # module's own so that it still names its real location
        self._specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._specs.pop(module.__spec__.name, module.__spec__)


def install(moves: Mapping[str, str]) -> MovedModuleFinder:
    """Answer the old module names of ``moves`` with the moved modules.

    Installs one :class:`MovedModuleFinder` in front of ``sys.meta_path``
    (once per set of moves) and returns it.
    """
    for finder in sys.meta_path:
        if isinstance(finder, MovedModuleFinder) and finder.moves == dict(moves):
            return finder
    finder = MovedModuleFinder(moves)
    sys.meta_path.insert(0, finder)
    return finder
