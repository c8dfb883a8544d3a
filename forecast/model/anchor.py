"""What the model does to the network's forecasts before it issues them: an optional baseline anchor and regime gate.

With ``anchor="mean_return"`` a window's forecast is ``path + correction`` where ``path[s] = last · exp(μ s)``,
s = 1 .. H, is the mean-return baseline (μ: the mean daily log-return of every ticker's training days), so a network
that has learned nothing forecasts that baseline instead of the last price. The offset of the path from the last
value is added in the window's normalised units, where the loss is taken.

With ``regime_gate`` the network's correction to the last value is scaled by a gate learned from the window's regime
over a long context (:mod:`forecast.data.regime`), so that the model can learn to say less in some regimes.

Both were tried on the validation years 2010–2012 (docs/results.md) and are options, not in ``configs/djia.yaml``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from forecast.data.baselines import mean_daily_log_return
from forecast.data.normalise import normalise
from forecast.data.windows import Batch

ANCHORS = ("last", "mean_return")


def anchor_offset(batch: Batch, drift: Tensor, horizon: int) -> Tensor:
    """``normalise(last · exp(μ s)) − normalise(last)`` ``(B, 1, H)`` float32 for the windows of ``batch``.

    ``drift``: μ, a float64 scalar tensor (per day). Uses the batch's dollar ``base_close`` ``(B, L)`` and its
    target channel's ``loc``/``scale`` ``(B, 1, 1)``; for ``last_std`` the offset is ``last (e^{μ s} − 1) / std``.
    """
    last = batch["base_close"][:, -1:].double()  # (B, 1) dollars
    steps = torch.arange(1, horizon + 1, dtype=torch.float64, device=last.device)
    path = last * torch.exp(drift.to(last.device) * steps)  # (B, H)
    loc, scale, method = batch["loc"], batch["scale"], batch["normalisation"]
    offset = normalise(path[:, None, :], loc, scale, method) - normalise(last[:, None, :], loc, scale, method)
    return offset.float()  # (B, 1, H)


class RegimeGate(nn.Module):
    """The size of the network's correction, learned from the window's regime: ``g = 2 sigmoid(w · r + b)`` in
    (0, 2), 1 at initialisation (``w = b = 0``), multiplying the correction to the last value.

    ``r`` ``(B, 3)``: the batch's ``regime`` (:func:`forecast.data.regime.regime_features` at the last base day:
    long-context log volatility and drawdown) and the log ratio of the base's own realised volatility to the long one.
    """

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, batch: Batch) -> Tensor:
        """``(B,)`` gate of each window of ``batch``."""
        regime = batch["regime"]  # (B, 2)
        returns = torch.diff(batch["base_close"].log(), dim=-1)  # (B, L − 1)
        short = torch.log(returns.std(dim=-1) * math.sqrt(252) / 0.2 + 1e-12).float() - regime[:, 0]
        features = torch.cat([regime, short[:, None]], dim=1)  # (B, 3)
        return 2 * torch.sigmoid(self.linear(features))[:, 0]


class ForecastAdjustment(nn.Module):
    """The network's normalised forecasts ``(B, ..., H)`` → the model's: gated (``regime_gate``), then anchored.

    With neither option it has no weights and returns its input, so a default model's checkpoint keys do not change.
    The anchor's μ is a buffer (kept in the checkpoint), learned from the DataModule's training split by
    :meth:`learn` when a fit starts; NaN before that, which makes every forecast NaN (a fit stops, predict refuses).
    """

    def __init__(self, anchor: str, regime_gate: bool, skip: bool, target_channel: int, horizon: int) -> None:
        super().__init__()
        if anchor not in ANCHORS or ((anchor != "last" or regime_gate) and not skip):
            raise ValueError(
                f"anchor must be one of {', '.join(ANCHORS)}, got {anchor!r}; anchor mean_return and regime_gate "
                "need skip: true (they act on the correction to the last value)"
            )
        self.anchor, self.channel, self.horizon = anchor, target_channel, horizon
        self.gate = RegimeGate() if regime_gate else None
        if anchor != "last":
            self.register_buffer("drift", torch.tensor(float("nan"), dtype=torch.float64))

    @property
    def active(self) -> bool:
        """Whether it changes anything."""
        return self.anchor != "last" or self.gate is not None

    def learn(self, datamodule: Any, stage: str) -> None:
        """At the start of a fit: μ from the DataModule's training days (its ``train_end``)."""
        if self.anchor != "last" and stage == "fit" and hasattr(datamodule, "load_panel"):
            self.drift.fill_(mean_daily_log_return(datamodule.load_panel(), datamodule.hparams.train_end))

    def forward(self, prediction: Tensor, batch: Batch) -> Tensor:
        if not self.active:
            return prediction
        shape = (prediction.shape[0],) + (1,) * (prediction.ndim - 1)
        if self.gate is not None:
            skip = batch["x"][:, self.channel, -1].reshape(shape)
            prediction = skip + self.gate(batch).reshape(shape) * (prediction - skip)
        if self.anchor != "last":
            prediction = prediction + anchor_offset(batch, self.drift, self.horizon).reshape(*shape[:-1], -1)
        return prediction
