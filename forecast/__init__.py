"""forecast: stock price forecasting with an implicit ridge-regression layer, on PyTorch Lightning.

From Python (docs/python.md): ``forecast.load(checkpoint).predict(prices)`` forecasts a DataFrame;
``forecast.run.fit(config)`` (and ``validate``, ``test``, ``predict``) run what the commands run and return what
happened; ``forecast.backtest.run(...)`` and ``forecast.tune.run(...)`` run a backtest and a search;
``forecast.read_backtest(out)`` reads a backtest's results; ``forecast.export.export_checkpoint(ckpt, file)``
writes a checkpoint as one program for torch alone or onnxruntime (docs/serving.md). Each is imported on first
use, so that ``import forecast`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

SUBPACKAGES = ("api", "backtest", "export", "run", "tune")


def __getattr__(name: str) -> Any:
    """``forecast.backtest``, ``forecast.export``, ``forecast.tune``, ``forecast.run``: imported when first used."""
    if name in SUBPACKAGES:
        return importlib.import_module(f"forecast.{name}")
    raise AttributeError(f"module 'forecast' has no attribute {name!r}")


def load(*args: Any, **kwargs: Any) -> Any:
    """:func:`forecast.api.load`: the model of a checkpoint (``best``, ``last`` or a path)."""
    from forecast.api import load as _load

    return _load(*args, **kwargs)


def read_backtest(*args: Any, **kwargs: Any) -> Any:
    """:func:`forecast.api.read_backtest`: a finished backtest's results as DataFrames."""
    from forecast.api import read_backtest as _read

    return _read(*args, **kwargs)
