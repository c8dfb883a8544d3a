"""The CSV prediction writer: the protocol's rows, written atomically from any number of processes."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from forecast.atomic import write_atomic
from forecast.errors import UserError, option
from forecast.model.quantiles import level_name
from forecast.signals import pause_here

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = ["Name", "origin_date", "target_date", "step", "forecast"]
WINDOWS_PER_WRITE = 100_000


class OutputError(UserError):
    """An output file that cannot be written where the user asked."""


class CSVPredictionWriter(BasePredictionWriter):
    """Write forecasts as ``Name,origin_date,target_date,step,forecast`` rows (and for a quantile model one column
    per level, ``q0.1,q0.5,q0.9``), atomically, from any number of ranks.

    Each rank saves its windows (index and dollar forecasts) to a part file; after a barrier, rank 0 merges
    the parts, keeps every window exactly once (a distributed sampler may repeat some to even out ranks),
    sorts by window index, and writes ``output`` atomically (:func:`forecast.atomic.write_atomic`). A crash leaves
    no half-written file at ``output``. With ``output`` None the rows are kept in :attr:`frame` instead.
    """

    def __init__(self, output: str | os.PathLike[str] | None) -> None:
        super().__init__(write_interval="epoch")
        self.output = None if output is None else Path(output)
        self.summary: dict[str, Any] | None = None
        self.frame: pd.DataFrame | None = None
        self._parts_dir: Path | None = None

    def summary_line(self) -> str:
        """What the last write did, for the terminal: rows, tickers, origin and target dates, the file."""
        from forecast.data.errors import plural

        s = self.summary or {}
        first, last = s["origins"]
        origins = f"origin {first}" if first == last else f"origins {first} .. {last}"
        return (
            f"wrote {s['rows']:,} forecast rows for {plural(s['tickers'], 'ticker')}, {origins}, targets "
            f"{s['targets'][0]} .. {s['targets'][1]} to {s['path']}"
        )

    def check_output(self) -> None:
        """Fail early, with one line, when ``output`` cannot be written."""
        if self.output is None:
            return
        parent, where = self.output.parent, option("output")
        if not parent.is_dir():
            raise OutputError(f"cannot write predictions: folder {parent} does not exist; create it or choose {where}")
        if not os.access(parent, os.W_OK):
            raise OutputError(f"cannot write predictions: folder {parent} is not writable; choose another {where}")
        if self.output.is_dir():
            raise OutputError(f"cannot write predictions: {self.output} is a folder; name a file with {where}")

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "predict":
            return
        self.check_output()
        # a shared scratch folder beside the output (same filesystem, so the final rename is atomic), or, when the
        # rows stay in memory, beside the run's root
        where = self.output or Path(trainer.default_root_dir) / "predictions"
        parts = where.parent / f".{where.name}.parts"
        if trainer.is_global_zero:
            shutil.rmtree(parts, ignore_errors=True)
            parts.mkdir(parents=True)
        trainer.strategy.barrier("prediction-writer-setup")
        self._parts_dir = parts

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if self._parts_dir is not None and trainer.is_global_zero:
            shutil.rmtree(self._parts_dir, ignore_errors=True)

    def write_on_epoch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any] | None,
    ) -> None:
        assert self._parts_dir is not None
        outputs = [p for p in predictions if p]
        index = torch.cat([p["index"] for p in outputs]).cpu() if outputs else torch.empty(0, dtype=torch.int64)
        forecast = torch.cat([p["forecast"] for p in outputs]).cpu() if outputs else torch.empty(0)
        part = {"index": index, "forecast": forecast}
        if outputs and "quantiles" in outputs[0]:
            part["quantiles"] = torch.cat([p["quantiles"] for p in outputs]).cpu()
        torch.save(part, self._parts_dir / f"rank{trainer.global_rank:05d}.pt")
        trainer.strategy.barrier("prediction-writer-parts")
        if trainer.is_global_zero:
            try:
                self._merge(trainer, self._parts_dir)
            finally:
                shutil.rmtree(self._parts_dir, ignore_errors=True)
        trainer.strategy.barrier("prediction-writer-done")

    @staticmethod
    def _write_rows(
        handle: TextIO,
        dataset: Any,
        index: np.ndarray,
        forecast: np.ndarray,
        quantiles: np.ndarray | None,
        levels: list[float] | None,
    ) -> tuple[int, list[str]]:
        """Write the CSV rows of windows ``index`` to ``handle``: the number of rows and the first and last target
        dates of each slice written.

        A slice of windows at a time: the rows of a large universe's test years (tens of millions) would take
        gigabytes as one table of strings.
        """
        rows, targets = 0, []
        for start in range(0, max(len(index), 1), WINDOWS_PER_WRITE):
            window = slice(start, start + WINDOWS_PER_WRITE)
            frame = prediction_frame(
                dataset, index[window], forecast[window], None if quantiles is None else quantiles[window], levels
            )
            frame.to_csv(handle, index=False, float_format="%.6f", header=start == 0)
            rows += len(frame)
            targets += [frame["target_date"].min(), frame["target_date"].max()] if len(frame) else []
        return rows, targets

    def _merge(self, trainer: L.Trainer, parts_dir: Path) -> None:
        parts = [torch.load(path, weights_only=True) for path in sorted(parts_dir.glob("rank*.pt"))]
        index = torch.cat([p["index"] for p in parts]).numpy()
        forecast = torch.cat([p["forecast"].reshape(len(p["index"]), -1) for p in parts]).numpy()
        levels = getattr(trainer.lightning_module, "quantile_levels", None)
        with_quantiles = [p for p in parts if "quantiles" in p]
        quantiles = torch.cat([p["quantiles"] for p in with_quantiles]).numpy() if levels and with_quantiles else None
        order = np.argsort(index, kind="stable")
        index, forecast = index[order], forecast[order]
        keep = np.concatenate([[True], index[1:] != index[:-1]]) if len(index) else np.zeros(0, dtype=bool)
        index, forecast = index[keep], forecast[keep]
        if quantiles is not None:
            quantiles = quantiles[order][keep]
        datamodule = trainer.datamodule
        dataset = datamodule.datasets["predict"]
        if len(index) != len(dataset):
            raise RuntimeError(f"prediction writer: got {len(index)} windows of {len(dataset)}; some rank lost data")
        pause_here("writing")
        if self.output is None:
            self.frame = prediction_frame(dataset, index, forecast, quantiles, levels)
            rows, targets = len(self.frame), [self.frame["target_date"].min(), self.frame["target_date"].max()]
        else:
            self.output.parent.mkdir(parents=True, exist_ok=True)

            def write(tmp: Path) -> tuple[int, list[str]]:
                with tmp.open("w", newline="") as handle:
                    return self._write_rows(handle, dataset, index, forecast, quantiles, levels)

            rows, targets = write_atomic(self.output, write)
        tickers, origins = dataset.origins(index)
        self.summary = {
            "rows": rows,
            "tickers": len(np.unique(tickers)),
            "origins": (str(origins.min()), str(origins.max())) if len(index) else ("", ""),
            "targets": (min(targets), max(targets)) if rows else ("", ""),
            "path": str(self.output),
        }


def prediction_frame(
    dataset: Any,
    index: np.ndarray,
    forecast: np.ndarray,
    quantiles: np.ndarray | None = None,
    levels: list[float] | None = None,
) -> pd.DataFrame:
    """Rows ``Name,origin_date,target_date,step,forecast`` for windows ``index`` (N,) with forecasts (N, H), and
    with ``quantiles`` (N, Q, H) one more column per level (``q0.1``, ...; dollars)."""
    horizon = forecast.shape[1] if forecast.ndim == 2 else dataset.horizon
    tickers, origins = dataset.origins(index)
    finite = np.isfinite(forecast).all(axis=-1) if forecast.ndim == 2 else np.ones(len(index), dtype=bool)
    if quantiles is not None:
        finite &= np.isfinite(quantiles).all(axis=(1, 2))
    if not finite.all():  # the model's layers run unchecked (no host sync): the numbers are checked here, once
        first = int(np.flatnonzero(~finite)[0])
        raise UserError(
            f"{int((~finite).sum())} of {len(index)} windows have forecasts that are not finite (first: "
            f"{tickers[first]} at {origins[first]}): the checkpoint's weights are broken (a diverged training?) "
            "or the prices are far outside what the model was trained on; nothing was written"
        )
    target_dates = dataset.target_dates(index).astype(str)
    columns = {
        "Name": np.repeat(tickers, horizon),
        "origin_date": np.repeat(origins.astype(str), horizon),
        "target_date": target_dates.reshape(-1),
        "step": np.tile(np.arange(1, horizon + 1), len(index)),
        "forecast": forecast.reshape(-1),
    }
    if quantiles is not None and levels:
        for k, level in enumerate(levels):
            columns[level_name(level)] = quantiles[:, k].reshape(-1)
    return pd.DataFrame(columns)
