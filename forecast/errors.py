"""The errors a caller can fix, below every layer, and how a message names what the caller typed.

Every problem the caller can fix — a bad file, option, checkpoint or setting — is a :class:`UserError` (or one of
its subclasses): one line saying what is wrong and how to fix it. The command line prints it alone on stderr and
exits 2; from Python it is raised as it is. Anything else is an internal failure.

A message names a setting as the caller gave it: :func:`option` spells ``data.price_column`` as the flag
``--data.price_column`` while a command runs (:func:`speaking`), and as the keyword ``price_column=`` otherwise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

Interface = Literal["python", "command line"]


class UserError(ValueError):
    """A problem the caller can fix: its message is one line that says what is wrong and how to fix it."""


class ConfigError(UserError):
    """A setting the model, the data or the optimizer refuses, or options that cannot be combined."""


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite: an internal failure of training, whose message says what to try."""


_interface: list[Interface] = ["python"]  # a list, so that a thread of the same command speaks the same way


def interface() -> Interface:
    """How the caller gives settings now: ``"command line"`` while a command runs, else ``"python"``."""
    return _interface[0]


def set_interface(how: Interface) -> None:
    """Name settings as ``how`` gives them from now on, in this whole process (a worker of a command's driver)."""
    _interface[0] = how


@contextlib.contextmanager
def speaking(how: Interface) -> Iterator[None]:
    """Name settings in messages as ``how`` gives them, for the duration of the block (a command sets this)."""
    before = _interface[0]
    _interface[0] = how
    try:
        yield
    finally:
        _interface[0] = before


def option(key: str, python: str | None = None) -> str:
    """How the caller names setting ``key`` (dotted, ``data.price_column``): the flag ``--data.price_column`` on the
    command line; from Python the keyword ``python`` (default: the last part of ``key``) with ``=``."""
    if interface() == "command line":
        return f"--{key}"
    return f"{python or key.rpartition('.')[2]}="


def option_set(key: str, value: str, python: str | None = None) -> str:
    """A setting given a value as the caller writes it: ``--data.date_format '%m/%d/%Y'`` on the command line,
    ``date_format='%m/%d/%Y'`` from Python."""
    written = option(key, python)
    return f"{written} {value}" if interface() == "command line" else f"{written}{value}"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
