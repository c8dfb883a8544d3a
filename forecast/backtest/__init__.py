"""Walk-forward backtests: fit each test year's fold, score its forecasts, test the margin over naive."""

from forecast.backtest.dm import DMResult, diebold_mariano
from forecast.backtest.folds import BacktestError, FoldDates

__all__ = ["BacktestError", "DMResult", "FoldDates", "diebold_mariano"]
