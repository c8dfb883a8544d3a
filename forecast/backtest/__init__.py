"""Walk-forward backtests: fit each test year's fold, score its forecasts, test the margin over the best simple
baseline; :func:`run` from Python, ``python -m forecast backtest`` from the command line."""

from forecast.backtest.dm import DMResult, diebold_mariano
from forecast.backtest.folds import BacktestError, FoldDates
from forecast.backtest.walk import BacktestResult, run

__all__ = ["BacktestError", "BacktestResult", "DMResult", "FoldDates", "diebold_mariano", "run"]
