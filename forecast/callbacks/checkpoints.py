"""The run's ``last.ckpt``: refreshed at every save point, so resuming never repeats an epoch."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from forecast.signals import EXIT_INTERRUPTED, end_within


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt`` in the run's checkpoint folder, overwritten at every epoch's save point.

    ``ModelCheckpoint(save_last=True)`` in Lightning 2.6 refreshes ``last.ckpt`` only when a top-k checkpoint
    is written at the same step: after an epoch that does not improve the monitored metric it would still hold
    an older epoch, and a resume would silently train that epoch again. An unmonitored ``ModelCheckpoint``
    that keeps one file named ``last`` is exactly a last checkpoint, through the public API alone.
    """

    def __init__(self, dirpath: str | None = None) -> None:
        super().__init__(
            dirpath=dirpath, filename="last", monitor=None, save_top_k=1, save_last=False, enable_version_counter=False
        )

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """Ctrl-C during ``fit``: say how to go on (Lightning then ends the process)."""
        if isinstance(exception, KeyboardInterrupt) and trainer.is_global_zero and trainer.state.fn == "fit":
            last = Path(self.dirpath or ".") / "last.ckpt"
            where = f"its last checkpoint, {last}" if last.is_file() else "the start (no epoch had finished)"
            print(
                f"interrupted: the same command with --ckpt_path last resumes this run from {where}",
                file=sys.stderr,
                flush=True,
            )
            end_within(30.0, EXIT_INTERRUPTED)  # Lightning's shutdown hung once after this line (see end_within)
