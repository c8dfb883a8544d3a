"""Exchange trading days (``exchange_calendars``): the dates of forecasts of the unknown future."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from forecast.data.errors import DataError
from forecast.errors import option

DEFAULT_CALENDAR = "XNYS"


def check_calendar(calendar: str) -> None:
    """A :class:`DataError` for a code that names no exchange calendar (checked where it is given, not first at a
    ``predict`` of the latest days, after a whole fit saved it). The default, XNYS, needs no check: loading the
    calendars' names costs a third of a second, paid only by a user who chose another."""
    if calendar == DEFAULT_CALENDAR:
        return
    import exchange_calendars as xcals  # imported here: only forecasts of the unknown future need it

    if calendar not in xcals.get_calendar_names(include_aliases=True):
        raise DataError(
            f"unknown exchange calendar {calendar!r}; use a code of exchange_calendars such as XNYS, XNAS, XLON, XTKS "
            f"({option('data.calendar')})"
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
            f"({option('data.calendar')})"
        ) from exc
    except ValueError as exc:  # dates outside the calendar's range
        raise DataError(f"calendar {calendar}: {' '.join(str(exc).split())[:200]}") from exc
    days = sessions.to_numpy().astype("datetime64[D]")
    after = np.searchsorted(days, origins.astype("datetime64[D]"), side="right")  # first session after each origin
    if (after + horizon > len(days)).any():
        raise DataError(f"calendar {calendar} has too few sessions after {last:%Y-%m-%d}")
    return days[after[:, None] + np.arange(horizon)]


def session_on_or_before(day: pd.Timestamp, calendar: str) -> pd.Timestamp:
    """``day`` when it is a trading session of ``calendar``, else the session before it (a weekend or holiday)."""
    import exchange_calendars as xcals

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray that drops timezone")
        sessions = xcals.get_calendar(calendar, start=day - pd.Timedelta(days=30), end=day + pd.Timedelta(days=30))
        return sessions.date_to_session(day.normalize(), direction="previous")
