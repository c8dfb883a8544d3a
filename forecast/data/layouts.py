"""File layouts: one merged table or one file per ticker, with the column spellings stock data comes in.

Every table is brought to the project's schema ``Date,Open,High,Low,Close,Volume,Name`` before validation:
column names are matched case-insensitively among common spellings, the price column the user chose becomes
``Close`` (the target), and a file without a ticker column is one ticker named after the file.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from forecast.data.errors import DataError, SchemaError

DATE_NAMES = ("date", "timestamp", "datetime")
TICKER_NAMES = ("name", "ticker", "symbol")
OPTIONAL = {"open": "Open", "high": "High", "low": "Low", "volume": "Volume"}
DATA_SUFFIXES = (".csv", ".txt", ".gz", ".parquet")


@dataclass
class Chunk:
    """Consecutive rows of one data file, in the project's schema (``Date``, ``Name``, ``Close``, ...).

    Attributes:
        origin: the file the rows come from (or ``synthetic``), for messages.
        first_row: 1-based data row (header excluded) of the chunk's first row within that file.
        frame: the rows, columns renamed by :func:`standardise`.
        has_ticker: whether the file has a ticker column (else it is one ticker, named after the file).
    """

    origin: str
    first_row: int
    frame: pd.DataFrame
    has_ticker: bool = True


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


def ticker_from_file(path: str | Path) -> str:
    """The ticker of a per-ticker file: its name without extensions, upper case (``aapl.us.txt`` → ``AAPL``)."""
    return Path(path).name.split(".")[0].upper()


def find_column(columns: Iterable[object], spellings: Iterable[str]) -> object | None:
    """The column of ``columns`` named by the first of ``spellings`` (lower case) that one of them matches, compared
    case-insensitively and without surrounding spaces; None when none does."""
    by_name = {str(c).strip().lower(): c for c in columns}
    return next((by_name[n] for n in spellings if n in by_name), None)


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
    date = find_column(raw.columns, DATE_NAMES)
    if date is None:
        raise SchemaError(f"{origin}: no date column (looked for Date, Timestamp, Datetime); found columns: {found}")
    price = find_column(raw.columns, [price_column.strip().lower()])
    if price is None:
        raise SchemaError(
            f"{origin}: no {price_column!r} column; found columns: {found}; choose one with --data.price_column"
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
    path: str | Path, read: Callable[[Path], Iterable[pd.DataFrame]], price_column: str = "Close"
) -> Iterator[Chunk]:
    """Every data file ``path`` names, as standardised chunks (``read(file)`` yields one file's rows in chunks).

    Raises:
        DataError: ``path`` names no data file.
    """
    files = data_files(path)
    if not files:
        raise DataError(
            f"data file not found: {path}; pass --data.path to an existing CSV, CSV.gz or Parquet file, a folder of "
            "per-ticker files, or a glob pattern that matches some"
        )
    for file in files:
        first_row = 1
        for raw in read(file):
            has_ticker = find_column(raw.columns, TICKER_NAMES) is not None
            yield Chunk(str(file), first_row, standardise(raw, str(file), price_column), has_ticker)
            first_row += len(raw)
