"""What the terminal shows, and how a command ends: progress and results on stdout, a user's error as one line
on stderr, Lightning's notices that say nothing to a user of this tool filtered out, and the exit codes."""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Any

from lightning.pytorch.utilities import rank_zero_only

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
