#!/usr/bin/env python3
"""Forward passes that stop once the needed layers have run (early exit).

Explaining a layer needs the model only up to that layer: the x-features are
computed from its output, and nothing after it changes them. A forward hook
on the last needed layer raises :class:`_StopForward`, which
:func:`run_hooked` catches, so the layers after it never run.

A module can run several times in one forward pass (a ReLU module shared by
two places, a block applied twice); the output that counts is its *last* one.
How many times each module runs is therefore learned on the first, complete
pass of each module (kept in a weak dictionary, so it goes with the module)
and the early exit waits for that many calls. A model whose number of calls
changes from input to input should be explained with ``early_exit=False``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from torch import nn

from captum_srae.activations.hooks import hook_scope

__all__ = ["run_hooked", "run_model"]

#: calls of each module in one complete forward pass, as last seen
_CALLS: weakref.WeakKeyDictionary[nn.Module, int] = weakref.WeakKeyDictionary()


class _StopForward(Exception):
    """Internal: raised by a forward hook when every needed output is recorded."""


def run_model(forward_func: Callable[..., Any], inputs: tuple, extra: tuple) -> Any:
    """Call ``forward_func(*inputs, *extra)``.

    An exception of the model (CUDA out of memory, a device mismatch, a bug
    in its forward, inputs of the wrong shape) propagates unchanged: its type,
    message and traceback are the model's.

    Args:
        forward_func (Callable): the model.
        inputs (tuple): its inputs.
        extra (tuple): arguments passed after the inputs.

    Returns:
        *Any*: the model output.
    """
    return forward_func(*inputs, *extra)


def run_hooked(
    forward_func: Callable[..., Any],
    inputs: tuple,
    extra: tuple,
    modules: dict[str, nn.Module],
    on_output: Callable[[str, Any], None],
    early_exit: bool,
) -> tuple[Any, bool]:
    """Run ``forward_func`` with a forward hook on each of ``modules``.

    ``on_output(key, output)`` is called for every call of a module (in the
    thread that owns the pass, see :mod:`captum_srae.activations.hooks`). The hooks are
    removed before returning, also when the model or a hook raises.

    Args:
        forward_func (Callable): the model.
        inputs (tuple): its inputs.
        extra (tuple): arguments passed after the inputs.
        modules (dict[str, nn.Module]): the hooked layers by key.
        on_output (Callable[[str, Any], None]): receives each layer output.
        early_exit (bool): stop the pass after the last needed call, when the
            number of calls of every module is known from an earlier pass.

    Returns:
        *tuple[Any, bool]*: the model output (None when stopped early) and
        whether the pass was stopped early.
    """
    counts = dict.fromkeys(modules, 0)
    goal = {key: _CALLS.get(m) for key, m in modules.items()}
    can_stop = early_exit and all(g is not None for g in goal.values())

    def make_hook(key: str) -> Callable[..., None]:
        def hook(_m: nn.Module, _i: Any, output: Any) -> None:
            if not mine():  # another explainer's pass in another thread
                return
            counts[key] += 1
            on_output(key, output)
            if can_stop and all(counts[k] >= (goal[k] or 0) for k in counts):
                raise _StopForward

        return hook

    stopped = False
    out = None
    with hook_scope() as mine:
        handles = [m.register_forward_hook(make_hook(k)) for k, m in modules.items()]
        try:
            out = run_model(forward_func, inputs, extra)
        except _StopForward:
            stopped = True
        finally:
            for handle in handles:
                handle.remove()
    if not stopped:
        for key, module in modules.items():
            if counts[key]:
                _CALLS[module] = counts[key]
    return out, stopped
