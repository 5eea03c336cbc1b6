#!/usr/bin/env python3
"""Crash-safe replacement of files and folders.

:func:`atomic_directory` lets a caller fill a fresh folder next to its final
place and then swaps it in with one atomic rename, so that readers see either
the complete old folder or the complete new one, never a mix and never a
half-written file. :func:`atomic_write_bytes` does the same for one file.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike[str]

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
# errno values meaning "this kernel or file system cannot exchange": fall back.
_NO_EXCHANGE = {errno.ENOSYS, errno.EINVAL, getattr(errno, "ENOTSUP", -1)}
_NO_EXCHANGE.add(getattr(errno, "EOPNOTSUPP", -1))


def _target(path: PathLike) -> Path:
    """Absolute form of ``path``; a symbolic link is followed to its target."""
    target = Path(os.path.abspath(os.fspath(path)))
    if target.is_symlink():
        target = Path(os.path.realpath(target))
    if not target.name:
        raise ValueError(f"cannot atomically replace the root folder {target}")
    return target


def _temp_name(target: Path, kind: str) -> Path:
    return target.parent / f".{target.name}.{kind}-{secrets.token_hex(6)}"


def _fsync_path(path: Path, directory: bool = False) -> None:
    if directory and os.name == "nt":  # folders cannot be opened on Windows
        return
    flags = os.O_RDONLY
    if directory:
        flags |= getattr(os, "O_DIRECTORY", 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            _fsync_path(Path(dirpath) / name)
        _fsync_path(Path(dirpath), directory=True)


@functools.lru_cache(maxsize=1)
def _renameat2() -> Callable[..., int] | None:
    """``renameat2`` from the C library, or None where it does not exist."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        func: Any = libc.renameat2
    except (OSError, AttributeError):  # no libc found, or glibc < 2.28
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    func.argtypes += [ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths with ``renameat2(RENAME_EXCHANGE)``.

    Returns:
        bool: True when swapped; False where the exchange is not supported
        (then nothing changed).

    Raises:
        OSError: on any other failure (nothing changed).
    """
    func = _renameat2()
    if func is None:
        return False
    rc = func(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in _NO_EXCHANGE:
        return False
    raise OSError(err, f"renameat2 exchange failed: {os.strerror(err)}", str(a))


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _put_in_place(new: Path, target: Path) -> None:
    """Move folder ``new`` to ``target``, replacing what is there atomically."""
    if not os.path.lexists(target):
        try:
            os.rename(new, target)
            return
        except OSError as exc:  # created meanwhile by someone else: replace it
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    if not target.is_dir():
        raise ValueError(f"{target} exists and is not a directory")
    if _exchange(new, target):
        _remove(new)  # ``new`` now holds the old content
        return
    backup = _temp_name(target, "old")
    os.rename(target, backup)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(backup, target)
        raise
    _remove(backup)


@contextlib.contextmanager
def atomic_directory(path: PathLike) -> Iterator[Path]:
    """Build a folder in a temporary place and swap it in for ``path`` at the end.

    The temporary folder (``.{name}.tmp-<random>``) is created in the parent of
    ``path``, on the same file system, so that the final rename is atomic. On
    normal exit of the ``with`` block its files and itself are fsynced, then it
    replaces ``path``: by a plain rename when ``path`` does not exist, else by
    an atomic exchange (Linux ``renameat2``) followed by the removal of the old
    content. Where the exchange is unavailable the old folder is first renamed
    to a backup name, leaving ``path`` missing for a moment but never partial.
    If the block raises, the temporary folder is removed and ``path`` is left
    untouched.

    Args:
        path (str or PathLike): Folder to create or replace. Its parent is
            created if missing; a symbolic link is followed.

    Yields:
        pathlib.Path: the empty temporary folder to write into.

    Raises:
        ValueError: if ``path`` exists and is not a directory.
        OSError: if the file system operations fail.

    Examples::

        >>> with atomic_directory("out/model") as tmp:  # doctest: +SKIP
        ...     (tmp / "config.json").write_text("{}")
    """
    target = _target(path)
    if os.path.lexists(target) and not target.is_dir():
        raise ValueError(f"{target} exists and is not a directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = _temp_name(target, "tmp")
        try:
            os.mkdir(tmp)
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        _fsync_tree(tmp)
        _put_in_place(tmp, target)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_path(target.parent, directory=True)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to the file ``path`` atomically.

    The bytes go to a temporary file in the same folder, which is fsynced and
    then renamed over ``path`` (:func:`os.replace`); the folder is fsynced last.

    Args:
        path (str or PathLike): File to create or replace. Its parent is
            created if missing.
        data (bytes): Content to write.

    Raises:
        TypeError: if ``data`` is not bytes-like.
        OSError: if the file system operations fail.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    target = _target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = _temp_name(target, "tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_path(target.parent, directory=True)
