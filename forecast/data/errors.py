"""Errors a user can cause with their data; each message is one line saying what is wrong and how to fix it."""

from forecast.errors import UserError


class DataError(UserError):
    """Base class of every data problem the loader detects (bad file, bad values, bad request)."""


class SchemaError(DataError):
    """The file cannot be read as a price panel: missing columns, unparseable dates or numbers."""


class BadValueError(DataError):
    """Values present but unusable: non-positive prices, duplicate (Name, Date) rows."""


class UnknownTickerError(DataError):
    """A ticker was asked for that the data does not contain."""


class NotEnoughDataError(DataError):
    """No ticker (or no split) has enough days for one window."""


class KaggleCredentialsError(DataError):
    """The Kaggle source was chosen but no Kaggle credentials are configured."""


def plural(count: int, noun: str) -> str:
    """``1 ticker``, ``2 tickers``: a count and its noun for a message."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
