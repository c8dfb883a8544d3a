"""Score a backtest's finished folds and write its report: each fold's predictions file, each year's seed
ensemble, the summary over seeds and years (:mod:`forecast.backtest.summary`), ``backtest.md/.json/.png``; and
``--score_only``, the same for a finished folder without training."""

from __future__ import annotations

import json
import re
from pathlib import Path

from forecast.backtest import report, summary
from forecast.backtest.ensemble import ensemble_predictions, write_predictions
from forecast.backtest.folds import BacktestError, FoldDates
from forecast.backtest.scoring import FoldScore, read_predictions, score_fold
from forecast.backtest.signal import combine, net_return
from forecast.backtest.summary import ENSEMBLE
from forecast.backtest.task import Fold, FoldStore
from forecast.data.panel import Panel
from forecast.signals import pause_here

SETTINGS_FILE = "backtest_settings.json"
TITLE_FILE = "backtest_title.json"


def score_and_report(
    store: FoldStore, folds: list[Fold], panel: Panel, base_len: int, horizon: int, cost_bps: float, title: dict
) -> None:
    """Score every fold's predictions file and each year's seed ensemble (written as
    ``predictions/{Y}_ensemble.csv`` when a year has two or more seeds); write and print the report."""
    out = store.out
    pause_here("writing")
    predictions = {f: read_predictions(store.predictions(f)) for f in folds}  # each file read once
    scores = {(f.dates.year, f.seed): score_fold(panel, predictions[f], f.dates, base_len, horizon) for f in folds}
    ensembles = {}
    for year in sorted({f.dates.year for f in folds}):
        of_year = [f for f in folds if f.dates.year == year]
        if len(of_year) > 1:
            frame = ensemble_predictions([predictions[f] for f in of_year])
            write_predictions(out / "predictions" / f"{year}_{ENSEMBLE}.csv", frame)
            ensembles[year] = score_fold(panel, frame, of_year[0].dates, base_len, horizon)
    records = {(f.dates.year, f.seed): store.record(f) for f in folds}
    result = summary.summarise(scores, records, horizon, cost_bps, ensembles)
    long_short = {}
    for name, by_year in (("model", _by_year(scores)), (ENSEMBLE, {y: [s] for y, s in ensembles.items()})):
        if by_year and all(s.signal is not None for parts in by_year.values() for s in parts):
            long_short[name] = {
                year: net_return(combine([s.signal for s in parts], "mean"), cost_bps)  # type: ignore[misc]
                for year, parts in by_year.items()
            }
    report.write(out, result, title, long_short, horizon)
    print((out / "backtest.md").read_text())
    print(f"wrote {out / 'backtest.json'}, {out / 'backtest.md'}, {out / 'backtest.png'}")


def _by_year(scores: dict[tuple[int, int], FoldScore]) -> dict[int, list[FoldScore]]:
    years: dict[int, list[FoldScore]] = {}
    for (year, _), score in sorted(scores.items()):
        years.setdefault(year, []).append(score)
    return years


def score_only(out: Path, cost_bps: float) -> None:
    """Re-score a finished backtest folder from its predictions files and recorded settings, without training."""
    path = out / SETTINGS_FILE
    if not path.is_file():
        raise BacktestError(f"{out} holds no backtest ({SETTINGS_FILE} is missing); give the --out of a backtest")
    settings = json.loads(path.read_text())
    if settings.get("validation_only"):
        raise BacktestError(f"{out} is a validation-only backtest: it has no test predictions to score")
    names = sorted((out / "predictions").glob("*_seed*.csv"))
    parsed = [re.fullmatch(r"(\d{4})_seed(-?\d+)\.csv", p.name) for p in names]
    folds = [Fold(FoldDates(int(m[1])), int(m[2])) for m in parsed if m]
    if not folds:
        raise BacktestError(f"{out / 'predictions'} holds no finished fold ({{YEAR}}_seed{{SEED}}.csv) to score")
    seeds = {year: sorted(f.seed for f in folds if f.dates.year == year) for year in {f.dates.year for f in folds}}
    if len({tuple(s) for s in seeds.values()}) > 1:
        raise BacktestError(f"the years of {out} have different seeds ({seeds}); finish the backtest first")
    from forecast.data import StockDataModule

    data = {k: v for k, v in settings["fit"]["data"].items() if k not in ("train_end", "val_end", "test_end")}
    datamodule = StockDataModule(**data)
    datamodule.prepare_data()
    panel = datamodule.load_panel()
    title_path = out / TITLE_FILE
    title = (
        json.loads(title_path.read_text()) if title_path.is_file() else {"title": f"Backtest in {out}", "options": ""}
    )
    score_and_report(
        FoldStore(out), folds, panel, datamodule.hparams.base_len, datamodule.hparams.horizon, cost_bps, title
    )
