"""``StockDataModule``: a daily price panel → leak-free base/target windows, split by date."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Sampler

from forecast.data.baselines import naive_quantile_ratios
from forecast.data.calendar import DEFAULT_CALENDAR, check_calendar
from forecast.data.errors import NotEnoughDataError, plural
from forecast.data.layouts import check_prices, frame_chunks
from forecast.data.normalise import METHODS
from forecast.data.panel import MARKET, LoadedPanel, Panel, build_panel
from forecast.data.sampler import EpochSeededSampler, ResumableLoader
from forecast.data.sources import KAGGLE_DATASET, KAGGLE_FILE, choose_source, download_kaggle, load_chunks
from forecast.data.validate import clean_chunks
from forecast.data.windows import Batch, WindowDataset, collate_batch, date_splits, latest_starts, tutorial_splits
from forecast.errors import option
from forecast.signals import pause_here

log = logging.getLogger(__name__)

READING = ("source", "path", "cache_dir", "kaggle_dataset", "kaggle_file", "price_column", "date_format", "tickers",
           "channels", "synthetic_tickers", "synthetic_seed")  # fmt: skip
"""The data settings that decide the panel :meth:`StockDataModule.load_panel` reads (with ``base_len + horizon``)."""


class StockDataModule(L.LightningDataModule):
    """Windows of daily prices for training, validation, test and forecasting.

    Args:
        source: ``auto`` (``path`` when given, else Kaggle if credentials are configured, else synthetic),
            ``csv`` (files at ``path``), ``kaggle`` (download ``kaggle_dataset`` once into ``cache_dir``) or
            ``synthetic`` (the built-in seeded generator; offline).
        path: a CSV, CSV.gz or Parquet file, a folder of per-ticker files, or a glob pattern (``data/*.txt``); or,
            from Python, a ``pandas.DataFrame`` in any of the layouts a file may have (its rows named by position
            in messages; a table of one ticker without a ticker column is named by ``frame_ticker``).
            Columns are matched case-insensitively: a date (``Date``, ``Timestamp``), the price (``Close``, or
            ``price_column``), a ticker (``Name``, ``Ticker``, ``Symbol``; without one, a file is one ticker named
            after the file: ``aapl.us.txt`` → ``AAPL``), and ``Open``, ``High``, ``Low``, ``Volume`` when present.
        cache_dir: where Kaggle downloads are kept (default ``$FORECAST_CACHE`` or ``~/.cache/forecast``), one
            folder per dataset.
        kaggle_dataset: the Kaggle dataset, ``OWNER/SLUG`` (default: the DJIA 30 dataset).
        kaggle_file: the file name, or a glob for one file per ticker (``*.txt``), within that dataset.
        price_column: the column to forecast (``Close``; ``Adj Close`` when asked).
        date_format: the strftime pattern of the files' dates, e.g. ``%m/%d/%Y`` (default: ISO ``YYYY-MM-DD``, or
            the slash pattern a file's own dates prove: a first field above 12 is day-first, a second month-first).
            Every date is read as the exchange's local day: a time of day and a time-zone offset are dropped.
        calendar: the exchange calendar (``exchange_calendars`` code, e.g. ``XNYS``, ``XLON``) whose trading days
            date the forecasts of ``predict_set: latest``.
        tickers: names to use (default: all); one name alone is a list of one.
        channels: input columns, one channel each (``Close`` must be among them: it is the target);
            ``Volume`` enters as ``log1p(volume)``; ``Market`` is derived, the equal-weighted index of all
            tickers in the data up to each day.
        base_len: days of history in a window (the model's input length).
        horizon: days forecast after the base.
        stride: keep every ``stride``-th training window of each ticker (validation and test always use
            every origin, as the protocol does).
        split: ``date`` (protocol splits by ``train_end``/``val_end``) or ``tutorial`` (the tutorial's random
            70/30 split of non-overlapping segments; LEAKY, for comparison only).
        train_end: last target day of a training window (``YYYY-MM-DD``).
        val_end: last target day of a validation window; test windows start after it.
        test_end: last target day of a test window (default: the data's end); a backtest year ends here.
        calibration_fraction: the share of the validation year's last days kept apart to calibrate a quantile
            model's intervals (split conformal: they never choose the checkpoint; 0: no calibration).
        normalisation: per-window scaling from the base only: ``none``, ``last``, ``zscore``, ``last_std``
            (centre on the last value, divide by the base std) or ``log``.
        predict_set: ``test`` (every test window, a backtest) or ``latest`` (per ticker, the base ending on
            its last day; forecasts the next ``horizon`` business days).
        batch_size: windows per batch.
        num_workers: DataLoader worker processes (batches are gathered by index; 0 is usually fastest).
        seed: seed of the training shuffle (and of the tutorial split).
        synthetic_tickers: number of tickers of the synthetic source.
        synthetic_seed: seed of the synthetic source.
    """

    def __init__(
        self,
        source: Literal["auto", "csv", "kaggle", "synthetic"] = "auto",
        path: str | None = None,
        cache_dir: str | None = None,
        kaggle_dataset: str = KAGGLE_DATASET,
        kaggle_file: str = KAGGLE_FILE,
        price_column: str = "Close",
        date_format: str | None = None,
        calendar: str = DEFAULT_CALENDAR,
        tickers: list[str] | str | None = None,
        channels: tuple[str, ...] = ("Close",),
        base_len: int = 30,
        horizon: int = 10,
        stride: int = 1,
        split: Literal["date", "tutorial"] = "date",
        train_end: str = "2015-12-31",
        val_end: str = "2016-12-31",
        test_end: str | None = None,
        calibration_fraction: float = 0.0,
        normalisation: Literal["none", "last", "zscore", "last_std", "log"] = "zscore",
        predict_set: Literal["test", "latest"] = "test",
        batch_size: int = 256,
        num_workers: int = 0,
        seed: int = 0,
        synthetic_tickers: int = 10,
        synthetic_seed: int = 0,
        frame_ticker: str | None = None,
    ) -> None:
        super().__init__()
        check_prices(path)
        self.frame = path if isinstance(path, pd.DataFrame) else None
        channels = list(channels)
        if "Close" not in channels:
            raise ValueError(f"channels must include Close (the target), got {channels}")
        if normalisation not in METHODS:
            raise ValueError(f"unknown normalisation {normalisation!r}; choose one of {', '.join(METHODS)}")
        if base_len < 2 or horizon < 1 or stride < 1 or not 0 <= calibration_fraction < 1:
            raise ValueError(f"need base_len >= 2, horizon >= 1, stride >= 1, 0 <= calibration_fraction < 1; got "
                             f"{base_len}, {horizon}, {stride}, {calibration_fraction}")  # fmt: skip
        self.save_hyperparameters(ignore=["path"] if self.frame is not None else None)
        if self.frame is not None:  # a table in memory: a checkpoint records where the data came from, not the data
            self.hparams["path"], self.hparams["source"] = None, "dataframe"
        if isinstance(tickers, str):  # --data.tickers AAPL: one ticker
            self.hparams["tickers"] = [tickers]
        self.channels = channels
        self.panel: Panel | None = None
        self.read_from_source = False  # whether load_panel read the data itself (not adopted)
        self.datasets: dict[str, WindowDataset] = {}
        self._naive_ratios: dict[tuple[float, ...], np.ndarray] = {}

    @property
    def in_channels(self) -> int:
        """C, the number of input channels."""
        return len(self.channels)

    def prepare_data(self) -> None:
        """Download once (Kaggle only); runs on one process per node. Nothing to do with a panel already here (read, or
        adopted from another process: its file need not exist on this machine)."""
        hp = self.hparams
        if self.panel is None and self.frame is None and choose_source(hp.source, hp.path)[0] == "kaggle":
            download_kaggle(hp.cache_dir, hp.kaggle_dataset, hp.kaggle_file)

    def load_panel(self) -> Panel:
        """Read, validate and index the data (once; later calls reuse it, as they do a panel :meth:`adopt` took)."""
        if self.panel is not None:
            return self.panel
        pause_here("loading")
        hp = self.hparams
        check_calendar(hp.calendar)
        columns = [c for c in self.channels if c != MARKET]  # the market channel is derived, not read
        if self.frame is not None:
            chunks = frame_chunks(self.frame, hp.price_column, hp.frame_ticker, hp.date_format)
        else:
            source, why = choose_source(hp.source, hp.path)
            if source == "synthetic" and hp.source == "auto":
                log.warning(
                    "data: the built-in synthetic prices (%s); pass --data.path FILE or configure Kaggle for real data",
                    why,
                )
            elif hp.source == "auto":  # a source given (or restored from a checkpoint) needs no word
                log.info("data source: %s (%s)", source, why)
            # checkpoints record the data actually read, so a checkpoint always means the same data
            self.hparams["source"] = source
            if source == "csv":
                self.hparams["path"] = str(Path(hp.path).absolute())
            synthetic = {"n_tickers": hp.synthetic_tickers, "seed": hp.synthetic_seed}
            chunks = load_chunks(source, hp.path, hp.cache_dir, synthetic, hp.price_column, hp.kaggle_dataset,
                                 hp.kaggle_file, hp.date_format)  # fmt: skip
        self.panel = build_panel(clean_chunks(chunks, columns), self.channels, hp.tickers, hp.base_len + hp.horizon)
        self.read_from_source = True
        if self.frame is None:
            log.info("%s, %d rows, %s .. %s", plural(len(self.panel.names), "ticker"), len(self.panel.dates),
                     self.panel.dates.min(), self.panel.dates.max())  # fmt: skip
        return self.panel

    def reading(self) -> dict[str, Any]:
        """The settings that decide what :meth:`load_panel` reads and keeps (the source resolved once it has run)."""
        hp = self.hparams
        # as JSON has them (tuples as lists): the same settings compare equal in any process
        return json.loads(json.dumps({k: hp[k] for k in READING})) | {"min_length": hp.base_len + hp.horizon}

    def loaded(self) -> LoadedPanel:
        """The panel (read now if not yet) with the settings it was read with: for :meth:`adopt` elsewhere."""
        panel = self.load_panel()
        return LoadedPanel(panel, self.reading())

    def adopt(self, loaded: LoadedPanel) -> bool:
        """Use a panel another DataModule (or process) read, when it was read with this one's settings; whether it
        did. Checks that need the data still run on it (split dates, windows)."""
        if self.panel is not None or self.frame is not None or loaded.reading != self.reading():
            return False
        self.panel = loaded.panel
        return True

    def setup(self, stage: str | None = None) -> None:
        """Index the windows (once) and check that the splits ``stage`` needs are not empty."""
        if not self.datasets:
            self._build_datasets()
        hp = self.hparams
        needed = {"fit": ("train", "val", "calibration") if hp.calibration_fraction else ("train", "val")}
        needed |= {"validate": ("val",), "test": ("test",)}
        if stage == "predict":
            needed["predict"] = ("test",) if hp.predict_set == "test" else ()
        for name in needed.get(stage or "fit", ("train", "val", "test")):
            if len(self.datasets[name]) == 0:
                raise NotEnoughDataError(
                    f"the {name} split has no windows: the data spans {self.panel.dates.min()} .. "
                    f"{self.panel.dates.max()} with train_end={hp.train_end}, val_end={hp.val_end}, "
                    f"test_end={hp.test_end}; set {option('data.train_end')}, {option('data.val_end')} and "
                    f"{option('data.test_end')} inside the data's dates"
                )

    def _build_datasets(self) -> None:
        hp = self.hparams
        panel = self.load_panel()
        if hp.split == "tutorial":
            log.warning("split=tutorial: random split of segments, future windows leak into training (comparison only)")
            splits = tutorial_splits(panel, hp.base_len, hp.horizon, hp.seed)
        else:
            splits = date_splits(panel, hp.base_len, hp.horizon, hp.train_end, hp.val_end, hp.stride, hp.test_end,
                                 hp.calibration_fraction)  # fmt: skip
        for name, starts in splits.items():
            self.datasets[name] = WindowDataset(panel, starts, hp.base_len, hp.horizon, hp.normalisation)
        if hp.predict_set == "latest":
            latest = latest_starts(panel, hp.base_len)
            self.datasets["predict"] = WindowDataset(panel, latest, hp.base_len, hp.horizon, hp.normalisation,
                                                     with_target=False, calendar=hp.calendar)  # fmt: skip
        else:
            self.datasets["predict"] = self.datasets["test"]
        log.info("windows: train %d, val %d, calibration %d, test %d, predict (%s) %d", *(len(self.datasets[k]) for k in
                 ("train", "val", "calibration", "test")), hp.predict_set, len(self.datasets["predict"]))  # fmt: skip

    def _loader(self, name: str, shuffle: bool = False) -> DataLoader:
        dataset = self.datasets[name]
        distributed = self.trainer is not None and self.trainer.world_size > 1
        sampler: Sampler[int] | None = None
        if shuffle:
            # our own permutation by (seed, epoch), sharded over the DDP ranks: Lightning keeps a DistributedSampler
            world = (self.trainer.world_size, self.trainer.global_rank) if distributed else (1, 0)
            sampler = EpochSeededSampler(dataset, self.hparams.seed, *world)
        elif distributed:
            # evaluation shards without padding: every window is scored exactly once across ranks
            # (Lightning's default DistributedSampler repeats windows to even out the ranks)
            sampler = UnrepeatedDistributedSampler(
                dataset, num_replicas=self.trainer.world_size, rank=self.trainer.global_rank, shuffle=False
            )
        workers = self.hparams.num_workers
        kwargs = {"batch_size": self.hparams.batch_size, "sampler": sampler, "collate_fn": collate_batch,
                  "num_workers": workers, "persistent_workers": workers > 0}  # fmt: skip
        if shuffle:  # a run stopped mid-epoch (SIGTERM) resumes with the batch it had reached
            return ResumableLoader(dataset, **kwargs, batches_done=self._batches_done)
        return DataLoader(dataset, **kwargs)

    def _batches_done(self) -> int:
        """The training batches of the current epoch done (Lightning's count, kept in the checkpoint's loop)."""
        return self.trainer.fit_loop.epoch_loop.batch_progress.current.completed if self.trainer else 0

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        # the calibration windows, when kept apart, are a second loader: the model collects, never scores, them
        calibration = self.datasets.get("calibration")
        fitting = self.trainer is None or self.trainer.state.fn == "fit"  # validate alone does not recalibrate
        return [self._loader("val"), self._loader("calibration")] if calibration and fitting else self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")

    def transfer_batch_to_device(self, batch: Batch, device: torch.device, dataloader_idx: int) -> Batch:
        """Move the batch's tensors; its metadata (ticker names, dates: lists of strings) stays as it is.

        Lightning's default walks every element of those lists, a noticeable share of a CPU epoch.
        """
        return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def naive_quantile_ratios(self, levels: list[float]) -> np.ndarray | None:
        """The naive-quantile baseline of the protocol ``(Q, H)``: quantiles of ``c[t+s] / c[t]`` over the training
        split's days (``train_end``); None for the tutorial's random split, which has no training end date."""
        if self.hparams.split != "date":
            return None
        key = tuple(levels)
        if key not in self._naive_ratios:  # the model asks at each stage (fit, then test)
            hp = self.hparams
            self._naive_ratios[key] = naive_quantile_ratios(self.load_panel(), hp.train_end, levels, hp.horizon)
        return self._naive_ratios[key]

    def target_dates(self, indices: np.ndarray) -> np.ndarray:
        """Target dates ``(N, horizon)`` of the predict set's windows ``indices``."""
        return self.datasets["predict"].target_dates(indices)
