"""The test report: the model-vs-baselines table and figures, saved where the run's outputs belong."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

from forecast.callbacks.figures import forecast_examples
from forecast.report import write_report
from forecast.signals import pause_here


class TestReport(Callback):
    """After ``test``, print the protocol's table and save it (``test_metrics.md``/``.json``, per-step and example
    figures) in ``dirpath``, or in the run's log folder when ``dirpath`` is None and the Trainer has a logger.

    ``windows`` test windows are drawn as examples.
    """

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, dirpath: str | Path | None = None, windows: int = 4) -> None:
        self.dirpath = Path(dirpath) if dirpath else None
        self.windows = windows

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # trainer.log_dir is a collective call under DDP: every rank makes it
        folder = self.dirpath or (Path(trainer.log_dir) if trainer.logger is not None and trainer.log_dir else None)
        results = getattr(pl_module, "test_results", None)
        if results is None or not trainer.is_global_zero or folder is None:
            return
        pause_here("writing")
        dataset = trainer.datamodule.datasets["test"]
        examples = forecast_examples(pl_module, dataset, self.windows) if self.windows > 0 else None
        intervals = getattr(pl_module, "test_interval_results", None)
        levels = getattr(pl_module, "quantile_levels", None)
        print(write_report(results, folder, "test", examples=examples, intervals=intervals, levels=levels))
