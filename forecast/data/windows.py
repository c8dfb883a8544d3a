"""Windows over the panel and the splits by date: start rows, the batched window dataset.

A window is ``base_len`` consecutive days of one ticker (the input) followed by ``horizon`` days (the
target). Windows are stored as start rows into the panel's concatenated ``(T, C)`` tensor; a batch gathers its
rows with one index operation, so memory grows with the data, not with the number of windows.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from forecast.data.calendar import DEFAULT_CALENDAR, next_sessions
from forecast.data.normalise import normalise, normalise_window, window_stats
from forecast.data.panel import Panel

log = logging.getLogger(__name__)

Batch = dict[str, Any]
"""A batch of windows: ``x`` (B, C, L) normalised, ``loc``/``scale`` (B, 1, 1), ``base_close`` (B, L) dollars,
``index`` (B,), ``ticker`` names, and ``y`` (B, 1, H) normalised when the targets are known."""


def window_starts(panel: Panel, length: int, stride: int = 1) -> np.ndarray:
    """Start rows of every window of ``length`` rows that stays inside one ticker, every ``stride`` rows."""
    starts = [
        np.arange(lo, hi - length + 1, stride) for lo, hi in zip(panel.offsets[:-1], panel.offsets[1:], strict=True)
    ]
    return np.concatenate(starts).astype(np.int64) if starts else np.empty(0, dtype=np.int64)


def date_splits(
    panel: Panel,
    base_len: int,
    horizon: int,
    train_end: str,
    val_end: str,
    train_stride: int = 1,
    test_end: str | None = None,
    calibration_fraction: float = 0.0,
) -> dict[str, np.ndarray]:
    """Split windows by date (see the protocol): returns start rows for ``train``, ``val`` and ``test``.

    train: last target day <= ``train_end``; val: first target day > ``train_end`` and last <= ``val_end``;
    test: first target day > ``val_end`` and, when ``test_end`` is given, last <= ``test_end`` (a backtest year).
    Windows whose target straddles a boundary belong to no split.
    Validation and test windows are taken at every origin so their metrics follow the protocol;
    ``train_stride`` thins the training windows only. ``calibration_fraction`` f > 0 keeps the validation year's last
    days for ``calibration``: with d the day at fraction 1 − f of the validation windows' first target days, val
    keeps the windows whose last target day is on or before d, calibration those whose first is after it (the
    windows between belong to neither); otherwise ``calibration`` is empty.
    """
    starts = window_starts(panel, base_len + horizon)
    first_target = panel.dates[starts + base_len]
    last_target = panel.dates[starts + base_len + horizon - 1]
    train_end_d, val_end_d = np.datetime64(train_end, "D"), np.datetime64(val_end, "D")
    train = starts[last_target <= train_end_d]
    test = first_target > val_end_d
    if test_end is not None:
        test &= last_target <= np.datetime64(test_end, "D")
    if train_stride > 1:  # keep every stride-th window of each ticker, counted from its first window
        owner = panel.ticker_of(train)
        first_of_owner = panel.offsets[owner]
        train = train[(train - first_of_owner) % train_stride == 0]
    val = (first_target > train_end_d) & (last_target <= val_end_d)
    calibration = np.zeros_like(val)
    if calibration_fraction > 0 and val.any():
        days = np.unique(first_target[val])
        cut = days[max(int(len(days) * (1 - calibration_fraction)) - 1, 0)]
        calibration, val = val & (first_target > cut), val & (last_target <= cut)
    return {"train": train, "val": starts[val], "test": starts[test], "calibration": starts[calibration]}


def tutorial_splits(panel: Panel, base_len: int, horizon: int, seed: int) -> dict[str, np.ndarray]:
    """The tutorial's split, for comparison only: LEAKY by design.

    Non-overlapping segments (within tickers here) are shuffled and cut 70/30 at random, so validation
    windows lie between training windows in time and the model is scored on a past it trained around.
    ``test`` reuses the 30% part.
    """
    starts = window_starts(panel, base_len + horizon, stride=base_len + horizon)
    order = np.random.default_rng(seed).permutation(len(starts))
    cut = round(0.7 * len(starts))
    held_out = np.sort(starts[order[cut:]])
    return {"train": np.sort(starts[order[:cut]]), "val": held_out, "test": held_out, "calibration": starts[:0]}


def latest_starts(panel: Panel, base_len: int) -> np.ndarray:
    """For each ticker, the start of the base that ends on its last day (the future is unknown)."""
    return (panel.offsets[1:] - base_len).astype(np.int64)


class WindowDataset(Dataset[Batch]):
    """Windows of a :class:`Panel`, fetched a batch at a time through ``__getitems__``.

    A batch is a dict:
        ``x`` (B, C, base_len) float32, normalised inputs;
        ``y`` (B, 1, horizon) float32, normalised target (only when the future is known);
        ``loc``, ``scale`` (B, 1, 1) float64 and ``normalisation`` (str): invert with
        :func:`forecast.data.normalise.denormalise` to get dollars;
        ``base_close`` (B, base_len) float64, the base's Close in dollars (for naive and drift baselines);
        ``target`` (B, horizon) float64, the true Close in dollars (when known);
        ``index`` (B,) int64, the window's position in this dataset;
        ``ticker`` list[str] and ``origin_date`` list[str] (``YYYY-MM-DD``, the last base day).
    """

    def __init__(
        self,
        panel: Panel,
        starts: np.ndarray,
        base_len: int,
        horizon: int,
        normalisation: str,
        with_target: bool = True,
        calendar: str = DEFAULT_CALENDAR,
    ) -> None:
        self.panel = panel
        self.starts = torch.as_tensor(starts, dtype=torch.int64)
        self.base_len = base_len
        self.horizon = horizon
        self.normalisation = normalisation
        self.with_target = with_target
        self.calendar = calendar
        self.close_channel = panel.channels.index("Close")
        window_stats(torch.ones(1, 1, 2), normalisation)  # fail early on an unknown method

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> Batch:
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]) -> Batch:
        index = torch.as_tensor(indices, dtype=torch.int64)
        starts = self.starts[index]
        base_rows = starts[:, None] + torch.arange(self.base_len)  # (B, L)
        base = self.panel.values[base_rows].transpose(1, 2)  # (B, C, L)
        x, target_loc, target_scale = normalise_window(base, self.normalisation, self.close_channel)
        batch: Batch = {
            "x": x,
            "loc": target_loc,
            "scale": target_scale,
            "normalisation": self.normalisation,
            "base_close": self.panel.close[base_rows],
            "index": index,
            "ticker": [self.panel.names[k] for k in self.panel.ticker_of(starts.numpy())],
            "origin_date": [str(d) for d in self.panel.dates[(starts + self.base_len - 1).numpy()]],
        }
        if self.with_target:
            target_rows = starts[:, None] + self.base_len + torch.arange(self.horizon)  # (B, H)
            target = self.panel.close[target_rows]
            batch["target"] = target
            batch["y"] = normalise(target[:, None, :], target_loc, target_scale, self.normalisation).float()
        return batch

    def origins(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ticker names ``(N,)`` (object) and origin dates ``(N,)`` (``datetime64[D]``, the last base day) of
        windows ``indices``, without gathering their prices."""
        starts = self.starts.numpy()[indices]
        names = np.asarray(self.panel.names, dtype=object)
        return names[self.panel.ticker_of(starts)], self.panel.dates[starts + self.base_len - 1]

    def target_dates(self, indices: np.ndarray) -> np.ndarray:
        """Calendar dates ``(N, horizon)`` of each window's target days (``datetime64[D]``).

        Known windows take their ticker's trading days; for the latest windows the future is unknown, so the
        exchange calendar's next trading sessions after the last base day are used (no market holiday).
        """
        starts = self.starts.numpy()[indices]
        if self.with_target:
            return self.panel.dates[starts[:, None] + self.base_len + np.arange(self.horizon)]
        origins = self.panel.dates[starts + self.base_len - 1]
        return next_sessions(origins, self.horizon, self.calendar)


def collate_batch(batch: Batch) -> Batch:
    """The dataset already returns whole batches (``__getitems__``): nothing to collate."""
    return batch
