"""forecast: stock price forecasting with an implicit ridge-regression layer, on PyTorch Lightning.

From Python: ``forecast.load(checkpoint)`` gives a model whose ``predict(prices)`` returns a DataFrame, and
``forecast.read_backtest(out)`` a backtest's results (:mod:`forecast.api`; imported on first use, so that
``import forecast`` stays light).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load(*args: Any, **kwargs: Any) -> Any:
    """:func:`forecast.api.load`: the model of a checkpoint (``best``, ``last`` or a path)."""
    from forecast.api import load as _load

    return _load(*args, **kwargs)


def read_backtest(*args: Any, **kwargs: Any) -> Any:
    """:func:`forecast.api.read_backtest`: a finished backtest's results as DataFrames."""
    from forecast.api import read_backtest as _read

    return _read(*args, **kwargs)
