"""Reading a date column: ISO dates, US- or day-first slash dates, times of day and time-zone offsets.

A daily panel has one row per ticker and trading day, so every value is read as **the exchange's local day**: the
date as written in the file. A time of day is dropped (``2017-01-03 16:00`` is 2017-01-03), and so is a time-zone
offset (``2017-01-03T20:00:00-05:00`` is 2017-01-03, also when the offsets differ between rows): market data
writes timestamps in the exchange's own time, and converting to UTC would move evening rows to the next day.
"""

from __future__ import annotations

import re

import pandas as pd

ISO = re.compile(r"^\s*\d{4}-\d{1,2}-\d{1,2}")
SLASH = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})\b")
OFFSET = r"([T ]\d\d(?::\d\d(?::\d\d(?:\.\d+)?)?)?)\s*(?:Z|UTC|[+-]\d\d(?::?\d\d)?)\s*$"
"""A time of day followed by a time-zone offset: the offset is dropped, the time kept (group 1)."""


def looks_iso(value: object) -> bool:
    """Whether a date value starts as ``YYYY-MM-DD`` (or is missing: nothing to decide from)."""
    return not isinstance(value, str) or bool(ISO.match(value))


def infer_date_format(values: pd.Series) -> tuple[str | None, str]:
    """The strftime pattern of slash dates (``M/D/Y`` or ``D/M/Y``), proven by the values themselves, and why.

    A first field above 12 proves day-first, a second field above 12 month-first; a year of two digits is read
    with ``%y``. Returns ``(None, reason)`` when the values are not all slash dates, or when nothing proves the
    order (every field 12 or below), or when both orders are proven (the file mixes them): the reason says which.
    """
    fields = values.dropna().astype(str).str.extract(SLASH)
    if fields.empty or fields[0].isna().any():
        return None, "not every date is D/M/Y or M/D/Y"
    first, second = fields[0].astype(int), fields[1].astype(int)
    year = "%Y" if (fields[2].str.len() == 4).all() else "%y"
    day_first, month_first = bool((first > 12).any()), bool((second > 12).any())
    if day_first and month_first:
        return None, "some dates are day-first and others month-first"
    if day_first:
        return f"%d/%m/{year}", "day/month/year: a first field above 12 proves it"
    if month_first:
        return f"%m/%d/{year}", "month/day/year: a second field above 12 proves it"
    return None, "ambiguous: no field above 12 tells month/day/year from day/month/year"


def _without_offset(column: pd.Series) -> pd.Series:
    """The values as text with any time-zone offset after a time of day removed."""
    return column.astype("string").str.replace(OFFSET, r"\1", regex=True)


def _iso(column: pd.Series) -> pd.Series:
    """ISO 8601 values → timestamps (NaT where not one); offsets that differ between rows are read as written."""
    try:
        days = pd.to_datetime(column, format="ISO8601", errors="coerce")
    except ValueError:  # offsets that differ between rows: read each value's time as written
        try:
            days = pd.to_datetime(_without_offset(column), format="ISO8601", errors="coerce")
        except ValueError:  # still mixed (an offset of a form we do not strip): every value on its own
            days = column.map(lambda v: pd.to_datetime(v, format="ISO8601", errors="coerce")).astype("datetime64[ns]")
    if days.dt.tz is not None:
        days = days.dt.tz_localize(None)
    return days


def parse_days(column: pd.Series, date_format: str | None = None) -> pd.Series:
    """A date column → the local day of each value (``datetime64[ns]`` at midnight; NaT where not a date).

    ``date_format``: a strftime pattern for every value (``%m/%d/%Y``), else ISO 8601. Times of day and time-zone
    offsets are dropped, as this module's docstring says.
    """
    if date_format is None and isinstance(column.dtype, pd.StringDtype):
        # A CSV's dates (read as text), nearly always plain ISO: parsed as they are, and only the values that do
        # not parse so go through the whole treatment (spaces stripped, offsets read or dropped). Stripping and
        # converting every value took twice as long as the parsing. A value that parses as it is parses to the
        # same day when stripped; other types (numbers, timestamps in a Parquet file or a DataFrame) take the
        # whole treatment, as text.
        days = _iso(column)
        retry = days.isna().to_numpy(copy=True)
        if retry.any():
            retry &= column.notna().to_numpy()
        if retry.any():
            values = days.to_numpy(dtype="datetime64[ns]", copy=True)
            values[retry] = _days_of_text(column[retry], None).to_numpy(dtype="datetime64[ns]")
            days = pd.Series(values, index=column.index)
        return days.dt.normalize()
    return _days_of_text(column, date_format).dt.normalize()


def _days_of_text(column: pd.Series, date_format: str | None) -> pd.Series:
    """:func:`parse_days` of every value as stripped text, times of day kept (the caller drops them)."""
    column = column.astype("string").str.strip()
    if date_format is None:
        days = _iso(column)
        retry = days.isna().to_numpy() & column.notna().to_numpy()
        if retry.any():  # an offset pandas does not read ("... UTC"): the time as written
            days = days.where(~retry, _iso(_without_offset(column)))
    else:
        # the pattern is a date's: read the date part, drop any time after it
        date_part = _without_offset(column).str.split(r"[ T]", n=1, regex=True).str[0]
        days = pd.to_datetime(date_part, format=date_format, errors="coerce")
    if days.dt.tz is not None:
        days = days.dt.tz_localize(None)
    return days
