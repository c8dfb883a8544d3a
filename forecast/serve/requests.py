"""The forecast service's requests and answers, as plain data: a request's JSON checked into the program's input
(every mistake one :class:`BadRequestError` naming it), and the program's output as the answer's JSON. No web
framework here: :mod:`forecast.serve.api` turns a ``BadRequestError`` into a 4xx."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

FIELDS = ("prices", "last_date")
SMALLEST, LARGEST = 1e-30, 1e30
"""The range of positive values taken: the program reads float32, which loses digits below the one and overflows
(also in its statistics) above the other."""
EXAMPLE = '{"prices": {"AAPL": [c1, ..., cL]}}'


class BadRequestError(ValueError):
    """A request the service cannot answer; ``status`` is its HTTP code (400 malformed, 422 wrong content)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Windows:
    """A request's windows: ``prices`` ``(N, L)`` (closes) or ``(N, C, L)`` float32, one row per ticker of
    ``names``; ``last_date``: the day of the last close, when given."""

    names: list[str]
    prices: np.ndarray
    last_date: pd.Timestamp | None
    target_dates: np.ndarray | None = None


def parse_request(body: Any, spec: dict[str, Any]) -> Windows:
    """Check a request body against the exported program's input ``spec`` (:func:`forecast.export.program.input_spec`).

    ``{"prices": {"AAPL": [c1, ..., cL], ...}, "last_date": "2017-12-29"}``: each ticker's last ``base_len`` closes
    (or more: the last ``base_len`` are used), oldest first, positive dollars; a model of other channels too takes
    ``{"AAPL": {"Close": [...], "Volume": [...]}}``.

    Raises:
        BadRequestError: anything else, with one message naming the field and what it must be.
    """
    if not isinstance(body, dict):
        raise BadRequestError(f"the body must be a JSON object such as {EXAMPLE}; got a {_json_type(body)}", 400)
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise BadRequestError(f"unknown field(s) {', '.join(map(repr, unknown))}; a request has {', '.join(FIELDS)}")
    if "prices" not in body:
        raise BadRequestError(f"no 'prices' in the request: send {EXAMPLE}")
    prices = body["prices"]
    if not isinstance(prices, dict) or not prices:
        shown = _shown(prices)
        raise BadRequestError(f"'prices' must be an object of tickers to closes such as {EXAMPLE}; got {shown}")
    channels, length = spec["input"]["channels"], int(spec["base_len"])
    rows = [_channels_of(str(name), value, channels, length) for name, value in prices.items()]
    array = np.stack(rows).astype(np.float32)  # (N, C, L)
    return Windows(list(map(str, prices)), array[:, 0] if channels == ["Close"] else array, _date(body))


def _channels_of(name: str, value: Any, channels: list[str], length: int) -> np.ndarray:
    if channels == ["Close"]:
        return _series(f"prices[{name!r}]", value, length, "Close")[None]
    if not isinstance(value, dict):
        raise BadRequestError(f"prices[{name!r}] must be an object of the model's channels {channels} to lists")
    missing = [c for c in channels if c not in value]
    if missing:
        raise BadRequestError(f"prices[{name!r}] has no {', '.join(missing)}; this model reads {', '.join(channels)}")
    return np.stack([_series(f"prices[{name!r}][{c!r}]", value[c], length, c) for c in channels])


def _series(where: str, value: Any, length: int, channel: str) -> np.ndarray:
    if not isinstance(value, list):
        raise BadRequestError(f"{where} must be a list of {length} numbers, oldest first; got {_shown(value)}")
    if len(value) < length:
        raise BadRequestError(f"{where} has {len(value)} values; the model needs the last {length}, oldest first")
    tail = value[-length:]
    for k, number in enumerate(tail, start=len(value) - length):
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise BadRequestError(f"{where}[{k}] is {_shown(number)}, not a number")
        if isinstance(number, float) and not math.isfinite(number):
            raise BadRequestError(f"{where}[{k}] is {number}: values must be finite")
        try:  # a JSON integer may have any number of digits
            single = abs(float(number))
        except OverflowError:
            single = math.inf
        if single > LARGEST or 0 < single < SMALLEST:
            raise BadRequestError(f"{where}[{k}] is {_shown(number)}: outside {SMALLEST:g} .. {LARGEST:g} (float32)")
        if number < 0 or (number == 0 and channel != "Volume"):
            raise BadRequestError(f"{where}[{k}] is {number}: {channel} must be positive")
    return np.asarray(tail, dtype=np.float64)


def _date(body: dict[str, Any]) -> pd.Timestamp | None:
    value = body.get("last_date")
    if value is None:
        return None
    try:
        day = pd.Timestamp(value) if isinstance(value, str) else pd.NaT
    except ValueError:
        day = pd.NaT
    if pd.isna(day):
        raise BadRequestError(f"'last_date' must be a date such as 2017-12-29 (the last close's day); got {value!r}")
    return pd.Timestamp(day.date())  # the day as written, whatever its time or offset


def answer(windows: Windows, output: np.ndarray, levels: list[float] | None, dates: np.ndarray | None) -> dict:
    """The response: ``forecasts`` (the median of a quantile model) per ticker, ``quantiles`` per ticker and level
    (a quantile model), ``target_dates`` (when the request gave ``last_date``). ``output``: ``(N, H)`` or
    ``(N, H, Q)`` dollars."""
    if levels is None:
        response: dict[str, Any] = {"forecasts": dict(zip(windows.names, output.tolist(), strict=True))}
    else:
        median = levels.index(0.5)
        response = {
            "forecasts": dict(zip(windows.names, output[:, :, median].tolist(), strict=True)),
            "quantiles": {
                name: {f"{level:g}": row[:, q].tolist() for q, level in enumerate(levels)}
                for name, row in zip(windows.names, output, strict=True)
            },
        }
    if dates is not None:
        response["target_dates"] = [str(day) for day in dates]
    return response


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return names.get(type(value), "null")


def _shown(value: Any) -> str:
    """A JSON value as a message names it: its type for an object or a list, else itself (shortened)."""
    if isinstance(value, dict):
        return "an object" if value else "an empty object"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    text = "null" if value is None else repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."
