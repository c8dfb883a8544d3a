"""What the terminal shows, and how a command ends: progress and results on stdout, a user's error as one line
on stderr, Lightning's notices that say nothing to a user of this tool filtered out, and the exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import traceback
import warnings
from collections.abc import Callable
from typing import Any

EXIT_INTERNAL_ERROR = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # the shell's code for Ctrl-C

NOISE = (
    "💡 Tip",  # advertisements
    "Seed set to",  # the seed is in the run's config.yaml
    "GPU available:",
    "TPU available:",
    "HPU available:",
    "Restoring states from the checkpoint path",
    "Loaded model weights from the checkpoint",
    "`Trainer(limit_",
    "`Trainer.fit` stopped:",
)
"""Beginnings of Lightning's log lines that are dropped (``--debug`` keeps them)."""

NOISY_WARNINGS = (
    # a deprecation inside Lightning's own code, not actionable by users of this tool
    r".*isinstance\(treespec, LeafSpec\)` is deprecated",
)
EVALUATION_WARNINGS = (
    # validate/test/predict restore a checkpoint's callback states into callbacks that write nowhere
    r"The dirpath has changed from",
    r".*EarlyStopping.*",
)


class _RankZero(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from lightning.pytorch.utilities import rank_zero_only  # imported when a line is logged: --help needs none

        return rank_zero_only.rank == 0


class _Below(logging.Filter):
    """Passes records below a level (to stdout); the rest go to stderr."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


class _Quiet(logging.Filter):
    """Drops :data:`NOISE`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).lstrip().startswith(NOISE)


class _CurrentStream(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` or ``sys.stderr`` is at the time (the CLI may run in-process under
    captured output)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name_of_stream = name

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return getattr(sys, self.name_of_stream)

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure(debug: bool = False, subcommand: str = "") -> None:
    """This tool's and Lightning's log lines: information on stdout, warnings and errors on stderr, from rank 0;
    :data:`NOISE` and :data:`NOISY_WARNINGS` (for ``validate``, ``test``, ``predict`` also
    :data:`EVALUATION_WARNINGS`) dropped unless ``debug``. Idempotent."""
    # Lightning installs its own console handler when it is imported (if the root logger has none): import it
    # first, so that the handler exists to be adjusted; every command but --help imports it anyway
    import lightning.pytorch  # noqa: F401

    for name in ("forecast", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        if any(isinstance(h, _CurrentStream) for h in logger.handlers):
            continue
        for handler in logger.handlers:  # Lightning's own console handler: from now on for warnings and errors
            if type(handler) is logging.StreamHandler:  # (not a test runner's capturing handlers)
                handler.setLevel(logging.WARNING)
        out, err = _CurrentStream("stdout"), _CurrentStream("stderr")
        out.addFilter(_Below(logging.WARNING))
        err.setLevel(logging.WARNING)
        for handler in (out, err):
            handler.setFormatter(logging.Formatter("%(message)s"))
            handler.addFilter(_RankZero())
            if not debug:
                handler.addFilter(_Quiet())
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    if not debug:
        evaluating = subcommand in ("validate", "test", "predict")
        for message in (*NOISY_WARNINGS, *(EVALUATION_WARNINGS if evaluating else ())):
            warnings.filterwarnings("ignore", message=message)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_user_error(exc: BaseException) -> bool:
    """Problems the user can fix: files, flags, paths, credentials, checkpoints, settings."""
    from forecast.backtest.folds import BacktestError
    from forecast.checkpoint import CheckpointError, SettingConflictError
    from forecast.data.errors import DataError
    from forecast.settings import ConfigError
    from forecast.tune.study import TuneError

    user = (
        argparse.ArgumentError, DataError, CheckpointError, SettingConflictError, ConfigError, BacktestError, TuneError
    )  # fmt: skip
    return isinstance(exc, (*user, OSError))


def end_within(seconds: float, code: int = 130) -> None:
    """After Ctrl-C: make sure this process ends, with ``code``, within ``seconds`` even if its shutdown hangs.

    The normal exit still runs (loggers flush, atexit handlers); this daemon timer only fires if it has not
    finished by then. Measured: a fit interrupted once in 27 runs printed its message and then hung in its
    shutdown for over 120 s (a test's timeout), on a fresh clone under load; never reproduced alone.
    """
    timer = threading.Timer(seconds, os._exit, args=(code,))
    timer.daemon = True
    timer.start()


def run(command: Callable[[], None], name: str, debug: bool) -> None:
    """Run a subcommand and end the process as this tool promises: exit 0 when done; 2 and one line on stderr for
    a problem the user can fix; 130 for Ctrl-C (with what to do next); 1, the traceback and one line for an
    internal failure. With ``debug`` an exception propagates with its traceback instead."""
    from forecast.backtest.runner import FoldFailedError

    try:
        command()
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"error: interrupted; {RESUME.get(name, 'nothing was left half-written')}", file=sys.stderr)
        sys.stderr.flush()
        end_within(30.0, EXIT_INTERRUPTED)
        sys.exit(EXIT_INTERRUPTED)
    except FoldFailedError as exc:  # the fold's own command printed its traceback (if any) into its log
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.returncode if exc.returncode in (EXIT_USER_ERROR, EXIT_INTERNAL_ERROR) else EXIT_INTERNAL_ERROR)
    except Exception as exc:
        if debug:
            raise
        if is_user_error(exc):
            if isinstance(exc, argparse.ArgumentError):  # the parser's message spans lines: keep it, on one
                line = " ".join(str(exc).split())
                print(f"error: {line} (see: python -m forecast {name} --help)", file=sys.stderr)
            else:
                print(f"error: {first_line(exc)}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        from forecast.model.forecaster import TrainingDivergedError

        traceback.print_exc()
        # a diverged training says what to try in its own message; anything else is a bug to report
        advice = "" if isinstance(exc, TrainingDivergedError) else "; please report it with the traceback above"
        print(
            f"error: internal failure in {name or 'forecast'}, not a problem with your input: "
            f"{type(exc).__name__}: {first_line(exc)}{advice}",
            file=sys.stderr,
        )
        sys.exit(EXIT_INTERNAL_ERROR)


RESUME = {
    "backtest": "the same command resumes the backtest (finished folds are kept)",
    "tune": "the same command resumes the study (the interrupted trials run again first, their finished folds kept)",
}
"""What to do after Ctrl-C, per command (fit says it itself, with its checkpoint)."""
