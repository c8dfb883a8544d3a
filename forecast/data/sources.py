"""Where the price panel comes from: a file, the Kaggle dataset, or the built-in synthetic generator."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from forecast.data.errors import DataError, KaggleCredentialsError, SchemaError
from forecast.data.layouts import (
    DATE_NAMES,
    TICKER_NAMES,
    Chunk,
    data_files,
    find_column,
    not_found,
    read_chunks,
    standardise,
)
from forecast.data.synthetic import synthetic_panel
from forecast.errors import option

log = logging.getLogger(__name__)

KAGGLE_DATASET = "szrlee/stock-time-series-20050101-to-20171231"
KAGGLE_FILE = "all_stocks_2006-01-01_to_2018-01-01.csv"
SOURCES = ("auto", "csv", "kaggle", "synthetic")
CHUNK_ROWS = 1_000_000
NA_STRINGS = (
    *("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>"),
    *("N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"),
)
"""The strings pandas reads as missing by default (its documented ``na_values``), for every column but the ticker."""
CREDENTIALS_HELP = (
    "set KAGGLE_API_TOKEN or save the token to ~/.kaggle/access_token "
    "(or the legacy ~/.kaggle/kaggle.json / KAGGLE_USERNAME and KAGGLE_KEY), "
    "or give the path of a CSV you downloaded"
)


def default_cache_dir() -> Path:
    """``$FORECAST_CACHE`` or ``~/.cache/forecast``: where the Kaggle download is kept."""
    return Path(os.environ.get("FORECAST_CACHE", Path.home() / ".cache" / "forecast"))


def read_file_chunks(path: str | Path, chunk_rows: int | None = None) -> Iterator[pd.DataFrame]:
    """Read a CSV, CSV.gz or Parquet file as raw tables of at most ``chunk_rows`` rows (default ``CHUNK_ROWS``; a
    Parquet file: one table).

    Reading in chunks keeps the memory of a large file to its parsed numbers: a whole large CSV read at once
    holds every date and ticker as a Python string.

    Raises:
        DataError: no such file, or Parquet without pyarrow.
        SchemaError: the file cannot be parsed (one line saying why), also when that shows only in a later chunk.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}; pass --data.path to an existing CSV, CSV.gz or Parquet file")
    try:
        if path.suffix == ".parquet":
            try:
                yield pd.read_parquet(path)
            except ImportError as exc:
                raise DataError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow (or pass a CSV)") from exc
            return
        # tickers and dates as text in every chunk: pandas infers each chunk's types on its own, and a ticker
        # such as 0700 would be the number 700 in a chunk of digits only and "0700" in one with letters. A ticker
        # is missing only when its cell is empty: NA, NULL or NAN are real tickers. Blank lines are kept (as rows
        # of missing values) so that messages can give the file's line numbers.
        header = pd.read_csv(path, nrows=0).columns
        ticker, date = find_column(header, TICKER_NAMES), find_column(header, DATE_NAMES)
        text = {c: str for c in (ticker, date) if c is not None}
        missing = {c: [""] if c == ticker else list(NA_STRINGS) for c in header}
        options = {"dtype": text, "keep_default_na": False, "na_values": missing, "skip_blank_lines": False}
        with pd.read_csv(path, chunksize=chunk_rows or CHUNK_ROWS, **options) as reader:
            yield from reader
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        OSError,  # gzip.BadGzipFile among them
        EOFError,  # a truncated .gz
        zlib.error,  # a corrupt .gz stream
        ValueError,
    ) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SchemaError(
            f"{path}: cannot be read as a table ({type(exc).__name__}: {reason}); is the file complete and a CSV, "
            "CSV.gz or Parquet file?"
        ) from exc


def read_date_column(path: str | Path, column: object) -> pd.Series:
    """One file's whole date column, as text (a Parquet file's as stored): to decide the order of slash dates."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path, columns=[str(column)])[column]
    return pd.read_csv(path, usecols=[column], dtype=str)[column]


def kaggle_credentials_configured() -> bool:
    """Whether any credential the ``kaggle`` package (2.x) reads is present, without importing it."""
    if os.environ.get("KAGGLE_API_TOKEN") or (os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY")):
        return True
    config_dir = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle")
    return any((config_dir / name).is_file() for name in ("kaggle.json", "access_token", "access_token.txt"))


def _kaggle_api() -> Any:
    """An authenticated ``KaggleApi``. The only place that touches the ``kaggle`` package (tests replace it)."""
    if not kaggle_credentials_configured():
        raise KaggleCredentialsError(f"no Kaggle credentials found: {CREDENTIALS_HELP}")
    # importing kaggle authenticates and prints a multi-line help text when that fails: keep it off the console
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        try:
            api.authenticate()
        except SystemExit as exc:  # kaggle 2.x exits instead of raising
            raise KaggleCredentialsError(f"Kaggle rejected the configured credentials: {CREDENTIALS_HELP}") from exc
    return api


def kaggle_folder(cache_dir: str | Path | None = None, dataset: str = KAGGLE_DATASET) -> Path:
    """The cache folder of a Kaggle dataset: ``djia`` for the default one, ``OWNER__SLUG`` for any other."""
    name = "djia" if dataset == KAGGLE_DATASET else dataset.replace("/", "__")
    return Path(cache_dir or default_cache_dir()) / name


def download_kaggle(
    cache_dir: str | Path | None = None, dataset: str = KAGGLE_DATASET, pattern: str = KAGGLE_FILE
) -> Path:
    """Download a Kaggle dataset's files matching ``pattern`` once into its cache folder; return the folder.

    ``pattern`` is a file name or a glob (``*.txt``: one file per ticker), matched against the file names of the
    dataset. The files land in a temporary folder that is renamed into place, so an interrupted download leaves
    nothing that a later run would mistake for the dataset. Later calls find them and return at once.
    """
    folder = kaggle_folder(cache_dir, dataset)
    if list(folder.glob(pattern)):
        log.info("Kaggle dataset already in the cache: %s", folder)
        return folder
    if "/" not in dataset:
        raise DataError(
            f"{option('data.kaggle_dataset')} {dataset!r} is not OWNER/SLUG (as in its kaggle.com/datasets address)"
        )
    api = _kaggle_api()
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".download-") as tmp:
        log.info("downloading Kaggle dataset %s into %s", dataset, folder)
        api.dataset_download_files(dataset, path=tmp, unzip=True, quiet=True)
        found = [p for p in Path(tmp).rglob(pattern) if p.is_file()]
        if not found:
            raise DataError(
                f"the Kaggle dataset {dataset} has no file matching {pattern!r}; set {option('data.kaggle_file')}"
            )
        staged = Path(tmp) / ".staged"
        staged.mkdir()
        for file in found:
            shutil.move(str(file), staged / file.name)
        if folder.exists():  # an earlier download with another pattern: add the new files beside its own
            for file in staged.iterdir():
                shutil.move(str(file), folder / file.name)
        else:
            staged.rename(folder)
    return folder


def choose_source(source: str, path: str | None) -> tuple[str, str]:
    """Resolve ``auto`` to a concrete source: ``(source, why)``.

    A path the user gives is never swapped for other data: a path that does not exist is an error whatever
    the source, and so is a path beside a source that would not read it. ``auto`` is ``csv`` with a path,
    else ``kaggle`` when credentials are configured, else ``synthetic``.
    """
    if source == "dataframe":  # a checkpoint trained from a table in Python: the table is not in it
        raise DataError(
            f"this checkpoint was trained on a DataFrame in Python, which it does not hold; give the prices "
            f"({option('data.path', 'prices')})"
        )
    if source not in SOURCES:
        raise DataError(f"unknown data source {source!r}; choose one of {', '.join(SOURCES)}")
    if path and not data_files(path):
        raise DataError(not_found(path))
    if path and source in ("kaggle", "synthetic"):
        raise DataError(
            f"{option('data.path')} {path} is given but data.source is {source}, which would not read it; "
            f"use {option('data.source')} csv (or auto), or drop {option('data.path')}"
        )
    if source != "auto":
        return source, "asked for"
    if path:
        return "csv", f"--data.path {path}"
    if kaggle_credentials_configured():
        return "kaggle", "Kaggle credentials are configured"
    return "synthetic", "no --data.path and no Kaggle credentials"


def load_chunks(
    source: str,
    path: str | None,
    cache_dir: str | None,
    synthetic_options: dict[str, Any],
    price_column: str = "Close",
    kaggle_dataset: str = KAGGLE_DATASET,
    kaggle_pattern: str = KAGGLE_FILE,
    date_format: str | None = None,
) -> Iterator[Chunk]:
    """The rows of a concrete source (``csv``, ``kaggle`` or ``synthetic``) in the project's schema, in chunks
    (see :func:`forecast.data.validate.clean_chunks`); ``date_format``: the files' strftime date pattern (None:
    ISO, or the slash pattern each file proves)."""
    if source == "csv":
        if not path:
            raise DataError(f"source 'csv' needs a file: give its path ({option('data.path')})")
        return read_chunks(path, read_file_chunks, price_column, date_format, read_date_column)
    if source == "kaggle":
        folder = download_kaggle(cache_dir, kaggle_dataset, kaggle_pattern)
        return read_chunks(folder / kaggle_pattern, read_file_chunks, price_column, date_format, read_date_column)
    return iter([Chunk("synthetic", 1, standardise(synthetic_panel(**synthetic_options), "synthetic", price_column))])
