"""Validation and cleaning of raw price rows (tables in the ``Date,...,Name`` schema), read in chunks."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from forecast.data.dates import parse_days
from forecast.data.errors import BadValueError, SchemaError
from forecast.data.layouts import Chunk, several_tickers_error
from forecast.errors import option

log = logging.getLogger(__name__)

PRICE_COLUMNS = ("Open", "High", "Low", "Close")
KNOWN_COLUMNS = ("Date", "Open", "High", "Low", "Close", "Volume", "Name")


def _first(mask: pd.Series | np.ndarray) -> int:
    """0-based position of the first True in ``mask``."""
    return int(np.asarray(mask).nonzero()[0][0])


def _dates(chunk: Chunk) -> np.ndarray:
    """The chunk's dates → the local day of each, ``datetime64[ns]`` (:mod:`forecast.data.dates`); a value that is
    not a date is a :class:`SchemaError`."""
    column = chunk.frame["Date"]
    days = parse_days(column, chunk.date_format)
    bad = days.isna()
    if bad.any():
        i = _first(bad)
        expected = f"the pattern {chunk.date_format!r}" if chunk.date_format else "YYYY-MM-DD"
        expected += "" if chunk.date_format else f" (or {option('data.date_format')})"
        raise SchemaError(
            f"{chunk.origin}: unparseable date {column.iloc[i]!r} in column Date at {chunk.at(i)}; use {expected}"
        )
    return days.to_numpy(dtype="datetime64[ns]")


def _numbers(chunk: Chunk, column: str) -> np.ndarray:
    """A value column → float64 (NaN where empty); a non-numeric or non-finite value, a non-positive price or a
    negative value is an error."""
    frame, origin = chunk.frame, chunk.origin
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64")
    bad = np.isnan(values) & raw.notna().to_numpy()
    if bad.any():
        i = _first(bad)
        raise SchemaError(f"{origin}: non-numeric value {raw.iloc[i]!r} in column {column} at {chunk.at(i)}")
    bad = np.isinf(values)
    if bad.any():
        i = _first(bad)
        raise BadValueError(
            f"{origin}: non-finite value {values[i]} in column {column} at {chunk.at(i)}; fix or drop that row"
        )
    if column in PRICE_COLUMNS:
        bad = values <= 0
        if bad.any():
            i = _first(bad)
            raise BadValueError(
                f"{origin}: non-positive price {values[i]} in column {column} at {chunk.at(i)} "
                f"(ticker {frame['Name'].iloc[i]}, {frame['Date'].iloc[i]}); "
                "fix or drop that row, or leave the column out of the input channels"
            )
    elif (values < 0).any():
        raise BadValueError(f"{origin}: negative value in column {column} at {chunk.at(_first(values < 0))}")
    return values


def _ticker_names(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Each row's index into the chunk's ticker names (-1: an empty ticker), and those names, spaces stripped
    (`` A`` and ``A`` are one ticker; two indices may name one ticker).

    The distinct values are stripped, not the rows: a chunk of a million rows holds a few thousand tickers, and
    stripping every row's text took longer than the rest of the chunk's checks.
    """
    local, uniques = pd.factorize(column)  # a missing value is -1
    names = pd.Series(uniques).astype("string").str.strip()
    blank = np.flatnonzero((names == "").to_numpy(dtype=bool))
    if len(blank):
        local = np.where(np.isin(local, blank), -1, local)
    return local, [str(name) for name in names]


class _Growing:
    """A 1-D array that chunks are appended to, doubling its capacity when full.

    Why not a list of parts joined at the end: the join holds every part and the whole at once, and the freed
    parts (a few MB each) stay in the allocator's heap rather than going back to the system; a few large buffers
    are returned when freed (peak memory measured in docs/results.md, "Large universes").
    """

    def __init__(self, dtype: np.dtype | str) -> None:
        self.data = np.empty(0, dtype=dtype)
        self.size = 0

    def append(self, values: np.ndarray) -> None:
        end = self.size + len(values)
        if end > len(self.data):
            grown = np.empty(max(end, 2 * len(self.data), 1 << 20), dtype=self.data.dtype)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : end] = values
        self.size = end

    def array(self) -> np.ndarray:
        """The values appended, as a view (the spare capacity stays allocated until the view is dropped)."""
        return self.data[: self.size]


@dataclass
class _Rows:
    """The checked rows of every chunk so far, as compact arrays (a ticker is an ``int32`` code)."""

    columns: list[str]
    tickers: dict[str, int] = field(default_factory=dict)
    codes: _Growing = field(default_factory=lambda: _Growing(np.int32))
    dates: _Growing = field(default_factory=lambda: _Growing("datetime64[ns]"))
    values: dict[str, _Growing] = field(default_factory=dict)
    sources: list[Chunk] = field(default_factory=list)  # each chunk, its rows dropped: where its rows came from
    starts: list[int] = field(default_factory=list)  # position of each chunk's first row among all rows

    def __post_init__(self) -> None:
        self.values = {column: _Growing(np.float64) for column in self.columns}

    def add(self, chunk: Chunk) -> None:
        frame, origin = chunk.frame, chunk.origin
        missing = [c for c in ("Date", "Name", *self.columns) if c not in frame.columns]
        if missing:
            raise SchemaError(
                f"{origin}: missing column(s) {', '.join(missing)}; expected {','.join(KNOWN_COLUMNS)} "
                f"(found {','.join(map(str, frame.columns))})"
            )
        local, names = _ticker_names(frame["Name"])
        empty = local < 0
        if empty.any():
            raise SchemaError(f"{origin}: empty ticker in column Name at {chunk.at(_first(empty))}")
        lookup = np.array([self.tickers.setdefault(name, len(self.tickers)) for name in names], dtype=np.int32)
        self.dates.append(_dates(chunk))
        for column in self.columns:
            self.values[column].append(_numbers(chunk, column))
        self.starts.append(self.codes.size)
        self.codes.append(lookup[local])
        # the chunk without its rows, for messages: a new empty frame, not frame.iloc[:0], whose columns are views
        # that keep every row of the chunk (its text included) alive to the end of the read
        self.sources.append(replace(chunk, frame=pd.DataFrame(columns=frame.columns)))

    def take(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """The ticker codes, dates and value columns of every row, each as one array; this object keeps only
        where the rows came from."""
        codes, dates = self.codes.array(), self.dates.array()
        values = {column: growing.array() for column, growing in self.values.items()}
        self.codes, self.dates, self.values = _Growing(np.int32), _Growing("datetime64[ns]"), {}
        return codes, dates, values

    def origins(self) -> str:
        """The files read, for a message: their names, or how many when there are more than three."""
        files = list(dict.fromkeys(chunk.origin for chunk in self.sources))
        return ", ".join(files) if len(files) <= 3 else f"{len(files)} files"

    def where(self, position: int) -> tuple[Chunk, int]:
        """The chunk of the row at ``position`` among all rows (its rows dropped), and the row's index in it."""
        k = int(np.searchsorted(self.starts, position, side="right")) - 1
        return self.sources[k], position - self.starts[k]


def _sorts_after_previous(codes: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """``(T - 1,)``: whether each row after the first sorts strictly after the row before it, by (ticker code,
    date)."""
    return (codes[1:] > codes[:-1]) | ((codes[1:] == codes[:-1]) & (dates[1:] > dates[:-1]))


def _sort_order(codes: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """The stable permutation that sorts rows by (ticker code, date).

    Files usually hold each ticker's days in order, tickers in some order of their own (or interleaved by date):
    then a stable sort by ticker alone does it, faster than sorting by both keys.
    """
    order = np.argsort(codes, kind="stable")
    sorted_codes, sorted_dates = codes[order], dates[order]
    if ((sorted_codes[1:] != sorted_codes[:-1]) | (sorted_dates[1:] >= sorted_dates[:-1])).all():
        return order
    return np.lexsort((dates, codes))  # stable too: repeated (ticker, date) rows keep their file order


def clean_chunks(chunks: Iterable[Chunk], columns: list[str]) -> pd.DataFrame:
    """Check and clean rows read in chunks, keeping ``Date``, ``Name`` and the used ``columns``.

    Each chunk is checked and turned into compact arrays as it arrives, so memory holds the numbers and not the
    text they were read from (about 20 bytes a row for one price column).

    Args:
        chunks: the rows, in the project's schema, one row per (Name, Date), any order; from one or many files.
        columns: the value columns used (``Close`` is always used: it is the target).

    Returns:
        Rows sorted by (Name, Date): ``Date`` datetime64[ns], ``Name`` categorical (categories sorted), used columns
        float64; NaNs forward-filled within each ticker and leading NaNs dropped.

    Raises:
        SchemaError: a missing column, an unparseable date, a non-numeric value, a missing ticker name, a file with
            no ticker column whose dates repeat. Messages name the file and its line (as an editor numbers it).
        BadValueError: two rows for one ticker and day, a non-finite value, or a non-positive price in a used price
            column.
    """
    used = list(dict.fromkeys([*columns, "Close"]))
    rows = _Rows(used)
    for chunk in chunks:
        rows.add(chunk)
    names = sorted(rows.tickers)
    # codes in the sorted names' order, so that sorting by code sorts by name
    rank = np.empty(len(names), dtype=np.int32)
    rank[[rows.tickers[name] for name in names]] = np.arange(len(names), dtype=np.int32)
    codes, dates, values = rows.take()  # now the only owners of the rows: sorting frees each column it replaces
    codes = rank[codes]

    in_order, order = _sorts_after_previous(codes, dates), None
    if not in_order.all():
        order = _sort_order(codes, dates)
        codes, dates = codes[order], dates[order]
        for column in used:
            values[column] = values[column][order]
        in_order = _sorts_after_previous(codes, dates)
    if not in_order.all():  # sorted, so the only way left to be out of order is a repeated (Name, Date)
        repeats = np.flatnonzero(~in_order) + 1  # the later row of each pair, in the sorted order
        in_files = repeats if order is None else order[repeats]
        first = int(np.argmin(in_files))  # the repeat that comes first in the files
        chunk, i = rows.where(int(in_files[first]))
        if not chunk.has_ticker:
            raise several_tickers_error(chunk.origin)
        earlier = int(repeats[first] - 1) if order is None else int(order[repeats[first] - 1])
        other, j = rows.where(earlier)
        also = f"{other.at(j)}" if other.origin == chunk.origin else f"{other.origin} {other.at(j)}"
        raise BadValueError(
            f"{chunk.origin}: two rows for ticker {names[codes[repeats[first]]]} on "
            f"{pd.Timestamp(dates[repeats[first]]):%Y-%m-%d}, at {also} and {chunk.at(i)} (dates are read as "
            "days: a time of day does not make a second one); keep one row per ticker and day"
        )
    del in_order, order
    frame = pd.DataFrame(
        {"Date": dates, "Name": pd.Categorical.from_codes(codes, categories=names), **values}, copy=False
    )

    n_missing = int(frame[used].isna().sum().sum())
    if n_missing:
        frame[used] = frame.groupby("Name", sort=False, observed=True)[used].ffill()
        leading = frame[used].isna().any(axis=1)
        log.info(
            "%s: forward-filled %d missing value(s) in %s within their ticker; dropped %d leading row(s)",
            rows.origins(),
            n_missing - int(frame.loc[leading, used].isna().sum().sum()),
            ",".join(used),
            int(leading.sum()),
        )
        frame = frame.loc[~leading].reset_index(drop=True)
    return frame


def clean_panel(raw: pd.DataFrame, columns: list[str], origin: str) -> pd.DataFrame:
    """:func:`clean_chunks` of one table already in memory (``origin`` names it in messages)."""
    return clean_chunks([Chunk(origin, 1, raw)], columns)
