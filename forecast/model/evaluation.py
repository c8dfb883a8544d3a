"""The steps that score a forecaster: validation (with the calibration windows), test, and their metrics' logging."""

from __future__ import annotations

import logging
from typing import Any

from torch import Tensor

from forecast.data.windows import Batch
from forecast.model.metrics import ForecastMetrics, naive_quantile_forecast
from forecast.model.quantiles import IntervalMetrics

log = logging.getLogger(__name__)


def calibration_batches(trainer: Any) -> tuple[int, int] | None:
    """``(used, total)`` batches of the calibration split (the second validation loader) in this validation run, or
    None without one: ``--trainer.limit_val_batches`` limits it as it limits the validation split."""
    loaders = trainer.val_dataloaders
    if not isinstance(loaders, list | tuple) or len(loaders) < 2:
        return None
    return int(trainer.num_val_batches[1]), len(loaders[1])


class EvaluationSteps:
    """Validation and test steps of :class:`forecast.model.Forecaster` (a mixin: it uses the LightningModule's
    ``log``, its forward pass and its metrics). Validation scores uncalibrated forecasts — what training made — and
    collects the calibration split's (dataloader 1) for the epoch's conformal shifts; test scores what ``predict``
    forecasts, calibrated."""

    def _evaluate(
        self: Any, batch: Batch, metrics: ForecastMetrics, intervals: IntervalMetrics | None, prefix: str
    ) -> None:
        prediction = self.adjustment(self(batch["x"], calibrated=prefix != "val"), batch)  # (B, Q, H)
        loss = self.loss_fn(prediction[:, None], batch)
        self.log(f"{prefix}/loss", loss, batch_size=prediction.shape[0], sync_dist=True, add_dataloader_idx=False)
        dollars = self.to_dollars(prediction, batch)
        metrics.update(dollars[:, self.median_index], batch["base_close"], batch["target"])
        if intervals is not None:
            ratios = self.naive_ratios
            naive = None if ratios is None else naive_quantile_forecast(batch["base_close"], ratios)
            intervals.update(dollars, batch["target"], naive)

    def _log_intervals(self: Any, intervals: IntervalMetrics, prefix: str) -> dict[str, Tensor]:
        results = intervals.summary()
        named = intervals.named(results)
        self.log_dict({f"{prefix}/{k}": v.float() for k, v in named.items()}, sync_dist=True)
        intervals.reset()
        return results

    def _log_metrics(self: Any, metrics: ForecastMetrics, prefix: str) -> dict[str, dict[str, Tensor]]:
        results = metrics.compute()
        model = results["model"]
        scalars = {f"{prefix}/{k}": v for k, v in model.items() if k not in ("mae_step", "mae")}
        scalars |= {f"{prefix}/mae_step_{i + 1:02d}": v for i, v in enumerate(model["mae_step"])}
        scalars |= {f"{prefix}/{name}_mae": results[name]["mae"] for name in ("naive", "drift")}
        self.log_dict({k: v.float() for k, v in scalars.items()}, sync_dist=True)
        self.log(f"{prefix}/mae", model["mae"].float(), prog_bar=True, sync_dist=True)
        metrics.reset()
        return results

    def validation_step(self: Any, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if dataloader_idx == 1:  # the calibration split: kept for the conformal shifts, never scored
            if self.calibration is not None:
                self.calibration.collect(self.adjustment(self(batch["x"], calibrated=False), batch), batch["y"][:, 0])
            return
        self._evaluate(batch, self.val_metrics, self.val_intervals, "val")

    def on_validation_epoch_end(self: Any) -> None:
        self._log_metrics(self.val_metrics, "val")
        if self.val_intervals is not None:
            self._log_intervals(self.val_intervals, "val")
        if self.calibration is not None and self.trainer.sanity_checking:
            self.calibration.forget()
        elif self.calibration is not None:
            counts = calibration_batches(self.trainer)
            if counts is not None and counts[0] < counts[1] and not getattr(self, "_said_truncated", False):
                self._said_truncated = True  # once a run, not every epoch
                log.warning(
                    "--trainer.limit_val_batches also limits the calibration split: the intervals' shifts come from "
                    "its first %d of %d batches (its earliest days); set --trainer.limit_val_batches 1.0 to "
                    "calibrate on all of it",
                    *counts,
                )
            self.calibration.fit(self.all_gather)  # the shifts of this epoch's weights, saved with them

    def test_step(self: Any, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, self.test_intervals, "test")

    def on_test_epoch_end(self: Any) -> None:
        self.test_results = self._log_metrics(self.test_metrics, "test")
        if self.test_intervals is not None:
            self.test_interval_results = self._log_intervals(self.test_intervals, "test")
