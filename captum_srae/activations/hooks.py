#!/usr/bin/env python3
"""Keep forward hooks of concurrent explainers apart.

A forward hook fires for every forward pass of its module, whichever thread
runs it. When two explainers share a model and run in two threads, the hook of
one would record the activations of the other's pass. :func:`hook_scope` marks
the current thread as owned by one capture; a hook asks the returned predicate
whether to act. A thread owned by another capture is ignored; a thread owned by
none (for example a worker thread of ``nn.DataParallel``) is accepted, as before.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

_OWNERS: dict[int, object] = {}
_LOCK = threading.Lock()


@contextlib.contextmanager
def hook_scope() -> Iterator[Callable[[], bool]]:
    """Own the current thread for one capture.

    Yields:
        Callable[[], bool]: True when a hook call belongs to this capture.
    """
    token = object()
    tid = threading.get_ident()
    with _LOCK:
        previous = _OWNERS.get(tid)
        _OWNERS[tid] = token

    def mine() -> bool:
        return _OWNERS.get(threading.get_ident(), token) is token

    try:
        yield mine
    finally:
        with _LOCK:
            if previous is None:
                _OWNERS.pop(tid, None)
            else:
                _OWNERS[tid] = previous
