"""What the model does to the network's forecasts before it issues them: an optional baseline anchor.

With ``anchor="mean_return"`` a window's forecast is ``path + correction`` where ``path[s] = last · exp(μ s)``,
s = 1 .. H, is the mean-return baseline (μ: the mean daily log-return of every ticker's training days), so a network
that has learned nothing forecasts that baseline instead of the last price. The offset of the path from the last
value is added in the window's normalised units, where the loss is taken.

Tried on the validation years 2010–2012 (docs/results.md): an option, not in ``configs/djia.yaml``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from forecast.data.baselines import mean_daily_log_return
from forecast.data.normalise import normalise
from forecast.data.windows import Batch
from forecast.model.metrics import mean_return_forecast

ANCHORS = ("last", "mean_return")


def anchor_offset(batch: Batch, drift: Tensor, horizon: int) -> Tensor:
    """``normalise(last · exp(μ s)) − normalise(last)`` ``(B, 1, H)`` float32 for the windows of ``batch``.

    ``drift``: μ, a float64 scalar tensor (per day). Uses the batch's dollar ``base_close`` ``(B, L)`` and its
    target channel's ``loc``/``scale`` ``(B, 1, 1)``; for ``last_std`` the offset is ``last (e^{μ s} − 1) / std``.
    """
    base = batch["base_close"].double()  # (B, L) dollars
    last, path = base[:, -1:], mean_return_forecast(base, drift, horizon)  # (B, 1), (B, H)
    loc, scale, method = batch["loc"], batch["scale"], batch["normalisation"]
    offset = normalise(path[:, None, :], loc, scale, method) - normalise(last[:, None, :], loc, scale, method)
    return offset.float()  # (B, 1, H)


class ForecastAdjustment(nn.Module):
    """The network's normalised forecasts ``(B, ..., H)`` → the model's: anchored on the mean-return path or not.

    With ``anchor="last"`` it has no weights and returns its input, so a default model's checkpoint keys do not change.
    The anchor's μ is a buffer (kept in the checkpoint), learned from the DataModule's training split by
    :meth:`learn` when a fit starts.
    """

    def __init__(self, anchor: str, skip: bool, horizon: int) -> None:
        super().__init__()
        if anchor not in ANCHORS or (anchor != "last" and not skip):
            raise ValueError(
                f"anchor must be one of {', '.join(ANCHORS)}, got {anchor!r}; anchor mean_return needs skip: true (it "
                "moves the correction's origin from the last value to the baseline's path)"
            )
        self.anchor, self.horizon = anchor, horizon
        if anchor != "last":
            self.register_buffer("drift", torch.tensor(float("nan"), dtype=torch.float64))

    def learn(self, datamodule: Any, stage: str) -> None:
        """At the start of a fit: μ from the DataModule's training days (its ``train_end``)."""
        if self.anchor == "last" or stage != "fit":
            return
        hp = getattr(datamodule, "hparams", {})
        if not hasattr(datamodule, "load_panel") or hp.get("split", "date") != "date":
            raise ValueError(
                "model.anchor mean_return learns its drift from the training days of a StockDataModule with "
                "data.split date; use anchor last with other data"
            )
        self.drift.fill_(mean_daily_log_return(datamodule.load_panel(), hp["train_end"]))

    def forward(self, prediction: Tensor, batch: Batch) -> Tensor:
        if self.anchor == "last":
            return prediction
        shape = (prediction.shape[0],) + (1,) * (prediction.ndim - 2) + (-1,)  # (B, 1, ..., H)
        return prediction + anchor_offset(batch, self.drift, self.horizon).reshape(shape)
