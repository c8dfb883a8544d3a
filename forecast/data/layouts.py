"""File layouts: one merged table or one file per ticker, with the column spellings stock data comes in.

Every table is brought to the project's schema ``Date,Open,High,Low,Close,Volume,Name`` before validation:
column names are matched case-insensitively among common spellings, the price column the user chose becomes
``Close`` (the target), and a file without a ticker column is one ticker named after the file.
"""

from __future__ import annotations

import glob
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forecast.data.dates import SLASH, infer_date_format, looks_iso
from forecast.data.errors import DataError, SchemaError
from forecast.errors import option, option_set

log = logging.getLogger(__name__)

DATE_NAMES = ("date", "timestamp", "datetime")
TICKER_NAMES = ("name", "ticker", "symbol")
OPTIONAL = {"open": "Open", "high": "High", "low": "Low", "volume": "Volume"}
DATA_SUFFIXES = (".csv", ".txt", ".gz", ".parquet")


@dataclass
class Chunk:
    """Consecutive rows of one data file, in the project's schema (``Date``, ``Name``, ``Close``, ...).

    Attributes:
        origin: the file the rows come from (or ``synthetic``), for messages.
        first_row: where the chunk's first row is, in ``unit``s: the line of a CSV file as an editor numbers it
            (the header is line 1), or the 1-based row of a table (a DataFrame, a Parquet file).
        frame: the rows, columns renamed by :func:`standardise`.
        has_ticker: whether the file has a ticker column (else it is one ticker, named after the file).
        unit: ``line`` or ``row``.
        offsets: each row's distance from ``first_row`` when blank lines were dropped between them (else None:
            row i is at ``first_row + i``).
        date_format: the strftime pattern of the file's dates (None: ISO 8601).
    """

    origin: str
    first_row: int
    frame: pd.DataFrame
    has_ticker: bool = True
    unit: str = "row"
    offsets: np.ndarray | None = None
    date_format: str | None = None

    def at(self, i: int) -> str:
        """Where the chunk's ``i``-th row is, for a message: ``line 14`` or ``row 13``."""
        return f"{self.unit} {self.number(i)}"

    def number(self, i: int) -> int:
        """The line (or row) number of the chunk's ``i``-th row."""
        return self.first_row + (int(self.offsets[i]) if self.offsets is not None else i)


def several_tickers_error(origin: str) -> SchemaError:
    """A file without a ticker column whose dates repeat."""
    return SchemaError(
        f"{origin}: no ticker column (Name, Ticker or Symbol) and its dates repeat: it holds several tickers "
        "and no way to tell them apart; add a ticker column, or give one file per ticker"
    )


def data_files(path: str | Path) -> list[Path]:
    """The data files ``path`` names: a file, every data file of a folder (``.csv``, ``.txt``, ``.gz``,
    ``.parquet``; hidden files skipped), or the files a glob pattern matches; sorted. Empty when none."""
    text = str(path)
    if any(char in text for char in "*?["):
        return sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
    folder = Path(text)
    if folder.is_dir():
        return sorted(
            p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix in DATA_SUFFIXES
        )
    return [folder] if folder.is_file() else []


def check_prices(prices: object) -> None:
    """A :class:`DataError` for prices given as something other than a table or a path, saying how to make one."""
    if prices is None or isinstance(prices, (str, Path, pd.DataFrame)):
        return
    if isinstance(prices, pd.Series):
        how = "make it a table with its dates as a column: series.rename('Close').rename_axis('Date').reset_index()"
    else:
        shape = f" of shape {prices.shape}" if hasattr(prices, "shape") else ""
        how = f"got a {type(prices).__module__.split('.')[0]} {type(prices).__name__}{shape}; build one, e.g. "
        how += "pd.DataFrame({'Date': dates, 'Close': closes})"
    raise DataError(f"prices are a DataFrame with Date and Close columns (Name for several tickers), or a file: {how}")


def not_found(path: object) -> str:
    """The message for a data path that names no file."""
    return (
        f"data file not found: {path}; give ({option('data.path')}) an existing CSV, CSV.gz or Parquet file, a folder "
        "of per-ticker files, or a glob pattern that matches some"
    )


def ticker_from_file(path: str | Path) -> str:
    """The ticker of a per-ticker file: its name without extensions, upper case (``aapl.us.txt`` → ``AAPL``)."""
    return Path(path).name.split(".")[0].upper()


def find_column(columns: Iterable[object], spellings: Iterable[str]) -> object | None:
    """The column of ``columns`` named by the first of ``spellings`` (lower case) that one of them matches, compared
    case-insensitively and without surrounding spaces; None when none does."""
    by_name = {str(c).strip().lower(): c for c in columns}
    return next((by_name[n] for n in spellings if n in by_name), None)


def _no_two_alike(columns: Iterable[object], origin: str) -> None:
    """A :class:`SchemaError` naming two columns that read as the same name (``Close`` and ``close``, or ``Close``
    twice: pandas reads the second as ``Close.1``), one of which would otherwise be dropped silently."""
    names = [str(c) for c in columns]
    seen: dict[str, str] = {}
    for name in names:
        mangled = re.fullmatch(r"(.*)\.\d+", name)
        key = (mangled[1] if mangled and mangled[1] in names else name).strip().lower()
        if key in seen:
            raise SchemaError(
                f"{origin}: columns {seen[key]!r} and {name!r} both read as {key!r}; rename or drop one of them"
            )
        seen[key] = name


def standardise(raw: pd.DataFrame, origin: str, price_column: str = "Close", ticker: str | None = None) -> pd.DataFrame:
    """Rename ``raw``'s columns to the project's schema; give a ticker-less table its ticker.

    Args:
        raw: a table as read.
        origin: where it came from (a file path), for messages.
        price_column: the column forecast, matched case-insensitively (``Close``, or ``Adj Close`` when asked);
            it becomes ``Close``. A table's own ``Close`` is dropped when another column is chosen.
        ticker: the ticker of a table without a ticker column (default: from ``origin``'s file name).

    Raises:
        SchemaError: no date or price column (the message lists the columns found), or a ticker-less table whose
            dates repeat (several tickers and no way to tell them apart).
    """
    found = ", ".join(map(str, raw.columns))
    _no_two_alike(raw.columns, origin)
    date = find_column(raw.columns, DATE_NAMES)
    if date is None:
        raise SchemaError(f"{origin}: no date column (looked for Date, Timestamp, Datetime); found columns: {found}")
    price = find_column(raw.columns, [price_column.strip().lower()])
    if price is None:
        raise SchemaError(
            f"{origin}: no {price_column!r} column; found columns: {found}; choose one with "
            f"{option('data.price_column')}"
        )
    renames = {date: "Date", price: "Close"}
    name = find_column(raw.columns, TICKER_NAMES)
    if name is not None:
        renames[name] = "Name"
    for lower, canonical in OPTIONAL.items():
        column = find_column(raw.columns, [lower])
        if column is not None and column not in renames:
            renames[column] = canonical
    table = raw[list(renames)].rename(columns=renames)
    if name is None:
        if table["Date"].duplicated().any():  # within these rows; across a large file's chunks: clean_chunks
            raise several_tickers_error(origin)
        table["Name"] = ticker or ticker_from_file(origin)
    return table


def read_chunks(
    path: str | Path,
    read: Callable[[Path], Iterable[pd.DataFrame]],
    price_column: str = "Close",
    date_format: str | None = None,
    read_dates: Callable[[Path, object], pd.Series] | None = None,
) -> Iterator[Chunk]:
    """Every data file ``path`` names, as standardised chunks (``read(file)`` yields one file's rows in chunks, blank
    lines as rows of missing values; ``read_dates(file, column)`` its whole date column).

    Rows are numbered as an editor numbers a CSV file's lines (blank lines counted), a Parquet file's as rows.
    Without ``date_format``, a file whose dates are not ISO gets the slash-date pattern its own dates prove
    (:func:`forecast.data.dates.infer_date_format`, one log line), read from its whole date column.

    Raises:
        DataError: ``path`` names no data file.
        SchemaError: slash dates whose order the file does not prove.
    """
    files = data_files(path)
    if not files:
        raise DataError(not_found(path))
    for file in files:
        unit, first_row = ("row", 1) if file.suffix == ".parquet" else ("line", 2)
        file_format = date_format
        for k, raw in enumerate(read(file)):
            blank = _blank_rows(raw)
            offsets = np.flatnonzero(~blank) if blank.any() else None
            rows = raw[~blank] if blank.any() else raw
            if k == 0 and file_format is None:
                file_format = _slash_format(file, rows, read_dates)
            has_ticker = find_column(rows.columns, TICKER_NAMES) is not None
            frame = standardise(rows, str(file), price_column)
            yield Chunk(str(file), first_row, frame, has_ticker, unit, offsets, file_format)
            first_row += len(raw)


def _blank_rows(raw: pd.DataFrame) -> np.ndarray:
    """Whether each row of ``raw`` is blank (every value missing: a blank line).

    A blank row is missing in every column, so one column rules out most rows: a numeric one when there is one
    (the check of a text column costs several times as much), then every column for the rows left. A chunk without
    blank lines (most files) costs one column's check instead of the whole table's.
    """
    if raw.empty:
        return np.zeros(len(raw), dtype=bool)
    numeric = raw.select_dtypes("number").columns
    blank = raw[numeric[0] if len(numeric) else raw.columns[0]].isna().to_numpy(copy=True)
    rows = np.flatnonzero(blank)
    if len(rows):
        blank[rows] = raw.iloc[rows].isna().all(axis=1).to_numpy()
    return blank


def _slash_format(file: Path, rows: pd.DataFrame, read_dates: Callable[[Path, object], pd.Series] | None) -> str | None:
    """None for a file of ISO dates; else the slash pattern the whole file's dates prove (one log line)."""
    column = find_column(rows.columns, DATE_NAMES)
    values = rows[column].dropna() if column is not None else pd.Series([], dtype=object)
    if values.empty or looks_iso(values.iloc[0]):
        return None
    every = read_dates(file, column) if read_dates is not None else values
    pattern, why = infer_date_format(every)
    if pattern is None:
        if not every.dropna().astype(str).str.match(SLASH).all():
            return None  # not slash dates: the row that does not parse is reported where it is read
        month_first = option_set("data.date_format", repr("%m/%d/%Y"))
        raise SchemaError(
            f"{file}: the dates ({values.iloc[0]!r}, ...) are {why}; pass {month_first} (month first) or '%d/%m/%Y' "
            "(day first)"
        )
    log.info("%s: dates read as %s (pattern %s; --data.date_format sets another)", file, why, pattern)
    return pattern


def frame_chunks(
    frame: pd.DataFrame, price_column: str = "Close", ticker: str | None = None, date_format: str | None = None
) -> list[Chunk]:
    """A table already in memory (``pandas.DataFrame``) as one chunk, in any layout a file may have: long (date,
    ticker, price in any accepted spelling) or one ticker without a ticker column, named by ``ticker``. Messages
    name its rows by position (``iloc``, from 0).

    Raises:
        SchemaError: as for a file (no date or price column, a ticker-less table whose dates repeat, slash dates
            whose order it does not prove).
    """
    origin = "DataFrame"
    if find_column(frame.columns, DATE_NAMES) is None and isinstance(frame.index, pd.DatetimeIndex):
        raise SchemaError(
            "DataFrame: its dates are its index, not a column; pass prices.rename_axis('Date').reset_index()"
        )
    if find_column(frame.columns, TICKER_NAMES) is None and ticker is None:
        raise SchemaError(
            "DataFrame: no ticker column (Name, Ticker or Symbol); for one ticker's prices give its name with ticker= "
            "(frame_ticker= for a StockDataModule), or add a Name column"
        )
    date_format = date_format or _slash_format(Path(origin), frame, None)
    has_ticker = find_column(frame.columns, TICKER_NAMES) is not None
    table = standardise(frame.reset_index(drop=True), origin, price_column, ticker)
    return [Chunk(origin, 0, table, has_ticker, "row", None, date_format)]
