"""Where a run is, for signals: while a fit trains, SIGTERM is left to Lightning (which stops after the batch under
way, and the step is saved); and the test-only pauses in each phase (:func:`forecast.signals.pause_here`)."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from forecast.signals import pause_here, set_fitting


class Phases(Callback):
    """Marks the fit's training for the signal handler, and offers each phase's test pause."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        set_fitting(True)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        set_fitting(False)  # the training is over: what is left (the summary, a test) stops at once

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        set_fitting(False)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # the pause ends when SIGTERM comes: Lightning then stops after this batch
        pause_here("training", until=lambda: bool(getattr(trainer, "received_sigterm", False)))

    def on_validation_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int,
                                  dataloader_idx: int = 0) -> None:  # fmt: skip
        pause_here("validating", until=lambda: bool(getattr(trainer, "received_sigterm", False)))

    def on_test_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int,
                            dataloader_idx: int = 0) -> None:  # fmt: skip
        pause_here("testing")

    def on_predict_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int,
                               dataloader_idx: int = 0) -> None:  # fmt: skip
        pause_here("predicting")
