"""The forecast service: a LitServe API around the exported program (:class:`forecast.export.PriceForecaster`),
so the service computes what ``forecast export`` writes and ``predict`` gives. Concurrent requests are batched
(their tickers become one batch of windows); a malformed request is a 4xx with one message, never a 500."""

from __future__ import annotations

import functools
import signal
from dataclasses import replace
from typing import Any

import litserve as ls
import numpy as np
import pandas as pd
import torch
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from forecast.data.calendar import DEFAULT_CALENDAR, next_sessions, session_on_or_before
from forecast.export.program import PriceForecaster, input_spec
from forecast.serve.requests import BadRequestError, Windows, answer, parse_request


class ForecastAPI(ls.LitAPI):
    """``POST /predict``: ``{"prices": {"AAPL": [c1, ..., cL], ...}, "last_date"?}`` → ``{"forecasts": {...},
    "quantiles"?, "target_dates"?}`` (:mod:`forecast.serve.requests`)."""

    def __init__(self, ckpt_path: str, threads: int = 1, max_batch_size: int = 16, batch_timeout: float = 0.002):
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.ckpt_path = ckpt_path  # loaded in setup, in the worker process: the API is pickled to get there
        self.threads = threads

    def setup(self, device: str) -> None:
        from forecast.api import load

        # Ctrl-C in a terminal reaches the whole process group: the server ends this worker itself (SIGTERM)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        torch.set_num_threads(self.threads)
        loaded = load(self.ckpt_path, device=device)
        data = loaded.settings["data"]
        self.spec = input_spec(loaded.model, data)
        self.levels = loaded.quantiles
        self.program = PriceForecaster.of(loaded).to(device)
        self.device = device

    def decode_request(self, request: dict) -> Windows | BadRequestError:  # type: ignore[override]
        try:
            windows = parse_request(request, self.spec)
            if windows.last_date is not None:
                windows = replace(windows, target_dates=target_dates(windows.last_date, *self._calendar))
            return windows
        except BadRequestError as exc:
            return exc  # answered by encode_response, as a response: one bad request in a batch fails alone

    def batch(self, inputs: list[Windows | BadRequestError]) -> list[Windows | BadRequestError]:
        return inputs

    def predict(self, inputs: Any) -> Any:
        if not isinstance(inputs, list):  # --max_batch_size 1: LitServe hands over one request, unbatched
            return self.predict([inputs])[0]
        good = [w for w in inputs if isinstance(w, Windows)]
        if not good:
            return inputs
        with torch.inference_mode():
            out = self.program(torch.from_numpy(np.concatenate([w.prices for w in good])).to(self.device))
        parts = iter(np.split(out.double().cpu().numpy(), np.cumsum([len(w.names) for w in good])[:-1]))
        return [(w, next(parts)) if isinstance(w, Windows) else w for w in inputs]

    def unbatch(self, output: list[Any]) -> list[Any]:
        return output

    def encode_response(self, output: Any) -> Any:
        # a response, not an exception: LitServe would send an exception raised here to every request of the batch
        if isinstance(output, BadRequestError):
            return JSONResponse(status_code=output.status, content={"detail": str(output)})
        windows, dollars = output
        bad = [name for name, row in zip(windows.names, dollars, strict=True) if not np.isfinite(row).all()]
        if bad:
            message = f"the forecasts of {', '.join(bad[:5])} are not finite: their prices are out of the model's range"
            return JSONResponse(status_code=422, content={"detail": message})
        return answer(windows, dollars, self.levels, windows.target_dates)

    @property
    def _calendar(self) -> tuple[str, int]:
        return self.spec["calendar"] or DEFAULT_CALENDAR, int(self.spec["horizon"])


@functools.lru_cache(maxsize=4096)
def target_dates(day: pd.Timestamp, calendar: str, horizon: int) -> np.ndarray:
    """The ``horizon`` sessions after ``day`` on ``calendar`` (one computation per day: requests repeat days).

    Raises:
        BadRequestError: ``day`` is no session of the calendar, or outside its range.
    """
    try:
        session = session_on_or_before(day, calendar)
        dates = next_sessions(np.array([day.to_datetime64()], dtype="datetime64[D]"), horizon, calendar)[0]
    except Exception as exc:  # exchange_calendars' own errors for dates outside its range: the client's input
        raise BadRequestError(f"last_date {day:%Y-%m-%d}: {' '.join(str(exc).split())[:200]}") from None
    if session != day:
        raise BadRequestError(
            f"last_date {day:%Y-%m-%d} is not a trading session of {calendar} (a {day:%A}); the session before it is "
            f"{session:%Y-%m-%d}"
        )
    return dates


def not_json(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A body FastAPI could not read as a JSON object: 400 with one message (FastAPI's own is a list of errors)."""
    example = '{"prices": {"AAPL": [c1, ..., cL]}}'
    if "json" not in request.headers.get("content-type", ""):
        message = f"send the body as JSON with the header Content-Type: application/json, such as {example}"
    else:
        errors = exc.errors()
        what = errors[0].get("msg", "invalid") if errors else "invalid"
        message = f"the body must be a JSON object such as {example} ({what})"
    return JSONResponse(status_code=400, content={"detail": message})


def build_server(ckpt_path: str, workers: int = 1, threads: int = 1, max_batch_size: int = 16) -> ls.LitServer:
    """A LitServer of one checkpoint on the CPU: ``workers`` inference processes of ``threads`` torch threads."""
    api = ForecastAPI(ckpt_path, threads=threads, max_batch_size=max_batch_size)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=workers, timeout=30)
    server.app.add_exception_handler(RequestValidationError, not_json)  # type: ignore[arg-type]
    return server
