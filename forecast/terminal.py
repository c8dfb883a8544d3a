"""What the terminal shows: this tool's and Lightning's log lines, information on stdout and warnings on stderr,
from rank 0 only; Lightning's notices that say nothing to a user of this tool (its seed, device, restore and tip
lines, a deprecation inside its own code) left out unless ``--debug``."""

from __future__ import annotations

import logging
import sys
import warnings

from lightning.fabric.utilities.rank_zero import rank_zero_only

SHOWN = ("forecast", "lightning.pytorch", "lightning.fabric")  # the loggers whose lines the terminal shows
# Lightning's notices (seed set, GPU available, checkpoint restored, tips): warnings only, unless --debug
NOTICES = [f"lightning.{p}.utilities.rank_zero" for p in ("pytorch", "fabric")] + [
    "lightning.fabric.utilities.seed",
    "lightning.pytorch.trainer.connectors",
]
NOISY_WARNINGS = (r".*isinstance\(treespec, LeafSpec\)` is deprecated",)  # inside Lightning: not actionable here
# validate/test/predict restore a checkpoint's callback states into callbacks that write nowhere
EVALUATION_WARNINGS = (r"The dirpath has changed from", r".*EarlyStopping.*")


class _Console(logging.Handler):
    """Writes a record to what ``sys.stdout`` (below WARNING) or ``sys.stderr`` is when it is written, on rank 0."""

    def emit(self, record: logging.LogRecord) -> None:
        if rank_zero_only.rank == 0:
            stream = sys.stdout if record.levelno < logging.WARNING else sys.stderr
            stream.write(self.format(record) + "\n")


def configure(debug: bool = False, subcommand: str = "") -> None:
    """Set up the terminal for a command (idempotent): see the module's docstring."""
    for name in SHOWN:
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        if not any(isinstance(h, _Console) for h in logger.handlers):
            for handler in logger.handlers:  # Lightning's own console handler: from now on for nothing but errors
                if type(handler) is logging.StreamHandler:  # (not a test runner's capturing handlers)
                    handler.setLevel(logging.CRITICAL + 1)
            console = _Console()
            console.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(console)
    for name in NOTICES:
        logging.getLogger(name).setLevel(logging.INFO if debug else logging.WARNING)
    if not debug:
        evaluating = subcommand in ("validate", "test", "predict")
        for message in (*NOISY_WARNINGS, *(EVALUATION_WARNINGS if evaluating else ())):
            warnings.filterwarnings("ignore", message=message)
