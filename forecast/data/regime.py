"""What a base window cannot show: each row's regime over a long context of its own ticker's past days.

``regime_features`` gives, for every panel row t, from that ticker's closes up to and including day t (never later):

- the realised volatility of its daily log-returns over the last ``days`` trading days, annualised (× √252),
  as ``log(vol / 0.2)`` (0 at 20 % a year, the order of a large-cap stock's);
- the drawdown ``log(c_t / max c)`` over the same days (0 at a high, −0.69 at half of it).

A ticker's first rows use the days they have (at least two returns; a row with fewer gets 0, 0: the features of
a 20 % year at its high). ``(T, 2)`` float32; nothing in the model reads them yet (a regime gate on the model's
correction was tried on the validation years and removed: docs/results.md); the volatility is the long-context
prior the intervals of issue #30 are to start from.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from forecast.data.panel import Panel

REGIME_DAYS = 252
REGIME_FEATURES = ("log_vol", "drawdown")
_MIN_VOL = 1e-4  # annualised: 0.01 % a year, far below any traded stock's


def regime_features(panel: Panel, days: int = REGIME_DAYS) -> Tensor:
    """``(T, 2)`` float32: each row's ``log(annualised vol / 0.2)`` and drawdown over its last ``days`` days."""
    owner = np.repeat(np.arange(len(panel.names)), np.diff(panel.offsets))
    close = pd.Series(panel.close.numpy(), copy=False)
    log_close = np.log(close)
    returns = log_close.groupby(owner).diff()  # NaN on each ticker's first day
    vol = returns.groupby(owner).rolling(days, min_periods=2).std().reset_index(level=0, drop=True).sort_index()
    peak = close.groupby(owner).rolling(days, min_periods=1).max().reset_index(level=0, drop=True).sort_index()
    log_vol = np.log(np.maximum(vol * np.sqrt(252), _MIN_VOL) / 0.2)  # a flat stretch: the floor, not −inf
    drawdown = (log_close - np.log(peak)).where(vol.notna())  # rows with fewer than two returns: 0, 0
    features = np.stack([log_vol.to_numpy(), drawdown.to_numpy()], axis=1)
    return torch.from_numpy(np.nan_to_num(features, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32))
