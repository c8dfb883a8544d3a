"""Forecast figures: a few fixed validation windows drawn into TensorBoard each validation epoch."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from forecast.plots import forecast_figure


def forecast_examples(model: L.LightningModule, dataset: Any, count: int) -> tuple[Any, ...]:
    """``count`` windows spread evenly over ``dataset`` (the same ones every time): ``(batch, forecast,
    quantiles, levels)`` with the dollar forecasts ``(count, H)`` and, for a quantile model, every level's
    ``(count, Q, H)`` and the levels (else None, None). Computed in eval mode (no dropout, BatchNorm's running
    statistics) whatever the model's mode, which is restored afterwards; ``forecast_figure(*examples)`` draws
    them."""
    picks = np.linspace(0, len(dataset) - 1, min(count, len(dataset))).astype(int).tolist()
    batch = dataset.__getitems__(picks)
    on_device = {k: v.to(model.device) if torch.is_tensor(v) else v for k, v in batch.items()}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            forecast = model.forecast_dollars(on_device).cpu()
            levels = getattr(model, "quantile_levels", None)
            quantiles = model.quantile_dollars(on_device).cpu() if levels else None
    finally:
        model.train(was_training)
    return batch, forecast, quantiles, levels


class ForecastFigures(Callback):
    """Each validation epoch, draw a few fixed validation windows: base, true target, forecast and naive (and the
    central intervals of a quantile model as a fan).

    The windows are spread evenly over the validation set and stay the same across epochs, so the figures in
    TensorBoard show how the forecasts of the same windows evolve. Logged with ``add_figure`` under
    ``val/forecasts`` when the logger is TensorBoard; otherwise nothing is drawn.
    """

    def __init__(self, windows: int = 4) -> None:
        self.windows = windows

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        experiment = getattr(trainer.logger, "experiment", None)
        datamodule = getattr(trainer, "datamodule", None)
        if trainer.sanity_checking or not trainer.is_global_zero or not hasattr(experiment, "add_figure"):
            return
        dataset = getattr(datamodule, "datasets", {}).get("val")
        if dataset is None or len(dataset) == 0 or self.windows < 1:
            return
        fig = forecast_figure(*forecast_examples(pl_module, dataset, self.windows))
        experiment.add_figure("val/forecasts", fig, global_step=trainer.global_step, close=True)
