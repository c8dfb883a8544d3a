"""Forecasting from Python: a checkpoint in, a DataFrame out (``forecast.load``), and a backtest's results as
DataFrames (``forecast.read_backtest``). The same rule for settings as the command line's
(:mod:`forecast.settings`): what decides the weights' meaning comes from the checkpoint."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from forecast.callbacks.prediction_writer import prediction_frame
from forecast.checkpoint import (
    RUNS_FOLDER,
    CheckpointSettings,
    Given,
    apply_rule,
    newest_run_checkpoint,
    plain_data,
    read_checkpoint,
    run_folder_of,
    runs_folder,
)
from forecast.data import StockDataModule
from forecast.data.calendar import session_on_or_before
from forecast.data.errors import DataError
from forecast.data.windows import WindowDataset
from forecast.model import Forecaster
from forecast.model.conformal import UNCALIBRATED

log = logging.getLogger(__name__)

DATA_KEYWORDS = ("calendar", "batch_size", "tickers", "train_end", "val_end", "test_end", "price_column", "date_format")
"""Data settings :meth:`ForecastModel.predict` takes as keywords (which data and how to read it); the rest of the
checkpoint's data settings decide what its weights mean and cannot change."""


def load(checkpoint: str | Path = "best", root: str | Path = ".", device: str = "cpu") -> ForecastModel:
    """The model of a checkpoint: ``best`` or ``last`` (of the newest run under ``root``, as ``--ckpt_path`` finds
    them) or a ``.ckpt`` path.

    Raises:
        CheckpointError: no such checkpoint, or not a forecast model's.
    """
    given = str(checkpoint)
    if given in ("best", "last"):
        given = str(newest_run_checkpoint(runs_folder(root, RUNS_FOLDER), given))
    ckpt = read_checkpoint(given)
    hyper = {k: v for k, v in (ckpt.get("hyper_parameters") or {}).items() if not k.startswith("_")}
    model = Forecaster(**hyper)
    model.load_state_dict(ckpt["state_dict"])
    if model.uncalibrated:
        log.warning("%s: %s", given, UNCALIBRATED)
    return ForecastModel(model.eval().to(device), ckpt, Path(given).absolute(), device)


class ForecastModel:
    """A trained forecaster: :meth:`predict` forecasts prices given as a DataFrame (or a path) with it."""

    def __init__(self, model: Forecaster, checkpoint: dict[str, Any], path: Path, device: str) -> None:
        self.model = model
        self.path = path
        self.device = device
        self._settings = CheckpointSettings.of(checkpoint)
        self._data = {k: plain_data(v) for k, v in (checkpoint.get("datamodule_hyper_parameters") or {}).items()}

    @property
    def settings(self) -> dict[str, dict[str, Any]]:
        """The checkpoint's model and data settings: ``{"model": {...}, "data": {...}}``."""
        s = self._settings
        return {"model": {**s.fixed_model, **s.chosen_model, **s.resumed}, "data": dict(self._data)}

    @property
    def horizon(self) -> int:
        """H, trading days forecast."""
        return int(self._data["horizon"])

    @property
    def quantiles(self) -> list[float] | None:
        """The quantile levels of a quantile model, None for a point model."""
        return self.model.quantile_levels

    @property
    def run_folder(self) -> Path | None:
        """The run folder (``.../version_N``) the checkpoint belongs to, or None."""
        return run_folder_of(self.path)

    def predict(
        self,
        prices: pd.DataFrame | str | Path,
        at: str | None = None,
        *,
        ticker: str | None = None,
        device: str | None = None,
        progress: bool = False,
        **data: Any,
    ) -> pd.DataFrame:
        """Forecasts of ``prices`` with the protocol's columns ``Name, origin_date, target_date, step, forecast``
        (dates ``datetime64[ns]``, dollars), and ``q0.1`` … for a quantile model: the numbers ``python -m forecast
        predict`` writes for the same checkpoint and data.

        Args:
            prices: a DataFrame in any layout a file may have (a table of one ticker without a ticker column is
                named by ``ticker``), or a file, folder or glob as ``--data.path``.
            at: None for the test windows of the checkpoint's splits; ``"latest"`` for the next ``horizon`` trading
                days after each ticker's last day; a date (``"2017-06-30"``) for that one origin of every ticker
                that trades that day (targets on the exchange calendar's next sessions).
            device: where to run (``cpu``, ``cuda``; default: the ``load`` call's); the model stays there.
            progress: a progress bar.
            data: which data and how to read it (:data:`DATA_KEYWORDS`: ``calendar``, ``batch_size``, ``tickers``,
                the split dates, ``price_column``, ``date_format``). A setting that decides what the weights mean
                (``base_len``, ``horizon``, ``normalisation``, ``channels``) must equal the checkpoint's.

        Raises:
            SettingConflictError, DataError: as the command line raises them, with the same messages.
        """
        if device is not None:
            self.model, self.device = self.model.to(device), device
        datamodule = self._datamodule(prices, at, ticker, data)
        if at not in (None, "test", "latest"):
            datamodule.datasets["predict"] = self._windows_at(datamodule, str(at))
        else:
            datamodule.setup("predict")
        dataset = datamodule.datasets["predict"]
        batches = datamodule.predict_dataloader()
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="forecast", unit="batch")
        parts = []
        with torch.inference_mode():
            for k, batch in enumerate(batches):
                output = self.model.predict_step(self.model.transfer_batch_to_device(batch, self.model.device, 0), k)
                parts.append({key: value.cpu() for key, value in output.items()})
        index = torch.cat([p["index"] for p in parts]).numpy() if parts else np.empty(0, dtype=np.int64)
        forecast = torch.cat([p["forecast"] for p in parts]).numpy() if parts else np.empty((0, self.horizon))
        quantiles = torch.cat([p["quantiles"] for p in parts]).numpy() if parts and "quantiles" in parts[0] else None
        frame = prediction_frame(dataset, index, forecast, quantiles, self.quantiles)
        for column in ("origin_date", "target_date"):
            frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
        return frame

    def _datamodule(self, prices: Any, at: str | None, ticker: str | None, data: dict[str, Any]) -> StockDataModule:
        unknown = sorted(set(data) - set(DATA_KEYWORDS) - set(self._settings.fixed_data))
        if unknown:
            raise TypeError(f"predict() got unexpected keyword(s) {unknown}; data settings it takes: {DATA_KEYWORDS}")
        # what decides the weights' meaning: the command line's rule, with the keywords as what the user gave
        apply_rule(self._settings, Given({f"data.{k}": v for k, v in data.items()}, {}), "evaluate")
        skip = ("source", "path", "cache_dir", "frame_ticker")
        settings = {k: v for k, v in self._data.items() if k not in skip and not k.startswith("_")}
        settings |= {k: v for k, v in data.items() if k in DATA_KEYWORDS}
        settings["predict_set"] = "latest" if at == "latest" else "test"
        paths = isinstance(prices, (str, Path))  # else a table, or something the DataModule tells how to make one
        source = {"source": "csv", "path": str(prices)} if paths else {"path": prices}
        return StockDataModule(**settings, **source, frame_ticker=ticker)

    def _windows_at(self, datamodule: StockDataModule, day: str) -> WindowDataset:
        """The window of every ticker whose base ends on ``day``, its targets on the calendar's next sessions."""
        try:
            when = pd.Timestamp(day)
        except ValueError:
            when = pd.NaT
        if pd.isna(when):
            raise DataError(f"at= takes None (the test windows), 'latest' or a date such as '2017-06-30'; got {day!r}")
        hp = datamodule.hparams
        panel = datamodule.load_panel()
        origin = np.datetime64(when.date(), "D")
        starts = []
        for k in range(len(panel.names)):
            first, end = int(panel.offsets[k]), int(panel.offsets[k + 1])
            row = first + int(np.searchsorted(panel.dates[first:end], origin))
            if row < end and panel.dates[row] == origin and row - hp.base_len + 1 >= first:
                starts.append(row - hp.base_len + 1)
        session = session_on_or_before(when, hp.calendar) if not starts else when.normalize()
        if session != when.normalize():  # the data has no row that day, and the exchange did not trade
            raise DataError(
                f"at={day!r} is not a trading session of {hp.calendar} (a {when:%A}); the session before it is "
                f"{session:%Y-%m-%d}"
            )
        if not starts:
            raise DataError(
                f"no ticker has {hp.base_len} trading days ending on {day} in the data; choose another date"
            )
        return WindowDataset(
            panel,
            np.asarray(starts, dtype=np.int64),
            hp.base_len,
            hp.horizon,
            hp.normalisation,
            with_target=False,
            calendar=hp.calendar,
        )


@dataclass(frozen=True)
class Backtest:
    """A backtest's results: ``folds`` (one row per year and seed), ``years`` (per year and forecaster: relMAE and
    DM tests against naive and the best baseline), ``signal`` (per year, pooled, and forecaster) and ``pooled``
    (``backtest.json``'s pooled summary as it is)."""

    folds: pd.DataFrame
    years: pd.DataFrame
    signal: pd.DataFrame
    pooled: dict[str, Any]


def read_backtest(out: str | Path) -> Backtest:
    """The results of ``python -m forecast backtest --out OUT`` as DataFrames.

    Raises:
        DataError: ``OUT/backtest.json`` is missing (the backtest did not finish) or is a validation-only one.
    """
    path = Path(out) / "backtest.json"
    if not path.is_file():
        raise DataError(f"{path} not found: give the --out folder of a finished backtest")
    result = json.loads(path.read_text())
    if result.get("validation_only"):
        raise DataError(f"{path} is a validation-only backtest: it has validation scores, not test forecasts")
    folds = pd.DataFrame([{k: v for k, v in f.items() if k not in ("commands", "signal")} for f in result["folds"]])
    rows, signal = [], []
    for year, entry in result["summary"]["years"].items():
        for name in ("model", "ensemble", "drift", "mean_return"):
            if name in entry:
                value = entry[name]
                rows.append(
                    {
                        "year": int(year),
                        "forecaster": name,
                        "rel_mae": value.get("rel_mae", value.get("rel_mae_mean")),
                        "dm_p": value["dm_p"],
                        "best_baseline": entry["best_baseline"],
                        "dm_p_vs_best": value.get("vs_best", {}).get("dm_p"),
                    }
                )
        for name, stats in (entry.get("signal") or {}).items():
            signal.append({"year": str(year), "forecaster": name, **{k: v for k, v in stats.items() if k != "ic_step"}})
    for name, stats in (result["summary"]["pooled"].get("signal") or {}).items():
        signal.append({"year": "pooled", "forecaster": name, **{k: v for k, v in stats.items() if k != "ic_step"}})
    return Backtest(folds, pd.DataFrame(rows), pd.DataFrame(signal), result["summary"]["pooled"])
