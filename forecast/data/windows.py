"""Window index over per-ticker contiguous series, date-based splits, and the batched window dataset.

A window is ``base_len`` consecutive days of one ticker (the input) followed by ``horizon`` days (the
target). Windows are stored as start rows into one concatenated ``(T, C)`` tensor; a batch gathers its rows
with one index operation, so memory grows with the data, not with the number of windows.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler

from forecast.data.errors import DataError, NotEnoughDataError, UnknownTickerError
from forecast.data.normalize import normalise, window_stats

log = logging.getLogger(__name__)

Batch = dict[str, object]


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
) -> dict[str, np.ndarray]:
    """Split windows by date (see the protocol): returns start rows for ``train``, ``val`` and ``test``.

    train: last target day <= ``train_end``; val: first target day > ``train_end`` and last <= ``val_end``;
    test: first target day > ``val_end`` and, when ``test_end`` is given, last <= ``test_end`` (a backtest year).
    Windows whose target straddles a boundary belong to no split.
    Validation and test windows are taken at every origin so their metrics follow the protocol;
    ``train_stride`` thins the training windows only.
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
    return {
        "train": train,
        "val": starts[(first_target > train_end_d) & (last_target <= val_end_d)],
        "test": starts[test],
    }


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
    return {"train": np.sort(starts[order[:cut]]), "val": held_out, "test": held_out}


def latest_starts(panel: Panel, base_len: int) -> np.ndarray:
    """For each ticker, the start of the base that ends on its last day (the future is unknown)."""
    return (panel.offsets[1:] - base_len).astype(np.int64)


class WindowDataset(Dataset[Batch]):
    """Windows of a :class:`Panel`, fetched a batch at a time through ``__getitems__``.

    A batch is a dict:
        ``x`` (B, C, base_len) float32, normalised inputs;
        ``y`` (B, 1, horizon) float32, normalised target (only when the future is known);
        ``loc``, ``scale`` (B, 1, 1) float64 and ``normalisation`` (str): invert with
        :func:`forecast.data.normalize.denormalise` to get dollars;
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
        calendar: str = "XNYS",
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
        loc, scale = window_stats(base, self.normalisation)  # (B, C, 1) each
        c = self.close_channel
        target_loc, target_scale = loc[:, c : c + 1], scale[:, c : c + 1]  # (B, 1, 1)
        batch: Batch = {
            "x": normalise(base, loc, scale, self.normalisation).float(),
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


def check_calendar(calendar: str) -> None:
    """A :class:`DataError` for a code that names no exchange calendar (checked where it is given, not first at a
    ``predict`` of the latest days, after a whole fit saved it)."""
    import exchange_calendars as xcals  # imported here: a second to load, and only the calendar needs it

    if calendar not in xcals.get_calendar_names(include_aliases=True):
        raise DataError(
            f"unknown exchange calendar {calendar!r}; use a code of exchange_calendars such as XNYS, XNAS, XLON, XTKS "
            "(--data.calendar)"
        )


def next_sessions(origins: np.ndarray, horizon: int, calendar: str) -> np.ndarray:
    """The ``horizon`` trading sessions of exchange ``calendar`` after each origin: ``(N,)`` → ``(N, H)`` days.

    Raises:
        DataError: an unknown calendar code, or origins beyond the calendar's known sessions.
    """
    import exchange_calendars as xcals  # imported here: only forecasts of the unknown future need it

    if len(origins) == 0:
        return np.empty((0, horizon), dtype="datetime64[D]")
    first, last = pd.Timestamp(origins.min()), pd.Timestamp(origins.max())
    # an exchange trades on most weekdays; even around its longest closures 3 x horizon + 30 calendar days hold
    # more than horizon sessions (checked below)
    end = last + pd.Timedelta(days=3 * horizon + 30)
    try:
        with warnings.catch_warnings():  # a pandas 3 deprecation inside exchange_calendars, not actionable here
            warnings.filterwarnings("ignore", message="Series.values returning an ndarray that drops timezone")
            sessions = xcals.get_calendar(calendar, start=first, end=end).sessions
    except xcals.errors.InvalidCalendarName as exc:
        raise DataError(
            f"unknown exchange calendar {calendar!r}; use a code of exchange_calendars such as XNYS, XNAS, XLON, XTKS "
            "(--data.calendar)"
        ) from exc
    except ValueError as exc:  # dates outside the calendar's range
        raise DataError(f"calendar {calendar}: {' '.join(str(exc).split())[:200]}") from exc
    days = sessions.to_numpy().astype("datetime64[D]")
    after = np.searchsorted(days, origins.astype("datetime64[D]"), side="right")  # first session after each origin
    if (after + horizon > len(days)).any():
        raise DataError(f"calendar {calendar} has too few sessions after {last:%Y-%m-%d}")
    return days[after[:, None] + np.arange(horizon)]


class EpochSeededSampler(DistributedSampler):
    """A random permutation of the windows that depends only on ``(seed, epoch)``, sharded over ``num_replicas``.

    Lightning calls ``set_epoch`` each epoch, so a run resumed from a checkpoint draws the same batches as an
    uninterrupted one (``RandomSampler`` would depend on the global RNG state instead). Under DDP each rank takes
    every ``num_replicas``-th window of the same permutation, padded like ``DistributedSampler``; being one,
    Lightning keeps it. The permutation stays a tensor (8 bytes a window) and is handed out a slice at a time:
    ``DistributedSampler`` makes it a Python list, 36 bytes a window (900 MB for 25 M windows), on every rank.
    """

    def __init__(self, dataset: Dataset, seed: int, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(len(self.dataset), generator=generator)  # type: ignore[arg-type]
        if self.total_size > len(order):  # every rank gets as many windows: repeat the first few
            order = torch.cat([order, order[: self.total_size - len(order)]])
        for part in order[self.rank : self.total_size : self.num_replicas].split(1 << 16):
            yield from part.tolist()


def collate_batch(batch: Batch) -> Batch:
    """The dataset already returns whole batches (``__getitems__``): nothing to collate."""
    return batch
