"""File layouts: one merged table or one file per ticker, with the column spellings stock data comes in.

Every table is brought to the project's schema ``Date,Open,High,Low,Close,Volume,Name`` before validation:
column names are matched case-insensitively among common spellings, the price column the user chose becomes
``Close`` (the target), and a file without a ticker column is one ticker named after the file.
"""

from __future__ import annotations

import glob
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from forecast.data.errors import DataError, SchemaError

DATE_NAMES = ("date", "timestamp", "datetime")
TICKER_NAMES = ("name", "ticker", "symbol")
OPTIONAL = {"open": "Open", "high": "High", "low": "Low", "volume": "Volume"}
DATA_SUFFIXES = (".csv", ".txt", ".gz", ".parquet")


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
    by_name = {str(c).strip().lower(): c for c in raw.columns}
    found = ", ".join(map(str, raw.columns))
    date = next((by_name[n] for n in DATE_NAMES if n in by_name), None)
    if date is None:
        raise SchemaError(f"{origin}: no date column (looked for Date, Timestamp, Datetime); found columns: {found}")
    price = by_name.get(price_column.strip().lower())
    if price is None:
        raise SchemaError(
            f"{origin}: no {price_column!r} column; found columns: {found}; choose one with --data.price_column"
        )
    renames = {date: "Date", price: "Close"}
    name = next((by_name[n] for n in TICKER_NAMES if n in by_name), None)
    if name is not None:
        renames[name] = "Name"
    for lower, canonical in OPTIONAL.items():
        if lower in by_name and by_name[lower] not in renames:
            renames[by_name[lower]] = canonical
    table = raw[list(renames)].rename(columns=renames)
    if name is None:
        if table["Date"].duplicated().any():
            raise SchemaError(
                f"{origin}: no ticker column (Name, Ticker or Symbol) and its dates repeat: it holds several tickers "
                "and no way to tell them apart; add a ticker column, or give one file per ticker"
            )
        table["Name"] = ticker or ticker_from_file(origin)
    return table


def read_tables(path: str | Path, read: Callable[[Path], pd.DataFrame], price_column: str = "Close") -> pd.DataFrame:
    """Read and standardise every data file ``path`` names into one table (``read(file)`` reads one file).

    Raises:
        DataError: ``path`` names no data file.
    """
    files = data_files(path)
    if not files:
        raise DataError(
            f"data file not found: {path}; pass --data.path to an existing CSV, CSV.gz or Parquet file, a folder of "
            "per-ticker files, or a glob pattern that matches some"
        )
    tables = [standardise(read(file), str(file), price_column) for file in files]
    return pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
