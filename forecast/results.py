"""What a run returns (:mod:`forecast.run`): typed results instead of exit codes and logs to read back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class FitResult:
    """A finished ``fit``.

    Attributes:
        run_dir: the run's folder (``<root>/lightning_logs/version_N``), None without a logger.
        best_checkpoint: the checkpoint of the best validation epoch ('' when no validation ran).
        last_checkpoint: ``last.ckpt``.
        summary: ``fit_summary.json`` as written (every validation epoch, seconds, peak RSS, interval scores; empty
            when no validation ran).
        test: the test split's scores of the best checkpoint (``fit --test_after_fit``): ``{forecaster: {metric:
            value}}``, None when not scored.
        data_read: whether this run read the data itself (False when it used a panel read elsewhere).
    """

    run_dir: Path | None
    best_checkpoint: str
    last_checkpoint: str
    summary: dict[str, Any] = field(default_factory=dict)
    test: dict[str, dict[str, float]] | None = None
    data_read: bool = True

    @property
    def best_epoch(self) -> int | None:
        """The epoch of :attr:`best_checkpoint` (None when no validation ran)."""
        return self.summary.get("best_epoch")

    @property
    def best_val_mae(self) -> float | None:
        """The best epoch's validation MAE, dollars."""
        return self.summary.get("best_val_mae")

    @property
    def best_val_rel_mae(self) -> float | None:
        """The best epoch's validation MAE over the naive forecast's."""
        return self.summary.get("best_val_rel_mae")


@dataclass(frozen=True)
class PredictResult:
    """A finished ``predict``: the forecasts as the protocol's rows (``Name, origin_date, target_date, step,
    forecast`` and a column per quantile level) in ``frame`` when no file was asked for, else written to ``output``;
    ``rows``, ``tickers``, the first and last ``origins`` and ``targets`` either way."""

    output: Path | None
    rows: int
    tickers: int
    origins: tuple[str, str]
    targets: tuple[str, str]
    frame: pd.DataFrame | None = None
    data_read: bool = True


@dataclass(frozen=True)
class EvaluateResult:
    """A finished ``validate`` or ``test``: ``{forecaster: {metric: value}}`` (the model, and for ``test`` the naive and
    drift baselines), metrics in dollars or as ratios."""

    metrics: dict[str, dict[str, float]]
    data_read: bool = True
