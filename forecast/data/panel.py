"""The price panel: every ticker's days as one contiguous block of rows, the input channels as a ``(T, C)``
tensor, and the derived ``Market`` channel."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from forecast.data.errors import NotEnoughDataError, UnknownTickerError

log = logging.getLogger(__name__)


@dataclass
class Panel:
    """All tickers' series, concatenated: ticker ``k`` owns rows ``offsets[k]:offsets[k + 1]``.

    Attributes:
        names: ticker names ``(K,)``.
        offsets: row offsets ``(K + 1,)``.
        values: input channels ``(T, C)``, float64, dollars (``Volume`` as ``log1p(volume)``).
        close: the target channel ``(T,)``, float64, dollars (a view of ``values``' ``Close`` column).
        dates: trading day of each row ``(T,)``, ``datetime64[D]``.
        channels: channel names, in order.
    """

    names: list[str]
    offsets: np.ndarray
    values: Tensor
    close: Tensor
    dates: np.ndarray
    channels: list[str]

    def ticker_of(self, rows: np.ndarray) -> np.ndarray:
        """Index of the ticker that owns each row."""
        return np.searchsorted(self.offsets, rows, side="right") - 1


@dataclass(frozen=True)
class LoadedPanel:
    """A panel read once, and the settings it was read with (``StockDataModule.reading``): handed to the processes
    of a backtest's folds or a search's trials, so that they do not read the data again."""

    panel: Panel
    reading: dict[str, Any]


MARKET = "Market"
"""A derived channel: the equal-weighted index of all tickers in the data (see :func:`market_level`)."""


def market_level(frame: pd.DataFrame) -> pd.Series:
    """Level of the equal-weighted market index on each row's date, aligned with ``frame``'s rows.

    The index starts at 100 and moves each trading day by the mean log return of the tickers that have a
    close on that day and the one before. Its value on day t uses closes up to t only, so a window's base
    sees no later day, just as with its own prices.
    """
    log_return = np.log(frame["Close"]).groupby(frame["Name"]).diff()  # NaN on each ticker's first day
    daily = log_return.groupby(frame["Date"]).mean().fillna(0.0).sort_index()
    level = 100.0 * np.exp(daily.cumsum())
    return frame["Date"].map(level)


def build_panel(frame: pd.DataFrame, channels: list[str], tickers: list[str] | None, min_length: int) -> Panel:
    """Turn a cleaned frame (:func:`forecast.data.validate.clean_chunks`: sorted by Name, then Date) into a
    :class:`Panel`.

    Tickers shorter than ``min_length`` rows are dropped with a warning.

    Raises:
        UnknownTickerError: a requested ticker is not in the data (the message lists those that are).
        NotEnoughDataError: no ticker has ``min_length`` rows.
    """
    if MARKET in channels:
        # before the ticker selection: the market is every ticker in the data, whichever ones are modelled
        frame = frame.assign(**{MARKET: market_level(frame)})
    codes, names = pd.factorize(frame["Name"], sort=True)  # codes follow the sorted names
    if len(codes) and (np.diff(codes) < 0).any():
        raise ValueError("build_panel needs rows sorted by Name, then Date (clean_chunks returns them so)")
    available = [str(name) for name in names]
    lengths = np.bincount(codes, minlength=len(available))
    if tickers:
        unknown = [t for t in tickers if t not in set(available)]
        if unknown:
            raise UnknownTickerError(f"unknown ticker(s) {', '.join(unknown)}; available: {' '.join(available)}")
    selected = np.isin(available, tickers) if tickers else np.ones(len(available), dtype=bool)
    keep = selected & (lengths >= min_length)
    short = [(available[k], int(lengths[k])) for k in np.flatnonzero(selected & ~keep)]
    if short:
        log.warning(
            "dropping %d ticker(s) with fewer than %d days (base + horizon): %s",
            len(short),
            min_length,
            ", ".join(f"{name} ({n})" for name, n in short),
        )
    if not keep.any():
        raise NotEnoughDataError(
            f"no ticker has the {min_length} days one window needs (base_len + horizon); "
            "use shorter windows or more data"
        )
    if not keep.all():
        frame = frame[keep[codes]]
    values = frame[channels].to_numpy(dtype=np.float64, copy=True)
    for i, channel in enumerate(channels):
        if channel == "Volume":  # volumes span orders of magnitude: model their logarithm
            values[:, i] = np.log1p(values[:, i])
    values_tensor = torch.from_numpy(values)
    return Panel(
        names=[name for name, ok in zip(available, keep, strict=True) if ok],
        offsets=np.concatenate([[0], np.cumsum(lengths[keep])]),
        values=values_tensor,
        close=values_tensor[:, channels.index("Close")],  # a view: the target is an input channel, untransformed
        dates=frame["Date"].to_numpy().astype("datetime64[D]"),
        channels=list(channels),
    )
