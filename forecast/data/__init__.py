"""Data: load and validate a daily price panel, index windows, split by date, normalise per window.

Knows nothing about models.
"""

from forecast.data.datamodule import StockDataModule
from forecast.data.errors import (
    BadValueError,
    DataError,
    KaggleCredentialsError,
    NotEnoughDataError,
    SchemaError,
    UnknownTickerError,
)
from forecast.data.synthetic import synthetic_panel

__all__ = [
    "BadValueError",
    "DataError",
    "KaggleCredentialsError",
    "NotEnoughDataError",
    "SchemaError",
    "StockDataModule",
    "UnknownTickerError",
    "synthetic_panel",
]
