"""Where the edge comes from: each ticker's scores in a fold, scale-free, and the share of tickers the model wins.

For ticker i with test windows n = 1 .. N_i, steps s = 1 .. h, forecaster f and true closes y::

    MAE_i(f)   = mean_{n,s} |F_{n,s} − y_{n,s}|                                   (dollars)
    scale_i    = mean_{t ≤ train_end} |y_t − y_{t−1}|                           (in-sample one-step naive MAE)
    MASE_i(f)  = MAE_i(f) / scale_i                                  (Hyndman & Koehler 2006: scale-free)
    MASE(f)    = mean_i MASE_i(f)                                    (each ticker counts once, whatever its price)
    share(f)   = #{i : MAE_i(f) < MAE_i(b)} / #tickers                 (b: the fold's best baseline, pooled MAE)

``scale_i`` uses the ticker's days through the fold's training end only: nothing of the validation or test years
enters it. A ticker with fewer than two training days has no scale (NaN) and no MASE.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from forecast.data.panel import Panel


def naive_scale(panel: Panel, train_end: str) -> np.ndarray:
    """``scale_i`` of the module's formulas for every ticker of the panel, ``(K,)`` dollars (NaN: under 2 days)."""
    end = np.datetime64(train_end, "D")
    close = panel.close.numpy()
    scale = np.full(len(panel.names), np.nan)
    for k in range(len(panel.names)):
        first, stop = int(panel.offsets[k]), int(panel.offsets[k + 1])
        last = first + int(np.searchsorted(panel.dates[first:stop], end, side="right"))
        if last - first >= 2:
            scale[k] = float(np.abs(np.diff(close[first:last])).mean())
    return scale


def ticker_scores(
    forecasts: dict[str, torch.Tensor], target: torch.Tensor, tickers: np.ndarray, names: list[str], scale: np.ndarray
) -> pd.DataFrame:
    """One row per ticker with windows, indexed by name: ``windows``, ``scale`` and for each forecaster ``f`` of
    ``forecasts`` (each ``(N, H)`` dollars, like ``target``) ``mae_f`` and ``mase_f``. ``tickers``: each window's
    ticker index (N,) into ``names`` and ``scale``."""
    present, position = np.unique(tickers, return_inverse=True)
    count = np.bincount(position, minlength=len(present)).astype(np.float64)
    index = pd.Index([names[k] for k in present], name="ticker")
    frame = pd.DataFrame({"windows": count.astype(np.int64), "scale": scale[present]}, index=index)
    for name, forecast in forecasts.items():
        window_mae = (forecast - target).abs().mean(dim=1).numpy()  # (N,): every window has H steps
        frame[f"mae_{name}"] = np.bincount(position, weights=window_mae, minlength=len(present)) / count
        frame[f"mase_{name}"] = frame[f"mae_{name}"] / frame["scale"]
    return frame


def share_beating(frame: pd.DataFrame, forecaster: str, baseline: str) -> float:
    """``share`` of the module's formulas: the fraction of the frame's tickers whose ``mae_{forecaster}`` is below
    their ``mae_{baseline}``."""
    return float((frame[f"mae_{forecaster}"] < frame[f"mae_{baseline}"]).mean())


def mean_mase(frame: pd.DataFrame, forecaster: str) -> float:
    """``MASE`` of the module's formulas: the mean over tickers (with a scale) of ``mase_{forecaster}``."""
    return float(frame[f"mase_{forecaster}"].mean())
