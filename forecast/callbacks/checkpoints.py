"""The run's ``last.ckpt``: refreshed at every save point, so resuming never repeats an epoch, and saved at the step
a fit reached when SIGTERM stops it."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from forecast.errors import option
from forecast.signals import Stopped


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
        """A signal during ``fit``: after SIGTERM (Lightning stops at the end of a training batch) save ``last.ckpt``
        at that step; either way tell, in the exception's ``advice``, how to go on."""
        if trainer.state.fn != "fit" or not isinstance(exception, (Stopped, SIGTERMException)):
            return
        last = Path(self.dirpath or ".") / "last.ckpt"
        if isinstance(exception, SIGTERMException):
            trainer.save_checkpoint(last)  # every rank takes part; the loop's progress and the loader's place too
            where = f"step {trainer.global_step} (epoch {trainer.current_epoch}), saved in {last}"
        else:
            where = f"its last checkpoint, {last}" if last.is_file() else "the start (no epoch had finished)"
        exception.advice = f"the same command with {option('ckpt_path')} last resumes this run from {where}"  # type: ignore[attr-defined]
