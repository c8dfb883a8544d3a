"""Validation and cleaning of a raw price panel (a DataFrame in the ``Date,...,Name`` schema)."""

from __future__ import annotations

import logging

import pandas as pd

from forecast.data.errors import BadValueError, SchemaError

log = logging.getLogger(__name__)

PRICE_COLUMNS = ("Open", "High", "Low", "Close")
KNOWN_COLUMNS = ("Date", "Open", "High", "Low", "Close", "Volume", "Name")


def _first_bad_row(mask: pd.Series) -> int:
    """1-based data row (header excluded) of the first True in ``mask``."""
    return int(mask.to_numpy().nonzero()[0][0]) + 1


def clean_panel(raw: pd.DataFrame, columns: list[str], origin: str) -> pd.DataFrame:
    """Check and clean a panel, keeping ``Date``, ``Name`` and the used ``columns``.

    Args:
        raw: the table as read, one row per (Name, Date), any order.
        columns: the value columns used (``Close`` is always used: it is the target).
        origin: where the data came from, for messages (a path, ``kaggle``, ``synthetic``).

    Returns:
        Rows sorted by (Name, Date) with ``Date`` as datetime64, used columns as float64, NaNs forward-filled
        within each ticker and leading NaNs dropped.

    Raises:
        SchemaError: a missing column, an unparseable date, a non-numeric value, a missing ticker name.
        BadValueError: a duplicate (Name, Date) row or a non-positive price in a used price column.
    """
    used = list(dict.fromkeys([*columns, "Close"]))
    missing = [c for c in ("Date", "Name", *used) if c not in raw.columns]
    if missing:
        raise SchemaError(
            f"{origin}: missing column(s) {', '.join(missing)}; expected {','.join(KNOWN_COLUMNS)} "
            f"(found {','.join(map(str, raw.columns))})"
        )
    frame = raw.reset_index(drop=True)[["Date", "Name", *used]].copy()

    if frame["Name"].isna().any():
        raise SchemaError(f"{origin}: empty ticker in column Name at row {_first_bad_row(frame['Name'].isna())}")
    frame["Name"] = frame["Name"].astype(str)

    dates = pd.to_datetime(frame["Date"], format="ISO8601", errors="coerce")
    bad = dates.isna()
    if bad.any():
        row = _first_bad_row(bad)
        raise SchemaError(
            f"{origin}: unparseable date {frame['Date'].iloc[row - 1]!r} in column Date at row {row}; use YYYY-MM-DD"
        )
    frame["Date"] = dates.dt.tz_localize(None) if dates.dt.tz is not None else dates

    for column in used:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            row = _first_bad_row(bad)
            raise SchemaError(
                f"{origin}: non-numeric value {frame[column].iloc[row - 1]!r} in column {column} at row {row}"
            )
        frame[column] = values.astype("float64")
        if column in PRICE_COLUMNS:
            bad = frame[column] <= 0
            if bad.any():
                row = _first_bad_row(bad)
                raise BadValueError(
                    f"{origin}: non-positive price {frame[column].iloc[row - 1]} in column {column} at row {row} "
                    f"(ticker {frame['Name'].iloc[row - 1]}, {frame['Date'].iloc[row - 1]:%Y-%m-%d}); "
                    "fix or drop that row, or leave the column out of the input channels"
                )
        elif (frame[column] < 0).any():
            row = _first_bad_row(frame[column] < 0)
            raise BadValueError(f"{origin}: negative value in column {column} at row {row}")

    duplicated = frame.duplicated(["Name", "Date"])
    if duplicated.any():
        row = _first_bad_row(duplicated)
        raise BadValueError(
            f"{origin}: duplicate row for ticker {frame['Name'].iloc[row - 1]} on "
            f"{frame['Date'].iloc[row - 1]:%Y-%m-%d} at row {row}; keep one row per (Name, Date)"
        )

    frame = frame.sort_values(["Name", "Date"], kind="stable").reset_index(drop=True)
    n_missing = int(frame[used].isna().sum().sum())
    if n_missing:
        frame[used] = frame.groupby("Name", sort=False)[used].ffill()
        leading = frame[used].isna().any(axis=1)
        log.info(
            "%s: forward-filled %d missing value(s) in %s within their ticker; dropped %d leading row(s)",
            origin,
            n_missing - int(frame.loc[leading, used].isna().sum().sum()),
            ",".join(used),
            int(leading.sum()),
        )
        frame = frame.loc[~leading].reset_index(drop=True)
    return frame
