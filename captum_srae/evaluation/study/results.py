#!/usr/bin/env python3
r"""The results file of a study: JSON lines, one fit a line, after a header.

The first line is ``{"study": {...}}``: the format version, the problem's
name and fingerprint, the grid and the base configuration. Every further
line is one fit: ``{"point", "seed", "config", "metrics"}`` (and ``"error"``
for a fit that diverged). Metrics that are NaN are written as ``null`` (the
file is strict JSON) and read back as NaN. Each line is flushed and fsynced
when written, so an interrupted study loses at most the fit in progress; a
partly written last line is ignored when reading and removed by
:func:`open_results` before anything is appended.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from captum_srae.evaluation.study.grid import Grid, canonical_grid
from captum_srae.evaluation.study.problems import StudyProblem
from captum_srae.utils.atomic import PathLike, atomic_write_bytes

__all__ = [
    "FORMAT_VERSION",
    "append_record",
    "load_results",
    "open_results",
    "study_header",
]

#: Version of the results file format, in every header.
FORMAT_VERSION = 1


def _json(value: Any, what: str) -> Any:
    """``value`` as plain JSON data (dict keys sorted)."""
    try:
        return json.loads(json.dumps(value, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON data: {exc}") from None


def study_header(
    problem: StudyProblem, grid: Grid, base_config: Mapping[str, Any]
) -> dict[str, Any]:
    """The header line of a study's results file.

    Args:
        problem (StudyProblem): the problem.
        grid (Mapping): the grid (see :func:`expand_grid`).
        base_config (Mapping): SRAEConfig fields shared by every fit.

    Returns:
        *dict*: ``{"study": {"format", "problem", "fingerprint", "grid",
        "base_config"}}``.
    """
    return {
        "study": {
            "format": FORMAT_VERSION,
            "problem": str(problem.name),
            "fingerprint": _json(problem.fingerprint(), "the problem's fingerprint"),
            "grid": canonical_grid(grid),
            "base_config": _json(dict(base_config), "base_config"),
        }
    }


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, allow_nan=False) + "\n").encode("utf-8")


def _read(path: Path) -> tuple[list[Any], int, bool]:
    """The parsed complete lines of ``path``, the byte length they take, and
    whether a partly written last line follows them."""
    raw = path.read_bytes()
    end = raw.rfind(b"\n") + 1
    rows = []
    for number, text in enumerate(raw[:end].splitlines(), start=1):
        try:
            rows.append(json.loads(text))
        except ValueError as exc:
            raise ValueError(
                f"{path}:{number} is not a JSON line of a study ({exc})"
            ) from None
    return rows, end, end < len(raw)


def _check_rows(path: Path, rows: list[Any]) -> tuple[dict[str, Any], list[dict]]:
    """Split and check the header and the records."""
    header = rows[0]
    if not (isinstance(header, dict) and isinstance(header.get("study"), dict)):
        raise ValueError(f"{path} is not a study results file (no study header)")
    records = []
    for number, rec in enumerate(rows[1:], start=2):
        ok = isinstance(rec, dict) and isinstance(rec.get("point"), str)
        ok = ok and isinstance(rec.get("seed"), int)
        if not (ok and isinstance(rec.get("metrics"), dict)):
            raise ValueError(f"{path}:{number} is not a study record")
        metrics = {k: math.nan if v is None else v for k, v in rec["metrics"].items()}
        records.append({**rec, "metrics": metrics})
    return header, records


def load_results(path: PathLike) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read a study's results file (a partly written last line is ignored).

    Args:
        path (str or PathLike): the JSON lines file.

    Returns:
        *tuple[dict, list[dict]]*: the header and the records in file
        order, with ``null`` metrics as NaN.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it has no header or holds a line that is not a record.
    """
    target = Path(path)
    rows, _, _ = _read(target)
    if not rows:
        raise ValueError(f"{target} is not a study results file (empty)")
    return _check_rows(target, rows)


def open_results(path: PathLike, header: dict[str, Any]) -> list[dict[str, Any]]:
    """Start or resume a results file and return the records it holds.

    A missing or empty file (or one holding only part of its header) gets
    ``header``, written atomically; an existing file must have the same
    header. A partly written last line is removed.

    Args:
        path (str or PathLike): the JSON lines file.
        header (dict): from :func:`study_header`.

    Returns:
        *list[dict]*: the records already in the file.

    Raises:
        ValueError: if the file was written by another study (another
            header) or is not a results file.
    """
    target = Path(path)
    rows, end, partial = _read(target) if target.exists() else ([], 0, False)
    if not rows:
        if target.exists() and not _header_start(target):
            raise ValueError(f"out ({target}) exists and is not a study results file")
        atomic_write_bytes(target, _line(header))
        return []
    found, records = _check_rows(target, rows)
    if json.dumps(found) != json.dumps(header):
        now, old = header["study"], found["study"]
        differ = [k for k in now if json.dumps(now[k]) != json.dumps(old.get(k))]
        raise ValueError(
            f"out ({target}) was written by another study: its "
            f"{', '.join(differ) or 'header'} differ(s); choose another out or "
            "the same problem, grid and base config"
        )
    if partial:
        with open(target, "r+b") as handle:
            handle.truncate(end)
            handle.flush()
            os.fsync(handle.fileno())
    return records


def _header_start(path: Path) -> bool:
    """Whether ``path`` is empty or holds the start of a header line (an
    interrupted first write)."""
    raw = path.read_bytes()
    start = b'{"study"'
    return raw[: len(start)] == start[: len(raw)]


def append_record(path: PathLike, record: dict[str, Any]) -> None:
    """Append one record line (NaN metrics as ``null``), flushed and fsynced.

    Args:
        path (str or PathLike): the results file (see :func:`open_results`).
        record (dict): ``{"point", "seed", "config", "metrics", ...}``.
    """
    metrics = {
        k: (float(v) if math.isfinite(float(v)) else None)
        for k, v in record["metrics"].items()
    }
    with open(path, "ab") as handle:
        handle.write(_line({**record, "metrics": metrics}))
        handle.flush()
        os.fsync(handle.fileno())
