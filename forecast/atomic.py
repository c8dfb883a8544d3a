"""Atomic file writes: a file appears complete under its name, or not at all."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def write_atomic(path: Path, write: Callable[[Path], T]) -> T:
    """Call ``write(tmp)`` with a temporary path beside ``path``, then rename it to ``path``; return what ``write``
    returns.

    Same folder, so the rename is atomic: a killed or failing run never leaves half a file under ``path``, and a
    failure removes the temporary file. The file gets the permissions of any new file (the umask's), as ``path``
    would.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        result = write(tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return result
