"""Atomic file writes: every output of the toolkit is complete or absent, never truncated.

The content goes to a temporary file in the target's folder (same file system, so the rename is
atomic), which is renamed over the target with :func:`os.replace` (atomic on POSIX and Windows) only
after the writer finished. Anything that fails or interrupts the writer, a full disk included,
removes the temporary file and leaves the previous target, if any, untouched.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, List, Union

#: Suffix of the temporary files; a folder check can spot leftovers of a killed process by it.
TEMP_SUFFIX = ".tmp"


@contextmanager
def atomic_write(path: Union[str, Path], *, durable: bool = True) -> Iterator[BinaryIO]:
    """Open a binary handle whose content replaces ``path`` when the ``with`` block ends normally.

    The folder is created if needed; the temporary file is ``.<name>.<random>.tmp`` beside ``path``.
    With ``durable`` the file and the folder are fsync'ed so the result also survives a power loss;
    without, the rename is still atomic for a process that dies, at less cost for bulk data.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    if durable:
        _fsync_dir(path.parent)


def remove_stale_temp_files(folder: Union[str, Path], *, min_age_seconds: float = 600.0) -> List[Path]:
    """Remove the temporary files of :func:`atomic_write` (``.<name>.<random>.tmp``) that a killed
    process left in ``folder``; returns them. Only files older than ``min_age_seconds`` go: a job of
    the same array writing into the folder right now keeps its live ones (a write takes far less)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now, removed = time.time(), []
    for path in folder.glob(f".*{TEMP_SUFFIX}"):
        try:
            if path.is_file() and now - path.stat().st_mtime >= min_age_seconds:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # its writer finished or another job removed it meanwhile
            continue
    return removed


def write_json(path: Union[str, Path], obj: Any, *, sort_keys: bool = False,
               default: Callable[[Any], Any] = str) -> None:
    """Write ``obj`` as indented JSON through :func:`atomic_write` (not fsync'ed: summaries and
    reports, cheap to remake); values JSON cannot hold go through ``default``."""
    with atomic_write(path, durable=False) as handle:
        handle.write((json.dumps(obj, indent=2, sort_keys=sort_keys, default=default) + "\n").encode())


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
